"""Metrics reported as text (DARTS' ``Best-Genotype``), kept as Katib keeps them.

Katib stores every metric value as a string; a value that is not a number has only a
latest value (min and max "unavailable"). Here a text value is kept for the objective of an
algorithm whose trials report text (``Algorithm.reports_text``): the trial succeeds with it,
it is shown and exported, and it never ranks against a number.
"""

from __future__ import annotations

import json
import math

from katib.controller import MetricAccumulator, trial_outcome
from katib.controller._optimal import is_better_trial, objective_value
from katib.records import MetricSummary, TrialRecord, TrialState
from katib.sdk._types import Metric
from katib.spec import Objective
from trial_runner import Ending, TrialEnded
from trial_runner.metrics import MetricsParser

GENOTYPE = "Genotype(normal=[[('max_pooling_3x3', 0)]], normal_concat=range(1, 2))"
FORMAT = r"([\w-]+)=(Genotype.*)"
OBJECTIVE = Objective.model_validate(
    {"type": "maximize", "objectiveMetricName": "Best-Genotype"}
)


def test_the_parser_keeps_text_only_for_text_metrics() -> None:
    line = f"Best-Genotype={GENOTYPE}"
    assert MetricsParser(["Best-Genotype"], [FORMAT]).parse_line(line) == []
    rejected: list[str] = []
    parser = MetricsParser(
        ["Best-Genotype"], [FORMAT], text_metrics=["Best-Genotype"],
        on_reject=lambda name, raw, why: rejected.append(why),
    )
    (observation,) = parser.parse_line(line)
    assert observation.text == GENOTYPE and math.isnan(observation.value)
    assert rejected == []
    (number,) = MetricsParser(["acc"], text_metrics=["acc"]).parse_line("acc=0.5")
    assert number.value == 0.5 and number.text is None  # a number stays a number


def test_a_text_metric_has_only_its_latest_value() -> None:
    accumulator = MetricAccumulator()
    accumulator.add_text("Best-Genotype", "Genotype(a)")
    accumulator.add_text("Best-Genotype", GENOTYPE)
    accumulator.add("Best-Genotype", 0.5)  # a stray number does not mix with the text
    summary = accumulator.summaries["Best-Genotype"]
    assert summary.text == GENOTYPE
    assert accumulator.objective(OBJECTIVE) is None
    assert accumulator.text_objective(OBJECTIVE) == GENOTYPE
    data = json.loads(json.dumps(summary.to_json()))
    assert data == {"name": "Best-Genotype", "min": None, "max": None, "latest": GENOTYPE}
    assert MetricSummary.from_json("Best-Genotype", data) == summary
    assert Metric.from_json(data).to_json() == data


def test_a_trial_with_a_text_objective_succeeds() -> None:
    ended = TrialEnded("t", Ending.COMPLETED)
    assert trial_outcome(ended, GENOTYPE, "Best-Genotype").state == TrialState.SUCCEEDED
    assert trial_outcome(ended, None, "Best-Genotype").state == TrialState.METRICS_UNAVAILABLE


def trial(name: str, objective: float | None, text: str | None = None) -> TrialRecord:
    metrics = {}
    if text is not None:
        metrics["Best-Genotype"] = MetricSummary.of_text("Best-Genotype", text)
    elif objective is not None:
        metrics["Best-Genotype"] = MetricSummary("Best-Genotype", objective, objective, objective)
    return TrialRecord(
        id=0, experiment_id=0, namespace="ns", name=name, assignments={},
        state=TrialState.SUCCEEDED, objective=objective, metrics=metrics,
    )


def test_a_text_objective_never_ranks_against_a_number() -> None:
    first, second = trial("a", None, "Genotype(a)"), trial("b", None, GENOTYPE)
    assert objective_value(second.metrics, OBJECTIVE) is None
    assert is_better_trial(first, None, OBJECTIVE)
    assert is_better_trial(second, first, OBJECTIVE)  # the newest search's result
    number = trial("c", 0.5)
    assert is_better_trial(number, second, OBJECTIVE)
    assert not is_better_trial(second, number, OBJECTIVE)
    assert not is_better_trial(trial("d", None), None, OBJECTIVE)


def test_text_values_cross_the_push_endpoint() -> None:
    # The metrics-collector sidecar of a cluster trial pushes what it collected.
    from katib.controller import observation_points, parse_observations
    from trial_runner import Observation

    sent = [Observation("Best-Genotype", math.nan, None, 5.0, GENOTYPE),
            Observation("loss", 0.5, 1, 5.0)]
    received = parse_observations(json.loads(json.dumps(
        {"observations": [o.to_wire() for o in sent]}
    )))
    assert received[0].text == GENOTYPE and math.isnan(received[0].value)
    assert received[1] == sent[1]
    # The observation log holds numbers: the text lives in the trial's metrics only.
    assert [p.metric_name for p in observation_points(received)] == ["loss"]

