"""The Pareto front through the REST API (``/best`` and ``/pareto``) and the SDK, and a
single-objective ``/best`` left exactly in Katib's shape."""

from __future__ import annotations

from typing import Any

import pytest

from katib._time import now
from katib.records import ExperimentCondition, MetricSummary, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, experiment_doc

# (x, loss, cost): loss and cost conflict; the third trial is dominated by the second.
TRIALS = [("0.1", 0.9, 1.0), ("0.5", 0.5, 2.0), ("0.6", 0.6, 2.5), ("0.9", 0.1, 4.0)]


def seed(storage: Storage, name: str, multi: bool) -> Any:
    doc = experiment_doc(name)
    if multi:
        doc["spec"]["objective"]["additionalObjectives"] = [{"name": "cost", "type": "minimize"}]
    record = storage.create_experiment(parse_experiment(doc), source_dir=".")
    storage.update_experiment(record.id, condition=ExperimentCondition.SUCCEEDED)
    for x, loss, cost in TRIALS:
        trial = storage.create_trial(record, {"x": x})
        metrics = {"loss": MetricSummary("loss", loss, loss, loss)}
        if multi:
            metrics["cost"] = MetricSummary("cost", cost, cost, cost)
        storage.finish_trial(
            trial.id,
            TrialResult(TrialState.SUCCEEDED, "TrialSucceeded", "", now(), 0, metrics, loss),
        )
    return record


@pytest.fixture
def seeded(storage: Storage) -> Storage:
    seed(storage, "multi", multi=True)
    seed(storage, "single", multi=False)
    return storage


def test_best_of_a_multi_objective_experiment_has_the_front(
    seeded: Storage, client: TestClient, admin: dict[str, str]
) -> None:
    body = client.get("/api/v1/namespaces/default/experiments/multi/best", headers=admin).json()
    front = body["paretoFront"]
    assert [t["parameterAssignments"] for t in front] == [
        [{"name": "x", "value": x}] for x in ("0.9", "0.5", "0.1")]
    assert front[0]["objectives"] == [
        {"name": "loss", "type": "minimize", "value": 0.1},
        {"name": "cost", "type": "minimize", "value": 4.0},
    ]
    assert body["bestTrialName"] == front[0]["trialName"]


def test_best_of_a_single_objective_experiment_is_katibs_shape(
    seeded: Storage, client: TestClient, admin: dict[str, str]
) -> None:
    body = client.get("/api/v1/namespaces/default/experiments/single/best", headers=admin).json()
    assert list(body) == [
        "experiment", "namespace", "condition", "bestTrialName", "parameterAssignments",
        "observation",
    ]


def test_pareto_route(seeded: Storage, client: TestClient, admin: dict[str, str]) -> None:
    multi = client.get("/api/v1/namespaces/default/experiments/multi/pareto", headers=admin)
    assert multi.status_code == 200
    body = multi.json()
    assert body["objectives"] == [{"name": "loss", "type": "minimize"},
                                  {"name": "cost", "type": "minimize"}]
    assert len(body["paretoFront"]) == 3
    single = client.get("/api/v1/namespaces/default/experiments/single/pareto", headers=admin)
    assert [t["objectives"] for t in single.json()["paretoFront"]] == [
        [{"name": "loss", "type": "minimize", "value": 0.1}]]
    missing = client.get("/api/v1/namespaces/default/experiments/nope/pareto", headers=admin)
    assert missing.status_code == 404


def test_sdk_get_pareto_front(seeded: Storage, db_url: str) -> None:
    from katib import KatibClient

    client = KatibClient(db=db_url)
    front = client.get_pareto_front("multi")
    assert [t.parameters["x"] for t in front] == ["0.9", "0.5", "0.1"]
    assert front[1].objectives == {"loss": 0.5, "cost": 2.0}
    assert front[0].observation.metric("cost") is not None
    [single] = client.get_pareto_front("single")
    assert single.parameters == {"x": "0.9"} and single.objectives == {"loss": 0.1}
