"""Time helpers: timestamps are unix seconds (float) inside, RFC 3339 on the wire."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> float:
    return time.time()


def rfc3339(ts: float | None, *, timespec: str = "seconds") -> str | None:
    """``ts`` as RFC 3339 in UTC; ``timespec="milliseconds"`` keeps fractions of a second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec=timespec).replace("+00:00", "Z")
