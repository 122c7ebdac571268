"""The controller's decisions about single trials, as pure functions.

Beside :func:`~katib.controller.reconcile` (what an experiment does next), these decide what
happened to a trial (:func:`trial_outcome`), whether a failed one runs again
(:func:`should_retry`, a Job's ``backoffLimit``) and whether a running one is stopped early
(:func:`early_stop`). None of them touches processes, databases or clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from katib.records import REASON_INTERRUPTED, TrialState
from suggestion.early_stopping import EarlyStopping, TrialHistory
from trial_runner import Ending, KillReason, TrialEnded

REASON_SUCCEEDED = "TrialSucceeded"
REASON_FAILED = "Error"
REASON_METRICS_UNAVAILABLE = "MetricsUnavailable"
REASON_EARLY_STOPPED = "EarlyStopped"
REASON_DEADLINE = "DeadlineExceeded"
REASON_EXPERIMENT_DONE = "ExperimentCompleted"
REASON_KILLED_BY_USER = "KilledByUser"
REASON_START_ERROR = "StartError"


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, as stored: its state, a reason and a message for people."""

    state: TrialState
    reason: str
    message: str


def trial_outcome(
    ended: TrialEnded, objective: float | str | None, objective_name: str
) -> Outcome:
    """The trial's state once its workload ended.

    Args:
        ended: What the launcher reported.
        objective: The objective metric reduced by its strategy, or its text where the
            algorithm's trials report text (DARTS); None if never reported.
        objective_name: The objective metric's name, for the message.
    """
    if ended.ending == Ending.NOT_STARTED:
        return Outcome(TrialState.FAILED, ended.reason or REASON_START_ERROR, ended.message)
    if ended.ending == Ending.KILLED:
        return _killed(ended.kill_reason, ended.message)
    if ended.ending == Ending.DEADLINE_EXCEEDED:
        return Outcome(TrialState.FAILED, REASON_DEADLINE, ended.message)
    if ended.ending == Ending.FAILED:
        return Outcome(TrialState.FAILED, REASON_FAILED, ended.message)
    if objective is None:
        return Outcome(
            TrialState.METRICS_UNAVAILABLE,
            REASON_METRICS_UNAVAILABLE,
            f"objective metric {objective_name} was never reported",
        )
    return Outcome(TrialState.SUCCEEDED, REASON_SUCCEEDED, "Trial has succeeded")


def _killed(reason: KillReason | None, message: str) -> Outcome:
    if reason == KillReason.INTERRUPTED:
        return Outcome(TrialState.KILLED, REASON_INTERRUPTED, "Trial was killed by an interruption")
    if reason == KillReason.EARLY_STOPPED:
        return Outcome(TrialState.EARLY_STOPPED, REASON_EARLY_STOPPED, message)
    if reason == KillReason.USER:
        return Outcome(TrialState.KILLED, REASON_KILLED_BY_USER, "Trial was killed by the user")
    return Outcome(
        TrialState.KILLED, REASON_EXPERIMENT_DONE, "Trial was killed: the experiment completed"
    )


def should_retry(outcome: Outcome, retries_done: int, limit: int) -> bool:
    """Whether a trial that ended with ``outcome`` runs again (a Job's ``backoffLimit``).

    Only a workload that ran and failed is retried, as Kubernetes starts a new pod for a
    failed one; a deadline, a kill or a trial that could not start is final.
    """
    return outcome.state == TrialState.FAILED and outcome.reason == REASON_FAILED and (
        retries_done < limit
    )


def retry_message(outcome: Outcome, retries_done: int, limit: int) -> str:
    """The message of a trial that fails for good after ``retries_done`` retries."""
    if limit and outcome.state == TrialState.FAILED and outcome.reason == REASON_FAILED:
        return f"{outcome.message} (failed {retries_done + 1} times; backoffLimit {limit})"
    return outcome.message


def backoff_limit(manifest: Mapping[str, Any]) -> int:
    """The Job's ``backoffLimit`` (0 when unset: see the README for why not Kubernetes' 6)."""
    spec = manifest.get("spec") or {}
    value = spec.get("backoffLimit") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) and value > 0 else 0


def early_stop(rule: EarlyStopping, trial: TrialHistory) -> str | None:
    """Why a running trial, with the values it reported of the rule's metric so far, should
    stop now, or None to let it run."""
    decision = rule.check(trial)
    return None if decision is None else str(decision)
