"""How the CLI and the SDK reach experiments: the database directly, or a server over HTTP.

Both backends answer with the same JSON (Katib's camelCase objects: what ``katib get ... -o
json`` prints and the REST API returns) and raise the same errors (:mod:`katib.errors`), so
the code above them does not need to know which one it talks to. :func:`connect` picks one.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from katib.client._base import Backend, BudgetCounts
from katib.client._table import (
    metric_names,
    metric_values,
    objective_of,
    parameter_types,
    trial_columns,
    trial_rows,
    typed_assignments,
    typed_value,
)

if TYPE_CHECKING:
    from katib.client._local import LocalBackend
    from katib.client._remote import RemoteBackend, ServerUnreachableError

# Loaded on first use: a server's client needs no database driver, the database no httpx.
_EXPORTS = {
    "LocalBackend": "katib.client._local",
    "RemoteBackend": "katib.client._remote",
    "ServerUnreachableError": "katib.client._remote",
}

__all__ = [
    "Backend",
    "BudgetCounts",
    "LocalBackend",
    "RemoteBackend",
    "ServerUnreachableError",
    "connect",
    "metric_names",
    "metric_values",
    "objective_of",
    "parameter_types",
    "trial_columns",
    "trial_rows",
    "typed_assignments",
    "typed_value",
]


def connect(
    *, server: str | None = None, token: str | None = None, db: str | None = None
) -> Backend:
    """A backend for ``server`` (with ``token``) when given, else for the database ``db``.

    Raises:
        InvalidArgumentError: a server without a token, or both a server and a database.
        StorageError: the database cannot be opened.
    """
    if server:
        from katib.client._remote import RemoteBackend

        return RemoteBackend(server, token)
    from katib.client._local import LocalBackend

    return LocalBackend.open(db)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'katib.client' has no attribute {name!r}")
    return getattr(import_module(module), name)
