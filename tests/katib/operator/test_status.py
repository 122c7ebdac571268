"""The operator's pure parts: Katib-compatible status, Trial resources, resource parsing."""

from __future__ import annotations

import pytest

from katib.errors import InvalidExperimentError
from katib.operator import experiment_status, parse_resource, trial_resource, trial_status
from katib.records import (
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    MetricSummary,
    TrialRecord,
    TrialState,
)
from tests.katib.operator.conftest import experiment_yaml
from trial_runner import CollectionPlan, TrialLaunch


def record(**kw: object) -> ExperimentRecord:
    exp = parse_resource(experiment_yaml("ns"))
    defaults: dict[str, object] = {
        "id": 1, "namespace": "ns", "name": "slow", "spec": exp,
        "condition": ExperimentCondition.SUCCEEDED,
        "conditions": [Condition("Created", "True", "ExperimentCreated", "made", 1.0),
                       Condition("Succeeded", "True", "ExperimentMaxTrialsReached", "done", 9.0)],
        "started_at": 2.0, "completed_at": 9.0,
    }
    defaults.update(kw)
    return ExperimentRecord(**defaults)  # type: ignore[arg-type]


def trial(name: str, state: TrialState, **kw: object) -> TrialRecord:
    return TrialRecord(id=hash(name) % 1000, experiment_id=1, namespace="ns", name=name,
                       assignments={"lr": "0.02"}, state=state, created_at=1.0, **kw)  # type: ignore[arg-type]


def test_experiment_status_has_katibs_fields() -> None:
    best = trial("slow-b", TrialState.SUCCEEDED, started_at=2.0, completed_at=3.0,
                 metrics={"acc": MetricSummary("acc", 0.5, 0.9, 0.875)})
    trials = [best, trial("slow-a", TrialState.FAILED), trial("slow-c", TrialState.RUNNING)]
    status = experiment_status(record(), trials, best)
    assert status["trials"] == 3
    assert (status["trialsSucceeded"], status["trialsFailed"], status["trialsRunning"]) == (1, 1, 1)
    assert status["trialsPending"] == status["trialsKilled"] == 0
    assert status["succeededTrialList"] == ["slow-b"]
    assert status["failedTrialList"] == ["slow-a"]
    assert status["pendingTrialList"] is None  # a JSON merge patch removes an emptied list
    assert status["conditions"][-1]["type"] == "Succeeded"
    assert status["conditions"][-1]["lastUpdateTime"] == status["conditions"][-1][
        "lastTransitionTime"]
    assert status["startTime"].endswith("Z") and status["completionTime"].endswith("Z")
    optimal = status["currentOptimalTrial"]
    assert optimal["bestTrialName"] == "slow-b"
    assert optimal["parameterAssignments"] == [{"name": "lr", "value": "0.02"}]
    # Katib's Metric values are strings.
    assert optimal["observation"]["metrics"] == [
        {"name": "acc", "min": "0.5", "max": "0.9", "latest": "0.875"}]


def test_no_best_trial_and_a_restarted_experiment() -> None:
    status = experiment_status(record(completed_at=None), [], None)
    assert status["currentOptimalTrial"]["bestTrialName"] == ""
    assert status["completionTime"] is None  # removed again after a restart


@pytest.mark.parametrize(
    ("state", "types"),
    [
        (TrialState.CREATED, ["Created"]),
        (TrialState.RUNNING, ["Created", "Running"]),
        (TrialState.SUCCEEDED, ["Created", "Running", "Succeeded"]),
        (TrialState.METRICS_UNAVAILABLE, ["Created", "Running", "MetricsUnavailable"]),
        (TrialState.EARLY_STOPPED, ["Created", "Running", "EarlyStopped"]),
        (TrialState.KILLED, ["Created", "Running", "Killed"]),
    ],
)
def test_trial_status_conditions(state: TrialState, types: list[str]) -> None:
    status = trial_status(trial("t", state, started_at=2.0, completed_at=3.0, reason="R",
                                message="M"))
    assert [c["type"] for c in status["conditions"]] == types
    if state.is_finished:
        assert status["conditions"][1]["status"] == "False"  # no longer running
        assert status["conditions"][-1]["reason"] == "R"


def test_trial_resource_is_owned_by_its_experiment() -> None:
    experiment = {**experiment_yaml("ns"),
                  "metadata": {"name": "slow", "namespace": "ns", "uid": "u-1"}}
    launch = TrialLaunch(namespace="ns", experiment="slow", trial="slow-x",
                         manifest={"apiVersion": "batch/v1", "kind": "Job"},
                         primary_container="training-container", assignments={"lr": "0.1"},
                         labels={"katib.kubeflow.org/experiment": "slow"},
                         collection=CollectionPlan(("acc",)), success_condition="s",
                         failure_condition="f", retain=True)
    body = trial_resource(launch, experiment)
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "name": "slow",
        "uid": "u-1", "controller": True}]
    spec = body["spec"]
    assert spec["parameterAssignments"] == [{"name": "lr", "value": "0.1"}]
    assert spec["runSpec"]["kind"] == "Job" and spec["retainRun"] is True
    assert (spec["successCondition"], spec["failureCondition"]) == ("s", "f")
    assert spec["objective"]["objectiveMetricName"] == "Validation-accuracy"


def test_parse_resource_keeps_identity_and_reports_every_field() -> None:
    obj = experiment_yaml("ns")
    obj["metadata"].update(uid="u-9", resourceVersion="77", generation=3,
                           managedFields=[{"manager": "kubectl"}])
    exp = parse_resource(obj)
    assert (exp.metadata.model_extra or {}).get("uid") == "u-9"
    assert "resourceVersion" not in (exp.metadata.model_extra or {})
    bad = experiment_yaml("ns", max_trials=2, parallel=5)
    bad["spec"]["parameters"][0]["feasibleSpace"]["min"] = "x"
    with pytest.raises(InvalidExperimentError) as info:
        parse_resource(bad)
    paths = {e.path for e in info.value.errors}
    assert {"spec.parallelTrialCount", "spec.parameters[0].feasibleSpace.min"} <= paths
