"""Warm start through the controller: earlier experiments' trials as history, never rerun,
not counted; incompatible sources refused with their field path."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.controller import admit
from katib.errors import InvalidExperimentError
from katib.records import ExperimentCondition, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.controller.test_loop import (
    FakeLauncher,
    Play,
    completes,
    experiment,
    run_loop,
    trials,
    x_of,
)


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    yield s
    s.close()


def grid_experiment(name: str, **spec: Any) -> dict[str, Any]:
    doc = experiment(
        name,
        algorithm={
            "algorithmName": "grid",
            "algorithmSettings": [{"name": "random_state", "value": "5"}],
        },
        **spec,
    )
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0", "max": "4", "step": "1"}
    return doc


def points(storage: Storage, record: Any) -> list[str]:
    return sorted(t.assignments["x"] for t in trials(storage, record))


def test_warm_started_grid_runs_only_the_points_not_tried_yet(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    _, first = run_loop(storage, launcher, grid_experiment("first", maxTrialCount=3), tmp_path)
    assert len(trials(storage, first)) == 3

    doc = grid_experiment("second", parallelTrialCount=1)
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["warmStart"] = {"experiments": ["first"]}
    _, second = run_loop(storage, launcher, doc, tmp_path)
    # The grid has 5 points: the 3 tried in "first" are not run again.
    assert len(trials(storage, second)) == 2
    assert sorted(points(storage, first) + points(storage, second)) == ["0", "1", "2", "3", "4"]
    assert second.condition == ExperimentCondition.SUCCEEDED
    assert second.conditions[-1].reason == "ExperimentSuggestionEndReached"
    events = [e.message for e in storage.list_events(second.id) if e.reason == "WarmStarted"]
    assert events == ["warm start from first (3 trials)"]
    # The optimal trial is one of this experiment's own.
    assert second.optimal_trial_name in {t.name for t in trials(storage, second)}


def test_the_budget_counts_only_new_trials(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    _, first = run_loop(storage, launcher, experiment("first", maxTrialCount=4), tmp_path)
    doc = experiment(
        "second",
        maxTrialCount=3,
        algorithm={"algorithmName": "tpe",
                   "algorithmSettings": [{"name": "random_state", "value": "1"}]},
        warmStart={"experiments": ["first"]},
    )
    _, second = run_loop(storage, launcher, doc, tmp_path)
    assert len(trials(storage, second)) == 3
    assert second.conditions[-1].reason == "ExperimentMaxTrialsReached"


def test_trials_outside_the_new_space_are_left_out_and_counted(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    _, first = run_loop(storage, launcher, grid_experiment("first", maxTrialCount=5), tmp_path)
    doc = grid_experiment("second", warmStart={"experiments": ["first"]})
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0", "max": "6", "step": "1"}
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = "2"
    _, second = run_loop(storage, launcher, doc, tmp_path)
    # 2, 3, 4 were tried; 0 and 1 lie outside [2, 6] and do not count as tried.
    assert points(storage, second) == ["5", "6"]
    [event] = [e.message for e in storage.list_events(second.id) if e.reason == "WarmStarted"]
    assert event == "warm start from first (3 trials; 2 outside the search space not used)"


def test_warm_trials_feed_the_early_stopping_rule(
    storage: Storage, tmp_path: Path
) -> None:
    good = FakeLauncher(lambda launch: Play(metrics=[{"loss": 1.0}] * 4))
    run_loop(storage, good, experiment("first", maxTrialCount=3), tmp_path)
    bad = FakeLauncher(lambda launch: Play(metrics=[{"loss": 9.0}] * 4, ending=None))
    doc = experiment(
        "second",
        maxTrialCount=1,
        parallelTrialCount=1,
        warmStart={"experiments": ["first"]},
        earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "3"},
            {"name": "start_step", "value": "2"}]},
    )
    _, second = run_loop(storage, bad, doc, tmp_path)
    [trial] = trials(storage, second)
    assert trial.state == TrialState.EARLY_STOPPED


def admit_doc(storage: Storage, doc: dict[str, Any], tmp_path: Path) -> Any:
    return admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))


def test_incompatible_sources_are_refused_with_their_path(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    run_loop(storage, launcher, experiment("first", maxTrialCount=2), tmp_path)
    doc = experiment("second", warmStart={"experiments": ["nothere", "first"]})
    doc["spec"]["parameters"][0]["parameterType"] = "int"
    doc["spec"]["parameters"].append(
        {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}
    )
    doc["spec"]["objective"]["objectiveMetricName"] = "accuracy"
    with pytest.raises(InvalidExperimentError) as caught:
        admit_doc(storage, doc, tmp_path)
    found = [str(e) for e in caught.value.errors]
    assert found == [
        "spec.warmStart.experiments[0]: experiment team/nothere not found",
        "spec.warmStart.experiments[1]: incompatible search space: parameter 'x' is int here"
        " and double in experiment first",
        "spec.warmStart.experiments[1]: incompatible search space: experiment first has no"
        " parameter 'y'",
        "spec.warmStart.experiments[1]: experiment first did not collect metric 'accuracy'"
        " (it collected loss)",
    ]
    with pytest.raises(Exception, match="not found"):
        storage.get_experiment("team", "second")  # nothing was created


def test_a_deleted_source_is_reported_on_resume_and_the_run_goes_on(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    run_loop(storage, launcher, experiment("first", maxTrialCount=2), tmp_path)
    doc = experiment("second", maxTrialCount=2, warmStart={"experiments": ["first"]})
    record = admit_doc(storage, doc, tmp_path)
    storage.delete_experiment("team", "first")
    _, second = run_loop(storage, launcher, doc, tmp_path)
    assert second.id == record.id
    assert second.condition == ExperimentCondition.SUCCEEDED
    [event] = [e for e in storage.list_events(second.id) if e.reason == "WarmStarted"]
    assert event.type == "Warning"
    assert "experiment team/first not found" in event.message
