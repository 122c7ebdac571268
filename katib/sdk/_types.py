"""What SDK calls return besides Katib objects: the optimal trial, a Pareto front's trials and
observation logs.

They mirror the objects that Katib's SDK returns (``V1beta1OptimalTrial`` and the DB
manager's ``MetricLog``), with snake_case attributes, so code written for Katib reads the same:
``best.parameter_assignments[0].value``, ``logs[0].metric.value``. One difference: metric
values are floats here, where Katib hands out strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParameterAssignment:
    """A parameter's value in a trial, as text exactly as the trial received it."""

    name: str
    value: str


@dataclass(frozen=True)
class Metric:
    """One metric of a trial, reduced three ways (Katib's ``V1beta1Metric``)."""

    name: str
    min: float
    max: float
    latest: float
    #: A metric reported as text (DARTS' ``Best-Genotype``): its latest value; the numbers
    #: are then NaN, and null in JSON.
    text: str | None = None

    @classmethod
    def from_json(cls, m: Mapping[str, Any]) -> Metric:
        if isinstance(m["latest"], str):
            return cls(str(m["name"]), math.nan, math.nan, math.nan, m["latest"])
        return cls(str(m["name"]), float(m["min"]), float(m["max"]), float(m["latest"]))

    def to_json(self) -> dict[str, Any]:
        if self.text is not None:
            return {"name": self.name, "min": None, "max": None, "latest": self.text}
        return {"name": self.name, "min": self.min, "max": self.max, "latest": self.latest}


@dataclass(frozen=True)
class Observation:
    """A trial's metrics (Katib's ``V1beta1Observation``)."""

    metrics: list[Metric] = field(default_factory=list)

    def metric(self, name: str) -> Metric | None:
        """The metric called ``name``, if the trial reported it."""
        return next((m for m in self.metrics if m.name == name), None)


@dataclass(frozen=True)
class OptimalTrial:
    """The best trial of an experiment so far (Katib's ``V1beta1OptimalTrial``)."""

    best_trial_name: str
    parameter_assignments: list[ParameterAssignment]
    observation: Observation
    #: ``{name: value}`` typed by each parameter's type: ``double`` a float, ``int`` an int,
    #: ``discrete`` an int or a float, ``categorical`` the text (Optuna's ``best_params``).
    typed_parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def parameters(self) -> dict[str, str]:
        """``{name: value}`` of the parameter assignments, as text (Katib's)."""
        return {a.name: a.value for a in self.parameter_assignments}

    def to_json(self) -> dict[str, Any]:
        """Katib's ``currentOptimalTrial`` (camelCase), as the REST API and CLI print it."""
        return {
            "bestTrialName": self.best_trial_name,
            "parameterAssignments": [
                {"name": a.name, "value": a.value} for a in self.parameter_assignments
            ],
            "observation": {
                "metrics": [
                    m.to_json() for m in self.observation.metrics
                ]
            },
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], experiment: Mapping[str, Any] | None = None
    ) -> OptimalTrial | None:
        """Read ``currentOptimalTrial`` (or ``katib best -o json``); None without a best trial.

        With the ``experiment`` (its spec tells each parameter's type), ``typed_parameters``
        is filled in too.
        """
        name = data.get("bestTrialName")
        if not name:
            return None
        metrics = (data.get("observation") or {}).get("metrics") or []
        typed: dict[str, Any] = {}
        if experiment is not None:
            from katib.client import typed_assignments

            typed = typed_assignments(experiment, data.get("parameterAssignments") or [])
        return cls(
            best_trial_name=str(name),
            parameter_assignments=[
                ParameterAssignment(str(a["name"]), str(a["value"]))
                for a in data.get("parameterAssignments") or []
            ],
            observation=Observation(
                [Metric.from_json(m) for m in metrics]
            ),
            typed_parameters=typed,
        )


@dataclass(frozen=True)
class ParetoTrial:
    """One trial of a multi-objective experiment's Pareto front.

    Attributes:
        name: The trial's name.
        parameter_assignments: Its parameters, as text as the trial received them.
        observation: Its metrics (min, max, latest).
        objectives: Each optimized metric's value after its metric strategy, the objective
            metric first (``{"loss": 0.1, "latency": 12.0}``).
    """

    name: str
    parameter_assignments: list[ParameterAssignment]
    observation: Observation
    objectives: dict[str, float | None]

    @property
    def parameters(self) -> dict[str, str]:
        """``{name: value}`` of the parameter assignments."""
        return {a.name: a.value for a in self.parameter_assignments}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParetoTrial:
        """Read one entry of ``paretoFront`` (``katib best -o json``, the REST API)."""
        metrics = (data.get("observation") or {}).get("metrics") or []
        return cls(
            name=str(data["trialName"]),
            parameter_assignments=[
                ParameterAssignment(str(a["name"]), str(a["value"]))
                for a in data.get("parameterAssignments") or []
            ],
            observation=Observation(
                [Metric.from_json(m) for m in metrics]
            ),
            objectives={
                str(o["name"]): None if o.get("value") is None else float(o["value"])
                for o in data.get("objectives") or []
            },
        )


@dataclass(frozen=True)
class LoggedMetric:
    """One reported value (the ``metric`` of Katib's ``MetricLog``)."""

    name: str
    value: float


@dataclass(frozen=True)
class MetricLog:
    """One point of a trial's observation log (Katib's ``MetricLog``), oldest first.

    Attributes:
        time_stamp: When it was reported, RFC 3339 (UTC).
        metric: Its name and value.
        step: The training step it was reported with, when there was one.
    """

    time_stamp: str
    metric: LoggedMetric
    step: int | None = None
