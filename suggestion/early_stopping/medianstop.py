"""Median stopping rule, as Katib's ``medianstop``.

Once ``min_trials_required`` trials have succeeded, the rule is: the objective's median over
those trials (each trial reduced to the mean of all its reported objective values). A running
trial that has reported at least ``start_step`` objective values and whose latest value is
worse than that median is stopped.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from suggestion._base import SettingSpec, check_int
from suggestion.early_stopping._base import EarlyStopping, StopDecision


class MedianStop(EarlyStopping):
    name = "medianstop"
    settings_spec = {
        "min_trials_required": SettingSpec(
            "3", "succeeded trials needed before any trial is stopped", check_int(1)
        ),
        "start_step": SettingSpec(
            "4", "objective reports a trial makes before it can be stopped", check_int(1)
        ),
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.min_trials_required = int(self.settings["min_trials_required"])
        self.start_step = int(self.settings["start_step"])
        self._means: dict[str, float] = {}
        self._median: float | None = None

    def update(self, completed: Mapping[str, float]) -> None:
        changed = False
        for name, mean in completed.items():
            if self._means.get(name) != mean:
                self._means[name] = mean
                changed = True
        if changed and len(self._means) >= self.min_trials_required:
            self._median = statistics.median(self._means.values())

    def should_stop(self, reports: int, latest: float) -> StopDecision | None:
        median = self._median
        if median is None or reports < self.start_step:
            return None
        worse = latest < median if self.maximize else latest > median
        if not worse:
            return None
        comparison = "less" if self.maximize else "greater"
        return StopDecision(self.metric, comparison, median, self.start_step)
