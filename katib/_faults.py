"""Fault injection for the crash-safety tests (never set outside tests).

``KATIB_FAULT_POINT`` names a point of the controller's work; when the process reaches it for
the ``KATIB_FAULT_AFTER``-th time (default 0: the first), it kills itself with SIGKILL, as a
power cut or the kernel's OOM killer would: no cleanup, no flush, an open transaction lost.
``tests/katib/test_crash_safety.py`` runs every point with ``katib run`` and ``katib server``.
"""

from __future__ import annotations

import os
import signal

ENV_POINT = "KATIB_FAULT_POINT"
ENV_AFTER = "KATIB_FAULT_AFTER"

#: The named points, in the order a trial meets them.
POINTS = (
    "after-suggest",  # the algorithm answered; nothing stored yet
    "while-saving-state",  # inside the transaction storing new trials and the algorithm state
    "after-trial-row",  # trials (Running) and state stored; not launched
    "after-launch",  # the workload runs (recorded Running before it started)
    "while-metrics",  # inside the transaction storing observations
    "while-finishing",  # inside the transaction storing a trial's end
)

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here with SIGKILL if the tests asked for it."""
    wanted = os.environ.get(ENV_POINT)
    if wanted != name:
        return
    seen = _hits.get(name, 0)
    _hits[name] = seen + 1
    if seen >= int(os.environ.get(ENV_AFTER) or 0):
        os.kill(os.getpid(), signal.SIGKILL)
