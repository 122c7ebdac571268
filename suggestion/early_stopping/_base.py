"""The early-stopping contract.

Like a suggestion algorithm, an early-stopping rule is a pure function of what it is told.
The controller tells it about trials through :class:`TrialHistory` records (a trial's name,
its state and every value it reported for the objective metric, oldest first; the ``k``-th
report is step ``k``), whichever collector gathered them:

1. On start, :meth:`EarlyStopping.observe` with every finished trial of the experiment; then
   again with each trial as it finishes (a trial seen twice counts once).
2. Each time a running trial reports, :meth:`EarlyStopping.check` with its history so far;
   several trials run at once, and a report may bring several values at once.

A stopped trial is killed and ends as EarlyStopped with the rule's decision in its message.

A rule implements either the simple pair Katib's medianstop needs (:meth:`update` with each
succeeded trial's mean value, :meth:`should_stop` with a running trial's report count and
latest value) or the full pair (:meth:`observe`, :meth:`check`), which sees whole histories
and which trial is which; the full pair defaults to calling the simple one.
"""

from __future__ import annotations

import statistics
from abc import ABC
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from suggestion._base import RUNNING, SUCCEEDED, SettingSpec, settings_problems

#: What a :class:`StopDecision` compared the trial with, unless the rule says otherwise.
MEDIAN_RULE = "median of completed trials"


@dataclass(frozen=True)
class TrialHistory:
    """One trial as an early-stopping rule sees it.

    ``values`` are the objective metric's reported values, oldest first (step ``k`` is
    ``values[k - 1]``); ``state`` is the trial's state (``Running`` while it runs).
    """

    name: str
    values: tuple[float, ...]
    state: str = RUNNING

    @property
    def steps(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class StopDecision:
    """Why a trial must stop, in words and as Katib's rule (metric, comparison, value, step).

    ``rule`` names what ``value`` is (the median of completed trials, a percentile, a rung's
    cut-off, a threshold).
    """

    metric: str
    comparison: str  # "less" or "greater": the trial's value compared with ``value``
    value: float
    start_step: int
    rule: str = MEDIAN_RULE

    def __str__(self) -> str:
        return (
            f"{self.metric} {self.comparison} than {self.value:.6g} "
            f"({self.rule}) after {self.start_step} reports"
        )


class EarlyStopping(ABC):  # noqa: B024 - a rule overrides one of two pairs; neither is forced
    """Base class of every early-stopping rule; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    settings_spec: ClassVar[dict[str, SettingSpec]] = {}

    def __init__(
        self, *, metric: str, maximize: bool, settings: Mapping[str, str] | None = None
    ) -> None:
        self.metric = metric
        self.maximize = maximize
        resolved = {k: s.default for k, s in self.settings_spec.items() if s.default is not None}
        resolved.update(settings or {})
        self.settings = resolved

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        """Problems with the settings as ``(setting name, message)`` pairs."""
        return settings_problems(cls.name, cls.settings_spec, settings)

    # The full interface, which the controller calls ---------------------------------------

    def observe(self, finished: Sequence[TrialHistory]) -> None:
        """Take in finished trials with their histories (a trial seen twice counts once).

        By default, each succeeded trial's mean value goes to :meth:`update`.
        """
        means = {t.name: statistics.fmean(t.values) for t in finished if t.state == SUCCEEDED
                 and t.values}
        if means:
            self.update(means)

    def check(self, trial: TrialHistory) -> StopDecision | None:
        """Whether the running ``trial`` must stop now, given its history so far.

        By default, :meth:`should_stop` with its report count and latest value.
        """
        if not trial.values:
            return None
        return self.should_stop(trial.steps, trial.values[-1])

    # The simple interface, Katib's medianstop's ----------------------------------------------

    def update(self, completed: Mapping[str, float]) -> None:  # noqa: B027 - optional hook
        """Take in succeeded trials: name → the mean of its objective values."""

    def should_stop(self, reports: int, latest: float) -> StopDecision | None:
        """Whether a running trial that reported ``reports`` objective values must stop."""
        return None

    # Helpers for rules ---------------------------------------------------------------------

    def is_worse(self, value: float, than: float) -> bool:
        """Whether ``value`` is worse than ``than`` in the objective's direction."""
        return value < than if self.maximize else value > than

    def worse_word(self) -> str:
        """The comparison a stopped trial's value failed: ``less`` when maximizing."""
        return "less" if self.maximize else "greater"
