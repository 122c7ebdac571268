"""The audit trail: who changed what through the API (owners: their namespace; admins: all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from katib._time import rfc3339
from katib.api._auth import Role, require
from katib.api.deps import PrincipalDep, StorageDep
from katib.api.routes._common import MAX_ID, NAMESPACE_PATTERN, Limit, problems
from katib.api.schemas import AuditList
from katib.errors import ForbiddenError
from katib.storage import AuditRecord

router = APIRouter(prefix="/api/v1", tags=["audit"])


def audit_view(r: AuditRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "time": rfc3339(r.created_at, timespec="milliseconds"),
        "namespace": r.namespace,
        "action": r.action,
        "target": r.target,
        "principal": {"id": r.principal_id, "name": r.principal_name},
        "detail": r.detail,
    }


@router.get("/audit", response_model=AuditList, responses=problems(403, 404))
def list_audit(
    storage: StorageDep,
    principal: PrincipalDep,
    namespace: Annotated[
        str | None,
        Query(max_length=63, pattern=NAMESPACE_PATTERN, description="Only this namespace."),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="Cursor: `metadata.continue` of the previous page."),
    ] = None,
    limit: Limit = 100,
) -> Any:
    """Changes made through the API, newest first: create, stop, restart, budget edits,
    delete, archive, trial kills, token and namespace changes, each with the token (id and
    name) that made it. Owners read their namespace's; admins everyone's."""
    if Role.of(principal) == Role.ADMIN:
        namespaces = None if namespace is None else [namespace]
    else:
        wanted = namespace or principal.namespace
        require(principal, wanted, Role.VIEWER, hidden=f"namespace {wanted} not found")
        if Role.of(principal) < Role.OWNER:
            raise ForbiddenError(
                f"a {principal.role} token may not read the audit trail (needs owner or admin)"
            )
        namespaces = [wanted]
    records = storage.list_audit(namespaces=namespaces, before=after, limit=limit)
    cursor = records[-1].id if records else None
    return {
        "metadata": {"continue": None if cursor is None else str(cursor)},
        "items": [audit_view(r) for r in records],
    }
