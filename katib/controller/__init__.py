"""The experiment controller: pure decisions (reconcile) and the loop that carries them out."""

from katib.controller._optimal import MetricAccumulator, objective_value, optimal_trial
from katib.controller._reconcile import (
    Complete,
    Decision,
    ExperimentState,
    Launch,
    Suggest,
    goal_reached,
    reconcile,
)
from katib.controller._run import ExperimentRun, RunObserver, new_owner_id, owner_alive
from katib.controller._runner import Interrupted, Runner
from katib.controller._submit import NotRunnableError, admit, check_runnable

__all__ = [
    "Complete",
    "Decision",
    "ExperimentRun",
    "ExperimentState",
    "Interrupted",
    "Launch",
    "MetricAccumulator",
    "NotRunnableError",
    "RunObserver",
    "Runner",
    "Suggest",
    "admit",
    "check_runnable",
    "goal_reached",
    "new_owner_id",
    "objective_value",
    "optimal_trial",
    "owner_alive",
    "reconcile",
]
