"""Observation logs: read (with a metric filter) and batched push, with bad bodies refused."""

from __future__ import annotations

import pytest

from katib.records import TrialRecord, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, experiment_doc

TRIALS = "/api/v1/namespaces/default/trials"
PROBLEM = "application/problem+json"


@pytest.fixture
def trial(storage: Storage) -> TrialRecord:
    record = storage.create_experiment(parse_experiment(experiment_doc("exp")))
    trial = storage.create_trial(record, {"x": "1"})
    storage.start_trial(trial.id, started_at=1.0)
    return trial


def test_push_then_read(client: TestClient, admin: dict[str, str], trial: TrialRecord) -> None:
    url = f"{TRIALS}/{trial.name}/observations"
    batch = {
        "observations": [
            {"name": "loss", "value": 0.5, "step": 1, "timestamp": 1700000000},
            {"name": "accuracy", "value": "0.75", "step": 1},
            {"name": "loss", "value": 0.25, "step": 2},
        ]
    }
    r = client.post(url, json=batch, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 3}
    plain = client.post(url, json={"metrics": {"loss": 0.125}}, headers=admin)
    assert plain.json() == {"accepted": 1}

    log = client.get(url, headers=admin).json()
    assert log["trialName"] == trial.name and log["namespace"] == "default"
    values = [(m["metric"]["name"], m["metric"]["value"], m["step"]) for m in log["metricLogs"]]
    assert values == [
        ("loss", 0.5, 1),
        ("accuracy", 0.75, 1),
        ("loss", 0.25, 2),
        ("loss", 0.125, None),
    ]
    assert log["metricLogs"][0]["timeStamp"] == "2023-11-14T22:13:20.000Z"
    only = client.get(f"{url}?metric=accuracy", headers=admin).json()["metricLogs"]
    assert [m["metric"]["value"] for m in only] == [0.75]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"observations": "loss=1"}', "observations"),
        (b'{"observations": [{"value": 1}]}', "observations[0]: needs a string 'name'"),
        (b'{"observations": [{"name": "loss", "value": "abc"}]}', "observations[0].value"),
        (b'{"observations": [{"name": "loss", "value": true}]}', "observations[0].value"),
        (b'{"observations": [{"name": "loss", "value": 1e999}]}', "finite"),
        (b'{"observations": [{"name": "loss", "value": 1, "step": 1.5}]}', "step"),
        (b'{"observations": [{"name": "loss", "value": 1, "timestamp": "now"}]}', "timestamp"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_bad_push_bodies_are_400_with_the_reason(
    client: TestClient, admin: dict[str, str], trial: TrialRecord, body: bytes, message: str
) -> None:
    r = client.post(
        f"{TRIALS}/{trial.name}/observations",
        content=body,
        headers={**admin, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == PROBLEM
    assert message in r.json()["detail"]
    assert (
        client.get(f"{TRIALS}/{trial.name}/observations", headers=admin).json()["metricLogs"] == []
    )


def test_push_refusals(
    client: TestClient, admin: dict[str, str], trial: TrialRecord, storage: Storage
) -> None:
    url = f"{TRIALS}/{trial.name}/observations"
    yaml = client.post(url, content=b"a: 1", headers={**admin, "Content-Type": "application/yaml"})
    assert yaml.status_code == 415
    huge = b'{"metrics": {"loss": 1}, "pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    big = client.post(url, content=huge, headers={**admin, "Content-Type": "application/json"})
    assert big.status_code == 413
    missing = client.post(f"{TRIALS}/exp-nope/observations", json={"metrics": {}}, headers=admin)
    assert missing.status_code == 404
    storage.finish_trial(trial.id, TrialResult(TrialState.SUCCEEDED, "", "", 1.0))
    late = client.post(url, json={"metrics": {"loss": 1}}, headers=admin)
    assert late.status_code == 409 and "finished" in late.json()["detail"]
