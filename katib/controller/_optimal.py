"""Reducing a trial's observations to metric values, and choosing the optimal trial.

The one rule for "the best trial" lives here: among Succeeded and EarlyStopped trials with
an objective value (the objective metric reduced by its metric strategy), the best value
wins, and of equal values the earliest trial, as it was found first. The controller records
each new optimal trial as it happens; readers take the recorded one (:func:`best_trial`).

With several objectives (``objective.additionalObjectives``) the result is the Pareto front
(:func:`pareto_front`): the candidate trials with every objective's value that no other
candidate dominates (as good in every objective and better in one). The optimal trial is then
the front's best on the objective metric; of equal values, one that dominates the other
wins, then the earliest, so that it is always on the front.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from katib.records import ExperimentRecord, MetricSummary, TrialRecord, TrialState
from katib.spec import Objective, ObjectiveType
from katib.storage import Storage

#: Trials whose objective value may make them the optimal trial.
OPTIMAL_CANDIDATE_STATES = (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)


class MetricAccumulator:
    """Running min / max / latest of each metric of one trial.

    The metric named ``track`` (the early-stopping rule's) also keeps every value, in order.
    """

    def __init__(self, track: str | None = None) -> None:
        self.summaries: dict[str, MetricSummary] = {}
        self.counts: dict[str, int] = {}
        self.sums: dict[str, float] = {}
        self.track = track
        self.history: list[float] = []

    def copy(self) -> MetricAccumulator:
        other = MetricAccumulator(self.track)
        other.summaries, other.counts, other.sums = (
            dict(self.summaries), dict(self.counts), dict(self.sums)
        )
        other.history = list(self.history)
        return other

    def add(self, name: str, value: float) -> None:
        if math.isnan(value) or math.isinf(value):
            return
        if name in self.summaries and self.summaries[name].text is not None:
            return  # a text metric stays text: its numbers would not compare with it
        if name == self.track:
            self.history.append(value)
        self.counts[name] = self.counts.get(name, 0) + 1
        self.sums[name] = self.sums.get(name, 0.0) + value
        current = self.summaries.get(name)
        if current is None:
            self.summaries[name] = MetricSummary(name, value, value, value)
        else:
            self.summaries[name] = MetricSummary(
                name, min(current.min, value), max(current.max, value), value
            )

    def add_text(self, name: str, text: str) -> None:
        """A value reported as text: it becomes the metric's latest (and only) value."""
        self.summaries[name] = MetricSummary.of_text(name, text)

    def objective(self, objective: Objective) -> float | None:
        return objective_value(self.summaries, objective)

    def text_objective(self, objective: Objective) -> str | None:
        """The objective metric's latest value when it was reported as text."""
        summary = self.summaries.get(objective.objective_metric_name or "")
        return None if summary is None else summary.text

    def mean(self, name: str) -> float | None:
        count = self.counts.get(name)
        return None if not count else self.sums[name] / count


def objective_value(summaries: Mapping[str, MetricSummary], objective: Objective) -> float | None:
    """The objective metric reduced by its metric strategy, or None if never reported or
    reported as text (which has no order)."""
    name = objective.objective_metric_name
    if not name or name not in summaries or summaries[name].text is not None:
        return None
    return summaries[name].value(objective.strategy_for(name))


def objective_values(
    summaries: Mapping[str, MetricSummary], objective: Objective
) -> tuple[float, ...] | None:
    """Every objective's value (objective metric first), each reduced by its metric
    strategy; None if any was never reported."""
    values: list[float] = []
    for name, _ in objective.objectives():
        if name not in summaries:
            return None
        values.append(summaries[name].value(objective.strategy_for(name)))
    return tuple(values)


def dominates(a: Sequence[float], b: Sequence[float], maximize: Sequence[bool]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    better = False
    for x, y, up in zip(a, b, maximize, strict=True):
        if (x < y) if up else (x > y):
            return False
        if x != y:
            better = True
    return better


def directions(objective: Objective) -> list[bool]:
    """Whether each objective (objective metric first) is maximized."""
    return [kind == ObjectiveType.MAXIMIZE for _, kind in objective.objectives()]


def pareto_front(trials: Iterable[TrialRecord], objective: Objective) -> list[TrialRecord]:
    """The non-dominated candidate trials (Succeeded or EarlyStopped, every objective
    reported), best first on the objective metric, then in trial order.

    With one objective, that is every trial with the best value.
    """
    maximize = directions(objective)
    scored: list[tuple[tuple[float, ...], int, TrialRecord]] = []
    for order, trial in enumerate(trials):
        if trial.state not in OPTIMAL_CANDIDATE_STATES:
            continue
        values = objective_values(trial.metrics, objective)
        if values is not None and all(math.isfinite(v) for v in values):
            scored.append((values, order, trial))
    # Sorted best first on every objective in turn: a trial can only be dominated by one
    # before it, so one pass against the front kept so far suffices.
    signs = [-1.0 if up else 1.0 for up in maximize]
    scored.sort(key=lambda item: (tuple(s * v for s, v in zip(signs, item[0], strict=True)),
                                  item[1]))
    front: list[tuple[tuple[float, ...], int, TrialRecord]] = []
    for item in scored:
        if not any(dominates(kept[0], item[0], maximize) for kept in front):
            front.append(item)
    return [trial for _, _, trial in front]


def is_better_trial(
    candidate: TrialRecord, incumbent: TrialRecord | None, objective: Objective
) -> bool:
    """Whether ``candidate`` replaces ``incumbent`` as the optimal trial (found later).

    A text objective (DARTS' genotype) cannot be compared: a trial that reported one is the
    optimal trial only while no trial has a numeric objective, and the latest such trial
    replaces an earlier one (the newest search's result).
    """
    if candidate.objective is None:
        if not _has_text_objective(candidate, objective):
            return False
        return incumbent is None or incumbent.objective is None
    multi = objective.is_multi_objective
    mine = objective_values(candidate.metrics, objective) if multi else None
    if multi and mine is None:
        return False  # not on the front without every objective's value
    if incumbent is None or incumbent.objective is None:
        return True
    if candidate.objective != incumbent.objective or mine is None:
        return is_better(candidate.objective, incumbent.objective, objective)
    theirs = objective_values(incumbent.metrics, objective)
    return theirs is None or dominates(mine, theirs, directions(objective))


def is_better(candidate: float, incumbent: float | None, objective: Objective) -> bool:
    if incumbent is None:
        return True
    if objective.type == ObjectiveType.MAXIMIZE:
        return candidate > incumbent
    return candidate < incumbent


def optimal_trial(trials: Iterable[TrialRecord], objective: Objective) -> TrialRecord | None:
    """The best trial by objective; the earliest wins a tie, as it was found first (with
    several objectives, a dominating one first)."""
    best: TrialRecord | None = None
    for trial in trials:
        if trial.state not in OPTIMAL_CANDIDATE_STATES or trial.objective is None:
            continue
        if is_better_trial(trial, best, objective):
            best = trial
    return best


def best_trial(storage: Storage, record: ExperimentRecord) -> TrialRecord | None:
    """The optimal trial: the one the controller recorded, else the rule over the trials."""
    return best_trials(storage, [record])[record.id]


def best_trials(
    storage: Storage, records: Sequence[ExperimentRecord]
) -> dict[int, TrialRecord | None]:
    """:func:`best_trial` of several experiments (one query for the recorded ones).

    An experiment with no recorded optimal trial (trials stored by other means, or the
    recorded one deleted) gets the rule applied to its candidate trials, which exist only
    in that case.
    """
    out = storage.recorded_best_trials(records)
    for record in records:
        objective = record.spec.spec.objective
        if out[record.id] is None and objective is not None:
            candidates = storage.list_trials(record.id, OPTIMAL_CANDIDATE_STATES)
            out[record.id] = optimal_trial(candidates, objective)
    return out


def pareto_front_of(storage: Storage, record: ExperimentRecord) -> list[TrialRecord]:
    """The experiment's Pareto front (:func:`pareto_front` over its candidate trials)."""
    objective = record.spec.spec.objective
    if objective is None:
        return []
    return pareto_front(storage.list_trials(record.id, OPTIMAL_CANDIDATE_STATES), objective)


def _has_text_objective(trial: TrialRecord, objective: Objective) -> bool:
    summary = trial.metrics.get(objective.objective_metric_name or "")
    return summary is not None and summary.text is not None
