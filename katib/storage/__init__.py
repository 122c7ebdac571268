"""Storage of experiments, trials, observation logs, algorithm state and events (SQLAlchemy)."""

from katib.storage._engine import (
    SCHEMA_REVISION,
    StorageError,
    default_url,
    katib_home,
    normalize_url,
)
from katib.storage._store import EventRecord, ObservationPoint, Storage

__all__ = [
    "SCHEMA_REVISION",
    "EventRecord",
    "ObservationPoint",
    "Storage",
    "StorageError",
    "default_url",
    "katib_home",
    "normalize_url",
]
