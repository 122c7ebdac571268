"""The experiment controller: pure decisions (reconcile) and the loop that carries them out.

Names load on first use, so that ``from katib.controller import objective_value`` (what the
CLI's tables need) does not import the run loop, storage and every algorithm.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "MetricAccumulator": "_optimal",
    "objective_value": "_optimal",
    "optimal_trial": "_optimal",
    "Complete": "_reconcile",
    "Decision": "_reconcile",
    "ExperimentState": "_reconcile",
    "Launch": "_reconcile",
    "Suggest": "_reconcile",
    "goal_reached": "_reconcile",
    "reconcile": "_reconcile",
    "ExperimentRun": "_run",
    "RunObserver": "_run",
    "new_owner_id": "_run",
    "owner_alive": "_run",
    "Interrupted": "_runner",
    "Runner": "_runner",
    "NotRunnableError": "_submit",
    "admit": "_submit",
    "check_runnable": "_submit",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'katib.controller' has no attribute {name!r}")
    return getattr(import_module(f"katib.controller.{module}"), name)
