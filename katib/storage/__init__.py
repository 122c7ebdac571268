"""Storage of experiments, trials, observation logs, algorithm state and events (SQLAlchemy)."""

from katib.storage._access import AuditRecord, NamespaceRecord
from katib.storage._engine import (
    SCHEMA_REVISION,
    StorageError,
    default_url,
    katib_home,
    normalize_url,
)
from katib.storage._store import (
    ALL_NAMESPACES,
    TOKEN_ROLES,
    TRIAL_SORTS,
    EventRecord,
    NewEvent,
    ObservationPoint,
    Storage,
    TokenRecord,
    hash_token,
)
from katib.storage._tables import TrialColumns
from katib.storage._transfer import export_lines, import_lines, parse_lines

__all__ = [
    "ALL_NAMESPACES",
    "AuditRecord",
    "SCHEMA_REVISION",
    "TOKEN_ROLES",
    "TRIAL_SORTS",
    "EventRecord",
    "NamespaceRecord",
    "NewEvent",
    "ObservationPoint",
    "Storage",
    "StorageError",
    "TokenRecord",
    "TrialColumns",
    "default_url",
    "export_lines",
    "import_lines",
    "parse_lines",
    "hash_token",
    "katib_home",
    "normalize_url",
]
