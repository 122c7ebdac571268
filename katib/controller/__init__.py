"""The experiment controller: pure decisions and the one loop that carries them out.

:func:`reconcile` (what an experiment does next) and the trial decisions
(:func:`trial_outcome`, :func:`should_retry`, :func:`early_stop`) are pure functions;
:class:`ControllerLoop` carries them out for the experiments of an
:class:`ExperimentSource`, whoever drives them: ``katib run`` and the SDK
(:class:`FixedExperiments`), the server (:class:`BackgroundController`).

Names load on first use, so that ``from katib.controller import objective_value`` (what the
CLI's tables need) does not import the loop, storage and every algorithm.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from katib.controller._background import BackgroundController
    from katib.controller._decisions import (
        REASON_EXPERIMENT_DONE,
        REASON_KILLED_BY_USER,
        Outcome,
        backoff_limit,
        early_stop,
        should_retry,
        trial_outcome,
    )
    from katib.controller._loop import (
        ControllerLoop,
        ExperimentSource,
        FixedExperiments,
        Interrupted,
        LoopbackPush,
        PushEndpoint,
        ServerPush,
        UnfinishedExperiments,
    )
    from katib.controller._optimal import (
        MetricAccumulator,
        best_trial,
        best_trials,
        dominates,
        objective_value,
        objective_values,
        optimal_trial,
        pareto_front,
        pareto_front_of,
    )
    from katib.controller._owner import live_owner, new_owner_id, owner_alive
    from katib.controller._push_server import observation_points, parse_observations
    from katib.controller._reconcile import (
        Complete,
        Decision,
        ExperimentState,
        Launch,
        Suggest,
        goal_reached,
        reconcile,
    )
    from katib.controller._run import ExperimentRun, RunObserver
    from katib.controller._submit import (
        NotRunnableError,
        TrialCounts,
        admit,
        check_runnable,
        resume_counts,
    )
    from katib.controller._warm_start import check_warm_start

_EXPORTS = {
    "BackgroundController": "_background",
    "REASON_EXPERIMENT_DONE": "_decisions",
    "REASON_KILLED_BY_USER": "_decisions",
    "Outcome": "_decisions",
    "backoff_limit": "_decisions",
    "early_stop": "_decisions",
    "should_retry": "_decisions",
    "trial_outcome": "_decisions",
    "ControllerLoop": "_loop",
    "ExperimentSource": "_loop",
    "FixedExperiments": "_loop",
    "Interrupted": "_loop",
    "LoopbackPush": "_loop",
    "PushEndpoint": "_loop",
    "ServerPush": "_loop",
    "UnfinishedExperiments": "_loop",
    "MetricAccumulator": "_optimal",
    "best_trial": "_optimal",
    "best_trials": "_optimal",
    "objective_value": "_optimal",
    "optimal_trial": "_optimal",
    "dominates": "_optimal",
    "objective_values": "_optimal",
    "pareto_front": "_optimal",
    "pareto_front_of": "_optimal",
    "live_owner": "_owner",
    "new_owner_id": "_owner",
    "owner_alive": "_owner",
    "observation_points": "_push_server",
    "parse_observations": "_push_server",
    "Complete": "_reconcile",
    "Decision": "_reconcile",
    "ExperimentState": "_reconcile",
    "Launch": "_reconcile",
    "Suggest": "_reconcile",
    "goal_reached": "_reconcile",
    "reconcile": "_reconcile",
    "ExperimentRun": "_run",
    "RunObserver": "_run",
    "NotRunnableError": "_submit",
    "TrialCounts": "_submit",
    "admit": "_submit",
    "check_runnable": "_submit",
    "resume_counts": "_submit",
    "check_warm_start": "_warm_start",
}

__all__ = [
    "BackgroundController",
    "Complete",
    "ControllerLoop",
    "Decision",
    "ExperimentRun",
    "ExperimentSource",
    "ExperimentState",
    "FixedExperiments",
    "Interrupted",
    "Launch",
    "LoopbackPush",
    "MetricAccumulator",
    "NotRunnableError",
    "Outcome",
    "PushEndpoint",
    "REASON_EXPERIMENT_DONE",
    "REASON_KILLED_BY_USER",
    "RunObserver",
    "ServerPush",
    "Suggest",
    "TrialCounts",
    "UnfinishedExperiments",
    "admit",
    "backoff_limit",
    "best_trial",
    "best_trials",
    "check_runnable",
    "check_warm_start",
    "early_stop",
    "goal_reached",
    "live_owner",
    "new_owner_id",
    "objective_value",
    "observation_points",
    "optimal_trial",
    "dominates",
    "objective_values",
    "pareto_front",
    "pareto_front_of",
    "owner_alive",
    "parse_observations",
    "reconcile",
    "resume_counts",
    "should_retry",
    "trial_outcome",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'katib.controller' has no attribute {name!r}")
    return getattr(import_module(f"katib.controller.{module}"), name)
