"""Reducing a trial's observations to metric values, and choosing the optimal trial."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from katib.records import MetricSummary, TrialRecord, TrialState
from katib.spec import Objective, ObjectiveType

#: Trials whose objective value may make them the optimal trial.
OPTIMAL_CANDIDATE_STATES = (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)


class MetricAccumulator:
    """Running min / max / latest of each metric of one trial."""

    def __init__(self) -> None:
        self.summaries: dict[str, MetricSummary] = {}
        self.counts: dict[str, int] = {}
        self.sums: dict[str, float] = {}

    def add(self, name: str, value: float) -> None:
        if math.isnan(value) or math.isinf(value):
            return
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
