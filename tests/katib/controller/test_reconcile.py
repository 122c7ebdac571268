"""The controller's decisions, rule by rule, in Katib's order."""

from __future__ import annotations

import pytest

from katib.controller import Complete, ExperimentState, Launch, Suggest, reconcile
from katib.controller._reconcile import (
    REASON_GOAL_REACHED,
    REASON_MAX_FAILED,
    REASON_MAX_TRIALS,
    REASON_STOPPED,
    REASON_SUGGESTION_END,
)
from katib.records import ExperimentCondition
from katib.records import TrialState as S


def state(**kw: object) -> ExperimentState:
    base: dict[str, object] = {"counts": {}, "max_trial_count": 10, "parallel_trial_count": 3}
    base.update(kw)
    return ExperimentState(**base)  # type: ignore[arg-type]


def test_fresh_experiment_asks_for_parallel_count() -> None:
    assert reconcile(state()).actions == (Suggest(3),)


def test_keeps_parallel_trials_running() -> None:
    assert reconcile(state(counts={S.RUNNING: 2, S.SUCCEEDED: 4})).actions == (Suggest(1),)
    assert reconcile(state(counts={S.RUNNING: 3})).actions == ()


def test_never_starts_more_than_max_trial_count() -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 8, S.RUNNING: 1}))
    assert decision.actions == (Suggest(1),)
    assert reconcile(state(counts={S.SUCCEEDED: 8, S.RUNNING: 2})).actions == ()


def test_max_trials_reached_succeeds() -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 7, S.FAILED: 1, S.KILLED: 1,
                                       S.EARLY_STOPPED: 1}))
    assert decision.complete == Complete(ExperimentCondition.SUCCEEDED, REASON_MAX_TRIALS,
                                         decision.complete.message)  # type: ignore[union-attr]


@pytest.mark.parametrize("maximize,best,goal,reached", [
    (True, 0.99, 0.99, True), (True, 0.98, 0.99, False),
    (False, 0.1, 0.1, True), (False, 0.2, 0.1, False),
])
def test_goal(maximize: bool, best: float, goal: float, reached: bool) -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 1, S.RUNNING: 2}, maximize=maximize,
                               goal=goal, best_objective=best))
    complete = decision.complete
    assert (complete is not None and complete.reason == REASON_GOAL_REACHED) == reached


def test_goal_is_checked_before_failures_and_budget() -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 5, S.FAILED: 5}, goal=1.0, best_objective=2.0,
                               max_failed_trial_count=1))
    assert decision.complete is not None
    assert decision.complete.reason == REASON_GOAL_REACHED


def test_failures_are_checked_before_budget() -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 7, S.FAILED: 3}, max_failed_trial_count=3))
    assert decision.complete is not None
    assert decision.complete.condition == ExperimentCondition.FAILED
    assert decision.complete.reason == REASON_MAX_FAILED


def test_metrics_unavailable_counts_as_failure() -> None:
    decision = reconcile(state(counts={S.FAILED: 1, S.METRICS_UNAVAILABLE: 1},
                               max_failed_trial_count=2))
    assert decision.complete is not None and decision.complete.reason == REASON_MAX_FAILED


def test_zero_failed_tolerates_no_failure_but_needs_one() -> None:
    assert reconcile(state(counts={}, max_failed_trial_count=0)).actions == (Suggest(3),)
    decision = reconcile(state(counts={S.FAILED: 1}, max_failed_trial_count=0))
    assert decision.complete is not None and decision.complete.condition == "Failed"


def test_unset_failure_budget_never_fails() -> None:
    decision = reconcile(state(counts={S.FAILED: 9}, max_failed_trial_count=None))
    assert decision.complete is None
    assert decision.actions == (Suggest(1),)


def test_unset_max_trial_count_keeps_going() -> None:
    decision = reconcile(state(counts={S.SUCCEEDED: 10_000}, max_trial_count=None))
    assert decision.actions == (Suggest(3),)


def test_exhausted_waits_for_running_then_succeeds() -> None:
    assert reconcile(state(counts={S.RUNNING: 1}, exhausted=True)).actions == ()
    decision = reconcile(state(counts={S.SUCCEEDED: 4}, exhausted=True))
    assert decision.complete is not None and decision.complete.reason == REASON_SUGGESTION_END


def test_pending_trials_are_launched_before_new_suggestions() -> None:
    decision = reconcile(state(counts={S.CREATED: 2, S.SUCCEEDED: 1}, pending=("a", "b")))
    assert decision.actions == (Launch(("a", "b")), Suggest(1))


def test_pending_launch_respects_parallelism() -> None:
    decision = reconcile(state(counts={S.CREATED: 3, S.RUNNING: 2}, pending=("a", "b", "c")))
    assert decision.actions == (Launch(("a",)),)


def test_stop_request_completes() -> None:
    decision = reconcile(state(counts={S.RUNNING: 2}, stop_requested=True))
    assert decision.complete is not None and decision.complete.reason == REASON_STOPPED
