"""The threshold rule (``threshold``), as optuna's ``ThresholdPruner``.

A running trial whose latest objective value is worse than a fixed ``threshold`` (above it
when minimizing, below it when maximizing) is stopped, once it has reported ``start_step``
values. It needs no other trial, so it works from the first trial on: a diverging loss or an
accuracy stuck at chance is stopped at once.

Settings:

* ``threshold`` (required, a number): the value a trial must stay on the good side of.
* ``start_step`` (1, >= 1): reports a trial makes before it can be stopped.
"""

from __future__ import annotations

from collections.abc import Mapping

from suggestion._base import SettingSpec, check_float, check_int
from suggestion.early_stopping._base import EarlyStopping, StopDecision, TrialHistory


class ThresholdStop(EarlyStopping):
    """``threshold``: stop a trial whose latest value is on the wrong side of a threshold."""

    name = "threshold"
    settings_spec = {
        "threshold": SettingSpec(
            None, "stop a trial whose latest value is worse than this; required", check_float()
        ),
        "start_step": SettingSpec(
            "1", "objective reports a trial makes before it can be stopped", check_int(1)
        ),
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.threshold = float(self.settings["threshold"])
        self.start_step = int(self.settings["start_step"])

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        problems = super().validate_settings(settings)
        if "threshold" not in settings:
            problems.append(("threshold", "must be set: the threshold rule needs a threshold"))
        return problems

    def check(self, trial: TrialHistory) -> StopDecision | None:
        if trial.steps < self.start_step or not trial.values:
            return None
        latest = trial.values[-1]
        if not self.is_worse(latest, self.threshold):
            return None
        return StopDecision(
            self.metric, self.worse_word(), self.threshold, trial.steps, "the threshold"
        )
