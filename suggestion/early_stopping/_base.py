"""The early-stopping contract.

Like a suggestion algorithm, an early-stopping algorithm is a pure function of what it is
told: the controller passes the objective values of finished trials (:meth:`update`) and asks,
each time a running trial reports, whether that trial should stop (:meth:`should_stop`). The
controller kills a stopped trial, which ends as EarlyStopped with the rule that stopped it
recorded in its message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from suggestion._base import SettingSpec, settings_problems


@dataclass(frozen=True)
class StopDecision:
    """Why a trial must stop, in words and as Katib's rule (metric, comparison, value, step)."""

    metric: str
    comparison: str  # "less" or "greater": the trial's value compared with ``value``
    value: float
    start_step: int

    def __str__(self) -> str:
        return (
            f"{self.metric} {self.comparison} than {self.value:.6g} "
            f"(median of completed trials) after {self.start_step} reports"
        )


class EarlyStopping(ABC):
    """Base class of every early-stopping algorithm."""

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

    @abstractmethod
    def update(self, completed: Mapping[str, float]) -> None:
        """Take in finished trials: name → the mean of its objective values (seen twice: once)."""

    @abstractmethod
    def should_stop(self, reports: int, latest: float) -> StopDecision | None:
        """Whether a running trial that reported ``reports`` objective values must stop."""
