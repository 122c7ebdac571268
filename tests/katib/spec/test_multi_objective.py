"""``objective.additionalObjectives`` (several objectives): admission rules, defaults, and
that a plain Katib experiment is untouched by the extension."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from katib.errors import FieldError
from katib.spec import parse_experiment

ErrorsOf = Callable[[Any], list[FieldError]]


def with_objectives(doc: Any, *extra: dict[str, Any], goal: float | None = None) -> Any:
    doc["spec"]["objective"].pop("goal", None)  # the baseline's; see the goal test
    if goal is not None:
        doc["spec"]["objective"]["goal"] = goal
    doc["spec"]["objective"]["additionalObjectives"] = list(extra)
    doc["spec"]["algorithm"] = {"algorithmName": "nsga2"}
    return doc


def messages(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]


def test_a_plain_experiment_is_unchanged(baseline_doc: Any) -> None:
    exp = parse_experiment(baseline_doc)
    assert exp.spec.objective is not None
    assert exp.spec.objective.additional_objectives is None
    assert not exp.spec.objective.is_multi_objective
    assert "additionalObjectives" not in exp.to_wire()["spec"]["objective"]


def test_objectives_and_their_default_strategies(baseline_doc: Any) -> None:
    baseline_doc["spec"]["objective"]["additionalMetricNames"] = ["epoch"]
    exp = parse_experiment(with_objectives(
        baseline_doc, {"name": "accuracy", "type": "maximize"},
        {"name": "latency", "type": "minimize"}))
    objective = exp.spec.objective
    assert objective is not None and objective.is_multi_objective
    assert objective.objectives() == [
        ("loss", "minimize"), ("accuracy", "maximize"), ("latency", "minimize")]
    assert objective.all_metric_names() == ["loss", "accuracy", "latency", "epoch"]
    strategies = {s.name: s.value for s in objective.metric_strategies}
    # Each objective's default strategy follows its own direction.
    assert strategies == {"loss": "min", "accuracy": "max", "latency": "min", "epoch": "min"}
    wire = exp.to_wire()["spec"]["objective"]["additionalObjectives"]
    assert wire == [{"name": "accuracy", "type": "maximize"},
                    {"name": "latency", "type": "minimize"}]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], ["spec.objective.additionalObjectives: must list at least one objective (or be"
              " left out)"]),
        ([{"type": "minimize"}], ["spec.objective.additionalObjectives[0].name: must be"
                                  " specified"]),
        ([{"name": "loss", "type": "minimize"}], [
            "spec.objective.additionalObjectives[0].name: should not repeat"
            " spec.objective.objectiveMetricName"]),
        ([{"name": "a", "type": "minimize"}, {"name": "a", "type": "maximize"}], [
            "spec.objective.additionalObjectives[1].name: duplicate objective 'a'"]),
        ([{"name": "a"}], ["spec.objective.additionalObjectives[0].type: must be specified"
                           " (minimize or maximize)"]),
        ([{"name": "a", "type": "lower"}], [
            "spec.objective.additionalObjectives[0].type: must be minimize or maximize, got"
            " 'lower'"]),
    ],
)
def test_additional_objective_rules(
    baseline_doc: Any, errors_of: ErrorsOf, extra: list[dict[str, Any]], expected: list[str]
) -> None:
    assert messages(errors_of(with_objectives(baseline_doc, *extra))) == expected


def test_an_objective_listed_as_a_metric_too(baseline_doc: Any, errors_of: ErrorsOf) -> None:
    baseline_doc["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
    found = messages(errors_of(with_objectives(
        baseline_doc, {"name": "accuracy", "type": "maximize"})))
    assert found == [
        "spec.objective.additionalObjectives[0].name: 'accuracy' is also in"
        " spec.objective.additionalMetricNames; an objective is collected anyway, list it once"
    ]


def test_no_goal_with_several_objectives(baseline_doc: Any, errors_of: ErrorsOf) -> None:
    found = messages(errors_of(with_objectives(
        baseline_doc, {"name": "a", "type": "minimize"}, goal=0.1)))
    assert found == ["spec.objective.goal: is not supported with"
                     " spec.objective.additionalObjectives: several objectives have no single"
                     " goal"]


def test_no_early_stopping_with_several_objectives(
    baseline_doc: Any, errors_of: ErrorsOf
) -> None:
    baseline_doc["spec"]["earlyStopping"] = {"algorithmName": "medianstop"}
    found = messages(errors_of(with_objectives(baseline_doc, {"name": "a", "type": "minimize"})))
    assert found == ["spec.earlyStopping: early stopping judges one objective; it cannot be"
                     " used with spec.objective.additionalObjectives"]


@pytest.mark.parametrize("algorithm", ["cmaes", "bayesianoptimization"])
def test_single_objective_algorithms_are_refused(
    baseline_doc: Any, errors_of: ErrorsOf, algorithm: str
) -> None:
    doc = with_objectives(baseline_doc, {"name": "a", "type": "minimize"})
    doc["spec"]["algorithm"] = {"algorithmName": algorithm}
    found = [e for e in errors_of(doc) if e.path == "spec.algorithm.algorithmName"]
    assert len(found) == 1
    assert found[0].message.startswith(
        f"algorithm {algorithm} optimizes one objective; spec.objective.additionalObjectives"
        " needs one of: grid, multivariate-tpe, nsga2, nsga3, random, sobol, tpe")


@pytest.mark.parametrize("algorithm", ["nsga2", "nsga3", "tpe", "multivariate-tpe", "random"])
def test_multi_objective_algorithms_are_accepted(
    baseline_doc: Any, errors_of: ErrorsOf, algorithm: str
) -> None:
    doc = with_objectives(baseline_doc, {"name": "a", "type": "maximize"})
    doc["spec"]["algorithm"] = {"algorithmName": algorithm}
    assert errors_of(doc) == []
