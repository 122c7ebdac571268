"""Asynchronous successive halving (``asha``; Li et al. 2020, kubeflow/katib#1582).

Rungs are report counts: rung ``k`` is reached at step ``r_k = min_resource *
reduction_factor ** (min_early_stopping_rate + k)`` (with the defaults 1, 3, 9, 27, ...). The
value a trial reported at step ``r_k`` is recorded in rung ``k`` when the trial gets there,
whether it still runs or has finished. A running trial that reaches a rung is judged once,
against every value recorded in that rung so far (its own included): it goes on if it is
among the best ``1 / reduction_factor`` of them (when there are fewer than
``reduction_factor`` values, only the best goes on) and is stopped otherwise. Nobody waits
for a rung to fill, which is what makes it asynchronous: with parallel trials each is judged
on what has been seen when it arrives. This is the rule of optuna's
``SuccessiveHalvingPruner`` (with ``bootstrap_count`` 0), with Katib's step counting.

Settings:

* ``min_resource`` (1, >= 1): reports before the first rung.
* ``reduction_factor`` (3, >= 2): eta; the share 1/eta of a rung goes on.
* ``min_early_stopping_rate`` (0, >= 0): s; the first rung is at ``min_resource * eta ** s``.
* ``min_trials_required`` (1, >= 1): values a rung must hold before it stops anyone.
"""

from __future__ import annotations

from collections.abc import Sequence

from suggestion._base import SettingSpec, check_int
from suggestion.early_stopping._base import EarlyStopping, StopDecision, TrialHistory


class AsynchronousSuccessiveHalving(EarlyStopping):
    """``asha``: stop a trial that is not in the top 1/eta of a rung when it reaches it."""

    name = "asha"
    settings_spec = {
        "min_resource": SettingSpec("1", "reports before the first rung", check_int(1)),
        "reduction_factor": SettingSpec(
            "3", "eta: the top 1/eta of a rung goes on", check_int(2)
        ),
        "min_early_stopping_rate": SettingSpec(
            "0", "s: the first rung is at min_resource * eta**s reports", check_int(0)
        ),
        "min_trials_required": SettingSpec(
            "1", "values a rung holds before it stops a trial", check_int(1)
        ),
    }

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.min_resource = int(self.settings["min_resource"])
        self.eta = int(self.settings["reduction_factor"])
        self.rate = int(self.settings["min_early_stopping_rate"])
        self.min_trials_required = int(self.settings["min_trials_required"])
        # Rung index -> trial name -> the value it reported at that rung's step.
        self._rungs: dict[int, dict[str, float]] = {}

    def rung_step(self, k: int) -> int:
        """The report count at which rung ``k`` is reached."""
        return int(self.min_resource * self.eta ** (self.rate + k))

    def rungs_reached(self, steps: int) -> int:
        """How many rungs a trial with ``steps`` reports has reached."""
        k = 0
        while self.rung_step(k) <= steps:
            k += 1
        return k

    def _record(self, trial: TrialHistory) -> list[int]:
        """Record the trial's value at each rung it has reached; the rungs new for it."""
        new: list[int] = []
        for k in range(self.rungs_reached(trial.steps)):
            rung = self._rungs.setdefault(k, {})
            if trial.name not in rung:
                rung[trial.name] = trial.values[self.rung_step(k) - 1]
                new.append(k)
        return new

    def observe(self, finished: Sequence[TrialHistory]) -> None:
        for trial in finished:
            self._record(trial)

    def cutoff(self, k: int) -> float | None:
        """The worst value that goes on from rung ``k`` now (None: the rung stops nobody)."""
        values = list(self._rungs.get(k, {}).values())
        if len(values) < self.min_trials_required:
            return None
        ranked = sorted(values, reverse=self.maximize)  # best first
        keep = max(1, len(ranked) // self.eta)
        return ranked[keep - 1]

    def check(self, trial: TrialHistory) -> StopDecision | None:
        for k in self._record(trial):
            cutoff = self.cutoff(k)
            value = self._rungs[k][trial.name]
            if cutoff is not None and self.is_worse(value, cutoff):
                step = self.rung_step(k)
                size = len(self._rungs[k])
                return StopDecision(
                    self.metric,
                    self.worse_word(),
                    cutoff,
                    step,
                    f"the top 1/{self.eta} of {size} trials at rung {k}",
                )
        return None

    def rung_sizes(self) -> dict[int, int]:
        """How many trials each rung has recorded (for tests and displays)."""
        return {k: len(v) for k, v in sorted(self._rungs.items())}
