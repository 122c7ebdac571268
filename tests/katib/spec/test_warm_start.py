"""``spec.warmStart``: its own admission rules, and when an earlier experiment's search space
is compatible (:func:`validate_warm_start`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from katib.errors import FieldError
from katib.spec import parse_experiment, validate_warm_start

ErrorsOf = Callable[[Any], list[FieldError]]


def messages(errors: list[FieldError]) -> list[str]:
    return [str(e) for e in errors]


def test_a_plain_experiment_has_no_warm_start_and_dumps_none(baseline_doc: Any) -> None:
    exp = parse_experiment(baseline_doc)
    assert exp.spec.warm_start is None
    assert "warmStart" not in exp.to_wire()["spec"]


def test_warm_start_round_trips(baseline_doc: Any) -> None:
    baseline_doc["spec"]["warmStart"] = {"experiments": ["earlier", "older"]}
    exp = parse_experiment(baseline_doc)
    assert exp.spec.warm_start is not None
    assert exp.spec.warm_start.experiments == ["earlier", "older"]
    assert exp.to_wire()["spec"]["warmStart"] == {"experiments": ["earlier", "older"]}


@pytest.mark.parametrize(
    ("experiments", "expected"),
    [
        ([], ["spec.warmStart.experiments: must name at least one experiment to start from"]),
        (["baseline"], ["spec.warmStart.experiments[0]: an experiment cannot warm-start from"
                        " itself"]),
        (["a", "a"], ["spec.warmStart.experiments[1]: duplicate experiment 'a'"]),
        (["Not_A_Name"], ["spec.warmStart.experiments[0]: 'Not_A_Name' is not an experiment"
                          " name"]),
    ],
)
def test_warm_start_rules(
    baseline_doc: Any, errors_of: ErrorsOf, experiments: list[str], expected: list[str]
) -> None:
    baseline_doc["spec"]["warmStart"] = {"experiments": experiments}
    assert messages(errors_of(baseline_doc)) == expected


def test_unknown_warm_start_fields_are_rejected(baseline_doc: Any, errors_of: ErrorsOf) -> None:
    baseline_doc["spec"]["warmStart"] = {"experiment": ["a"]}
    found = messages(errors_of(baseline_doc))
    assert any("spec.warmStart.experiment" in m for m in found), found


@pytest.mark.parametrize("algorithm", ["hyperband", "pbt"])
def test_schedules_of_their_own_cannot_be_warm_started(
    baseline_doc: Any, errors_of: ErrorsOf, algorithm: str
) -> None:
    baseline_doc["spec"]["algorithm"] = {"algorithmName": algorithm}
    baseline_doc["spec"]["warmStart"] = {"experiments": ["earlier"]}
    found = [e for e in errors_of(baseline_doc) if e.path == "spec.warmStart"]
    assert [e.message for e in found] == [
        f"algorithm {algorithm} cannot be warm-started: it only learns from trials it ran itself"
    ]


def test_compatible_sources(baseline_doc: Any) -> None:
    exp = parse_experiment(copy.deepcopy(baseline_doc))
    other = copy.deepcopy(baseline_doc)
    other["metadata"]["name"] = "other"
    # Other ranges, lists, algorithms and extra metrics are fine.
    other["spec"]["parameters"][0]["feasibleSpace"]["max"] = "0.5"
    other["spec"]["parameters"][2]["feasibleSpace"]["list"] = ["sgd"]
    other["spec"]["algorithm"] = {"algorithmName": "tpe"}
    other["spec"]["objective"]["additionalMetricNames"] = ["accuracy"]
    assert validate_warm_start(exp, [("other", parse_experiment(other))]) == []


def test_incompatible_sources_say_why(baseline_doc: Any) -> None:
    exp = parse_experiment(copy.deepcopy(baseline_doc))
    other = copy.deepcopy(baseline_doc)
    other["metadata"]["name"] = "other"
    other["spec"]["parameters"][1]["parameterType"] = "double"
    other["spec"]["parameters"][1]["feasibleSpace"] = {"min": "1", "max": "4"}
    other["spec"]["parameters"][2]["name"] = "opt"
    other["spec"]["trialTemplate"]["trialParameters"][2]["reference"] = "opt"
    other["spec"]["objective"]["objectiveMetricName"] = "error"
    assert messages(validate_warm_start(exp, [("gone", None), ("other", parse_experiment(other))]))\
        == [
            "spec.warmStart.experiments[0]: experiment team-a/gone not found",
            "spec.warmStart.experiments[1]: incompatible search space: parameter 'layers' is int"
            " here and double in experiment other",
            "spec.warmStart.experiments[1]: incompatible search space: experiment other has no"
            " parameter 'optimizer'",
            "spec.warmStart.experiments[1]: incompatible search space: experiment other has"
            " parameter 'opt', which this experiment does not",
            "spec.warmStart.experiments[1]: experiment other did not collect metric 'loss' (it"
            " collected error, accuracy)",
        ]
