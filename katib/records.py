"""Plain records of stored experiments and trials, and their states.

These are what storage returns and what the controller decides on; ORM rows never leave
``katib.storage``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from katib._time import rfc3339
from katib.spec import Experiment


class TrialState(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    KILLED = "Killed"
    EARLY_STOPPED = "EarlyStopped"
    METRICS_UNAVAILABLE = "MetricsUnavailable"

    @property
    def is_active(self) -> bool:
        return self in (TrialState.CREATED, TrialState.RUNNING)

    @property
    def is_finished(self) -> bool:
        return not self.is_active

    @property
    def is_failure(self) -> bool:
        """Counts toward maxFailedTrialCount, as in Katib."""
        return self in (TrialState.FAILED, TrialState.METRICS_UNAVAILABLE)


class ExperimentCondition(StrEnum):
    CREATED = "Created"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def is_finished(self) -> bool:
        return self in (ExperimentCondition.SUCCEEDED, ExperimentCondition.FAILED)


# Reason given to trials that an interruption of the controller killed; such trials run again
# on resume and do not count.
REASON_INTERRUPTED = "Interrupted"


@dataclass(frozen=True)
class MetricSummary:
    """One metric of one trial reduced three ways, as Katib's observation reports it.

    A metric reported as text (DARTS' ``Best-Genotype``) has only its latest value,
    :attr:`text`, as in Katib, where min and max are then "unavailable": its numbers are NaN
    in memory and null in JSON.
    """

    name: str
    min: float
    max: float
    latest: float
    text: str | None = None

    @classmethod
    def of_text(cls, name: str, text: str) -> MetricSummary:
        return cls(name, math.nan, math.nan, math.nan, text)

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> MetricSummary:
        """What :meth:`to_json` wrote."""
        latest = data["latest"]
        if isinstance(latest, str):
            return cls.of_text(name, latest)
        return cls(name, data["min"], data["max"], latest)

    def value(self, strategy: str) -> float:
        return {"min": self.min, "max": self.max}.get(strategy, self.latest)

    def to_json(self) -> dict[str, Any]:
        if self.text is not None:
            return {"name": self.name, "min": None, "max": None, "latest": self.text}
        return {"name": self.name, "min": self.min, "max": self.max, "latest": self.latest}


@dataclass(frozen=True)
class TrialResult:
    """How a trial ended: what :meth:`~katib.storage.Storage.finish_trial` stores, once."""

    state: TrialState
    reason: str
    message: str
    completed_at: float
    exit_code: int | None = None
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    objective: float | None = None
    #: The workload's process, where it was one on this machine (kept for post-mortems).
    pid: int | None = None


@dataclass
class TrialRecord:
    """A stored trial."""

    id: int
    experiment_id: int
    namespace: str
    name: str
    assignments: dict[str, str]
    state: TrialState
    reason: str = ""
    message: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    objective: float | None = None
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at
        return None if end is None else end - self.started_at


@dataclass
class Condition:
    """One entry of an experiment's ``status.conditions``, as Katib writes it."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": rfc3339(self.last_transition_time),
        }


@dataclass
class ExperimentRecord:
    """A stored experiment: its defaulted spec and its status."""

    id: int
    namespace: str
    name: str
    spec: Experiment
    condition: ExperimentCondition
    conditions: list[Condition] = field(default_factory=list)
    source_dir: str = ""
    created_at: float = 0.0
    started_at: float | None = None
    completed_at: float | None = None
    optimal_trial_name: str | None = None
    owner: str | None = None
    owner_heartbeat: float | None = None
    message: str = ""
    stop_requested: bool = False
