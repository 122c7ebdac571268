"""The audit trail: every change made through the API, with the token that made it.

Routes call :func:`record` once the change has been made (a refused or failed request leaves
no record). Owners read their namespace's records and admins every record (``GET
/api/v1/audit``).
"""

from __future__ import annotations

from typing import Any

from katib.api._auth import Principal
from katib.storage import Storage

__all__ = ["record"]


def record(
    storage: Storage,
    principal: Principal,
    namespace: str,
    action: str,
    target: str,
    **detail: Any,
) -> None:
    """Store who (``principal``) did ``action`` (``experiment.stop``) to ``target`` where.

    Args:
        storage: The database.
        principal: The request's token.
        namespace: Where it happened (``*`` for admin tokens).
        action: A dotted verb: ``experiment.create``, ``token.revoke``, ...
        target: What it happened to (an experiment's or trial's name, ``token #7``).
        detail: What else a reader needs (the new budget); never a secret.
    """
    clean = {k: v for k, v in detail.items() if v is not None}
    storage.add_audit(
        namespace,
        action,
        target,
        principal_id=principal.id,
        principal_name=principal.name,
        detail=clean,
    )
