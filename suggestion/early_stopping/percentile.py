"""The percentile rule (``percentile``), as optuna's ``PercentilePruner``.

At step ``n`` (its ``n``-th report), a running trial's best value so far is compared with the
best values up to step ``n`` of the finished trials that reported at least ``n`` values
(succeeded or stopped early): if it is worse than their ``percentile``-th percentile, counted
from the best end, the trial stops. ``percentile: 25`` keeps only trials that are in the best
quarter at the same step; 50 is a median rule, compared step by step rather than with whole
trials' means as ``medianstop`` does.

Settings:

* ``percentile`` (25, in (0, 100)): the share of the best finished trials a running trial
  must keep up with.
* ``min_trials_required`` (3, >= 1): finished trials that reached the same step, before any
  trial is stopped at it.
* ``start_step`` (4, >= 1): reports a trial makes before it can be stopped.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from suggestion._base import EARLY_STOPPED, SUCCEEDED, SettingSpec, check_int
from suggestion.early_stopping._base import EarlyStopping, StopDecision, TrialHistory


def _check_percentile(value: str) -> str | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"must be a number, got {value!r}"
    if not 0.0 < number < 100.0:
        return f"must be in the range (0, 100), got {value}"
    return None


class PercentileStop(EarlyStopping):
    """``percentile``: stop a trial behind the given percentile of finished trials, per step."""

    name = "percentile"
    settings_spec = {
        "percentile": SettingSpec(
            "25", "percentile of the finished trials' best values to keep up with",
            _check_percentile,
        ),
        "min_trials_required": SettingSpec(
            "3", "finished trials at the same step needed before any trial is stopped",
            check_int(1),
        ),
        "start_step": SettingSpec(
            "4", "objective reports a trial makes before it can be stopped", check_int(1)
        ),
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.percentile = float(self.settings["percentile"])
        self.min_trials_required = int(self.settings["min_trials_required"])
        self.start_step = int(self.settings["start_step"])
        # Finished trials' best values so far, step by step (index n-1: best up to step n).
        self._best_so_far: dict[str, list[float]] = {}

    def _running_best(self, values: Sequence[float]) -> list[float]:
        pick = max if self.maximize else min
        return list(itertools.accumulate(values, pick))

    def observe(self, finished: Sequence[TrialHistory]) -> None:
        for trial in finished:
            if trial.state in (SUCCEEDED, EARLY_STOPPED) and trial.values:
                self._best_so_far.setdefault(trial.name, self._running_best(trial.values))

    def threshold(self, step: int) -> float | None:
        """The value a trial's best up to ``step`` must reach (None: too few trials there)."""
        values = [best[step - 1] for best in self._best_so_far.values() if len(best) >= step]
        if len(values) < self.min_trials_required:
            return None
        q = 100.0 - self.percentile if self.maximize else self.percentile
        return float(np.percentile(values, q))

    def check(self, trial: TrialHistory) -> StopDecision | None:
        step = trial.steps
        if step < self.start_step or trial.name in self._best_so_far:
            return None
        threshold = self.threshold(step)
        if threshold is None:
            return None
        pick = max if self.maximize else min
        if not self.is_worse(pick(trial.values), threshold):
            return None
        return StopDecision(
            self.metric,
            self.worse_word(),
            threshold,
            step,
            f"{self.percentile:g}th percentile of {self._count(step)} finished trials at step "
            f"{step}",
        )

    def _count(self, step: int) -> int:
        return sum(1 for best in self._best_so_far.values() if len(best) >= step)
