"""Trial launchers and metrics collectors.

The launch boundary (:class:`TrialLaunch` in, typed events out) is what the controller sees
of every launcher; :class:`LocalProcessLauncher` runs trials on this machine.
"""

from trial_runner._launch import (
    Checkpoint,
    CollectionPlan,
    Ending,
    EventSink,
    KillReason,
    Launcher,
    MetricsReported,
    TrialEnded,
    TrialEvent,
    TrialLaunch,
    TrialStarted,
)
from trial_runner.metrics import Observation

__all__ = [
    "Checkpoint",
    "CollectionPlan",
    "Ending",
    "EventSink",
    "KillReason",
    "Launcher",
    "MetricsReported",
    "Observation",
    "TrialEnded",
    "TrialEvent",
    "TrialLaunch",
    "TrialStarted",
]
