"""The controller's decisions, as a pure function of an experiment's state.

:func:`reconcile` looks at a snapshot (:class:`ExperimentState`) and returns what to do next;
it never touches processes, databases or clocks, so every rule is tested directly. The order
of the completion checks is Katib's:

1. the objective goal is reached → Succeeded;
2. failed + metrics-unavailable trials > 0 and ≥ maxFailedTrialCount → Failed;
3. finished trials ≥ maxTrialCount → Succeeded;
4. the algorithm has nothing more to suggest and no trial is active → Succeeded.

Otherwise the experiment keeps ``parallelTrialCount`` trials active without ever starting more
than ``maxTrialCount`` in all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from katib.records import ExperimentCondition, TrialState

REASON_GOAL_REACHED = "ExperimentGoalReached"
REASON_MAX_FAILED = "ExperimentMaxFailedTrialsReached"
REASON_MAX_TRIALS = "ExperimentMaxTrialsReached"
REASON_SUGGESTION_END = "ExperimentSuggestionEndReached"
REASON_STOPPED = "ExperimentStoppedByUser"


@dataclass(frozen=True)
class ExperimentState:
    """What the controller knows of one experiment at one moment."""

    counts: Mapping[TrialState, int]
    #: Trials created but not launched yet (after a resume), oldest first.
    pending: Sequence[str] = ()
    max_trial_count: int | None = None
    parallel_trial_count: int = 3
    max_failed_trial_count: int | None = None
    maximize: bool = True
    goal: float | None = None
    best_objective: float | None = None
    #: The algorithm answered the last request with no suggestion at all.
    exhausted: bool = False
    stop_requested: bool = False

    def count(self, *states: TrialState) -> int:
        return sum(self.counts.get(s, 0) for s in states)

    @property
    def active(self) -> int:
        return self.count(TrialState.CREATED, TrialState.RUNNING)

    @property
    def finished(self) -> int:
        return self.count(
            TrialState.SUCCEEDED,
            TrialState.FAILED,
            TrialState.KILLED,
            TrialState.EARLY_STOPPED,
            TrialState.METRICS_UNAVAILABLE,
        )

    @property
    def failed(self) -> int:
        return self.count(TrialState.FAILED, TrialState.METRICS_UNAVAILABLE)


@dataclass(frozen=True)
class Complete:
    """End the experiment; active trials are killed."""

    condition: ExperimentCondition
    reason: str
    message: str


@dataclass(frozen=True)
class Launch:
    """Start trials that already exist in state Created."""

    trial_names: tuple[str, ...]


@dataclass(frozen=True)
class Suggest:
    """Ask the algorithm for ``count`` new trials and start them."""

    count: int


Action = Complete | Launch | Suggest


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> Complete | None:
        for action in self.actions:
            if isinstance(action, Complete):
                return action
        return None


def goal_reached(state: ExperimentState) -> bool:
    if state.goal is None or state.best_objective is None:
        return False
    if state.maximize:
        return state.best_objective >= state.goal
    return state.best_objective <= state.goal


def reconcile(state: ExperimentState) -> Decision:
    """The next actions for an experiment in ``state``."""
    if goal_reached(state):
        return Decision(
            (
                Complete(
                    ExperimentCondition.SUCCEEDED,
                    REASON_GOAL_REACHED,
                    f"Experiment has succeeded because the objective goal {state.goal:g} "
                    f"was reached (best {state.best_objective:g})",
                ),
            )
        )
    if (
        state.max_failed_trial_count is not None
        and state.failed > 0
        and state.failed >= state.max_failed_trial_count
    ):
        return Decision(
            (
                Complete(
                    ExperimentCondition.FAILED,
                    REASON_MAX_FAILED,
                    f"Experiment has failed because {state.failed} trials failed "
                    f"(maxFailedTrialCount is {state.max_failed_trial_count})",
                ),
            )
        )
    if state.max_trial_count is not None and state.finished >= state.max_trial_count:
        return Decision(
            (
                Complete(
                    ExperimentCondition.SUCCEEDED,
                    REASON_MAX_TRIALS,
                    f"Experiment has succeeded because max trial count {state.max_trial_count} "
                    "has been reached",
                ),
            )
        )
    if state.stop_requested:
        return Decision(
            (
                Complete(
                    ExperimentCondition.SUCCEEDED,
                    REASON_STOPPED,
                    "Experiment was stopped by the user",
                ),
            )
        )
    running = state.count(TrialState.RUNNING)
    if state.exhausted and not state.pending and running == 0:
        return Decision(
            (
                Complete(
                    ExperimentCondition.SUCCEEDED,
                    REASON_SUGGESTION_END,
                    "Experiment has succeeded because the algorithm has no more parameters to try",
                ),
            )
        )

    slots = state.parallel_trial_count - running
    actions: list[Action] = []
    if slots > 0 and state.pending:
        launch = tuple(state.pending[:slots])
        actions.append(Launch(launch))
        slots -= len(launch)
    if state.max_trial_count is not None:
        slots = min(slots, state.max_trial_count - state.finished - state.active)
    if slots > 0 and not state.exhausted:
        actions.append(Suggest(slots))
    return Decision(tuple(actions))
