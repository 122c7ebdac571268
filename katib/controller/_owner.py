"""Who drives an experiment: owner ids, and whether an owner is still alive.

An experiment's ``owner`` column names the controller that drives it:
``host:pid:random``. Another controller may take it over once the owner is gone. On this
host a process's liveness is checked directly; inside this very process, each live
controller (and each short-lived holder, such as ``stop`` ending an experiment) registers
its id, so threads of one process are told apart too. Elsewhere the owner's heartbeat
decides.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from katib._time import now

#: A controller whose heartbeat is older than this is presumed gone (other hosts only: on
#: this host the owner's pid is checked directly).
OWNER_TIMEOUT = 30.0
HEARTBEAT_INTERVAL = 2.0

_live: set[str] = set()
_live_lock = threading.Lock()


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def register_owner(owner: str) -> None:
    """Mark ``owner`` (an id of this process) alive until :func:`unregister_owner`."""
    with _live_lock:
        _live.add(owner)


def unregister_owner(owner: str) -> None:
    with _live_lock:
        _live.discard(owner)


@contextmanager
def live_owner() -> Iterator[str]:
    """A new owner id, alive for the duration of the ``with`` block."""
    owner = new_owner_id()
    register_owner(owner)
    try:
        yield owner
    finally:
        unregister_owner(owner)


def owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    """Whether the controller named ``owner`` still drives its experiment."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            with _live_lock:
                return owner in _live
        import psutil  # only here: most commands never ask

        return bool(psutil.pid_exists(pid))
    return heartbeat is not None and now() - heartbeat < OWNER_TIMEOUT
