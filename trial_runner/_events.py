"""Events that launchers send back to the controller, and the launcher interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class ObservationLike(Protocol):
    name: str
    value: float
    step: int | None
    timestamp: float | None


@dataclass(frozen=True)
class MetricsReported:
    """Observations a running trial reported since the last event."""

    trial: str
    observations: Sequence[Any]


@dataclass(frozen=True)
class TrialExited:
    """The trial's process ended (on its own, killed, or it never started).

    ``exit_code`` is the process's status (negative: the signal that ended it, as
    ``subprocess`` reports it); ``error`` says why it could not start or was ended by the
    launcher (deadline, stop request).
    """

    trial: str
    exit_code: int | None
    observations: Sequence[Any] = field(default_factory=tuple)
    error: str | None = None
    killed_reason: str | None = None
    log_truncated: bool = False


Event = MetricsReported | TrialExited
EventSink = Callable[[Event], None]


class Launcher(ABC):
    """Starts and stops trials; reports their metrics and their end through an event sink.

    ``launch`` must return quickly; progress arrives later as events, from any thread.
    """

    @abstractmethod
    def launch(self, trial: str, spec: Any, sink: EventSink) -> int | None:
        """Start a trial; returns its process id where there is one."""

    @abstractmethod
    def kill(self, trial: str, reason: str) -> None:
        """Stop a trial; its TrialExited event carries ``reason`` as ``killed_reason``."""

    @abstractmethod
    def kill_all(self, reason: str, *, wait: float = 5.0) -> None:
        """Stop every trial this launcher started, waiting up to ``wait`` s for them."""
