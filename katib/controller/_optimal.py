"""Reducing a trial's observations to metric values, and choosing the optimal trial.

The one rule for "the best trial" lives here: among Succeeded and EarlyStopped trials with
an objective value (the objective metric reduced by its metric strategy), the best value
wins, and of equal values the earliest trial, as it was found first. The controller records
each new optimal trial as it happens; readers take the recorded one (:func:`best_trial`).
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

    def add(self, name: str, value: float) -> None:
        if math.isnan(value) or math.isinf(value):
            return
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

    def objective(self, objective: Objective) -> float | None:
        return objective_value(self.summaries, objective)

    def mean(self, name: str) -> float | None:
        count = self.counts.get(name)
        return None if not count else self.sums[name] / count


def objective_value(summaries: Mapping[str, MetricSummary], objective: Objective) -> float | None:
    """The objective metric reduced by its metric strategy, or None if never reported."""
    name = objective.objective_metric_name
    if not name or name not in summaries:
        return None
    return summaries[name].value(objective.strategy_for(name))


def is_better(candidate: float, incumbent: float | None, objective: Objective) -> bool:
    if incumbent is None:
        return True
    if objective.type == ObjectiveType.MAXIMIZE:
        return candidate > incumbent
    return candidate < incumbent


def optimal_trial(trials: Iterable[TrialRecord], objective: Objective) -> TrialRecord | None:
    """The best trial by objective; the earliest wins a tie, as it was found first."""
    best: TrialRecord | None = None
    for trial in trials:
        if trial.state not in OPTIMAL_CANDIDATE_STATES or trial.objective is None:
            continue
        if best is None or is_better(trial.objective, best.objective, objective):
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
