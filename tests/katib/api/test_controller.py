"""The server's background controller, in process: runs, kills, stops, pushes, shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.api import create_app
from katib.controller import BackgroundController
from katib.records import REASON_INTERRUPTED, ExperimentCondition, TrialState
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, experiment_doc
from trial_runner.local import LocalProcessLauncher

pytestmark = pytest.mark.e2e

EXPERIMENTS = "/api/v1/namespaces/default/experiments"


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def background(storage: Storage, home: Path) -> BackgroundController:
    return BackgroundController(
        storage, LocalProcessLauncher(home), logs_root=home / "logs", scan_interval=0.2
    )


@pytest.fixture
def controller(storage: Storage, katib_home: Path) -> Iterator[BackgroundController]:
    service = background(storage, katib_home)
    yield service
    service.stop()


@pytest.fixture
def served(
    storage: Storage, controller: BackgroundController, katib_home: Path, work_dir: Path
) -> Iterator[TestClient]:
    app = create_app(storage, controller=controller, work_dir=str(work_dir))
    with TestClient(app) as c:
        yield c


def condition(client: TestClient, admin: dict[str, str], name: str) -> str:
    body = client.get(f"{EXPERIMENTS}/{name}", headers=admin).json()
    return str(body["status"]["condition"])


def test_created_experiment_runs_to_success(
    served: TestClient, admin: dict[str, str], controller: BackgroundController
) -> None:
    assert served.get("/readyz").json()["status"] == "ok"
    assert served.post(EXPERIMENTS, json=experiment_doc("run"), headers=admin).status_code == 201
    wait_for(lambda: condition(served, admin, "run") == "Succeeded", what="Succeeded")
    trials = served.get(f"{EXPERIMENTS}/run/trials", headers=admin).json()["items"]
    assert [t["status"]["condition"] for t in trials] == ["Succeeded"] * 3
    best = served.get(f"{EXPERIMENTS}/run/best", headers=admin).json()
    losses = [t["status"]["observation"]["metrics"][0]["latest"] for t in trials]
    assert best["observation"]["metrics"][0]["latest"] == min(losses)
    wait_for(lambda: controller.experiments() == 0, what="the run to be reaped")
    # The run's push token was revoked when it ended.
    assert [t.name for t in served.app.state.storage.list_tokens()] == ["admin"]


def test_kill_stop_and_push_reach_running_trials(
    served: TestClient, admin: dict[str, str], work_dir: Path, storage: Storage
) -> None:
    (work_dir / "hold").touch()
    doc = experiment_doc("held", maxTrialCount=4, parallelTrialCount=2)
    served.post(EXPERIMENTS, json=doc, headers=admin)

    def running() -> list[dict[str, Any]]:
        items = served.get(f"{EXPERIMENTS}/held/trials?state=Running", headers=admin).json()
        return items["items"] if len(items["items"]) == 2 else []

    first, second = (t["metadata"]["name"] for t in wait_for(running, what="2 running trials"))
    # A push to a trial this server runs goes through its controller into the trial's log.
    pushed = served.post(
        f"/api/v1/namespaces/default/trials/{first}/observations",
        json={"observations": [{"name": "loss", "value": 0.5, "step": 1}]},
        headers=admin,
    )
    assert pushed.status_code == 200 and pushed.json() == {"accepted": 1}
    log = f"/api/v1/namespaces/default/trials/{first}/observations"
    wait_for(lambda: served.get(log, headers=admin).json()["metricLogs"], what="the push")

    killed = served.post(f"/api/v1/namespaces/default/trials/{first}/kill", headers=admin)
    assert killed.status_code == 202
    trial = f"/api/v1/namespaces/default/trials/{first}"
    wait_for(
        lambda: served.get(trial, headers=admin).json()["status"]["condition"] == "Killed",
        what="the kill",
    )
    assert served.get(trial, headers=admin).json()["status"]["reason"] == "KilledByUser"

    stopped = served.post(f"{EXPERIMENTS}/held/stop", headers=admin)
    assert stopped.status_code == 202
    wait_for(lambda: condition(served, admin, "held") == "Succeeded", what="the stop")
    second_state = served.get(f"/api/v1/namespaces/default/trials/{second}", headers=admin)
    assert second_state.json()["status"]["condition"] == "Killed"
    assert storage.get_experiment("default", "held").owner is None


def test_shutdown_leaves_interrupted_trials_that_run_again(
    storage: Storage, katib_home: Path, work_dir: Path, admin: dict[str, str]
) -> None:
    (work_dir / "hold").touch()
    first = background(storage, katib_home)
    app = create_app(storage, controller=first, work_dir=str(work_dir))
    with TestClient(app) as c:
        c.post(EXPERIMENTS, json=experiment_doc("resume"), headers=admin)
        record = storage.get_experiment("default", "resume")
        wait_for(
            lambda: storage.count_trials(record.id).get(TrialState.RUNNING) == 2,
            what="2 running trials",
        )
    # Leaving the client ran the app's shutdown, which stopped the controller.
    assert not first.running
    stored = storage.get_experiment("default", "resume")
    assert stored.owner is None and stored.condition == ExperimentCondition.RUNNING
    trials = storage.list_trials(stored.id)
    assert {(t.state, t.reason) for t in trials} == {(TrialState.KILLED, REASON_INTERRUPTED)}
    assert all(t.started_at is not None for t in trials)

    (work_dir / "hold").unlink()
    second = background(storage, katib_home)
    second.start()
    try:
        wait_for(
            lambda: storage.get_experiment("default", "resume").condition.is_finished,
            what="the resumed experiment to finish",
        )
    finally:
        second.stop()
    done = storage.get_experiment("default", "resume")
    assert done.condition == ExperimentCondition.SUCCEEDED
    states = [t.state for t in storage.list_trials(done.id)]
    assert states == [TrialState.SUCCEEDED] * 3  # the interrupted two ran again, and one more


def test_an_experiment_that_cannot_start_fails_with_the_reason(
    served: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    from katib.spec import parse_experiment

    exp = parse_experiment(experiment_doc("broken"))
    assert exp.spec.algorithm is not None
    exp.spec.algorithm.algorithm_name = "no-such-algorithm"  # as if a plugin were uninstalled
    storage.create_experiment(exp)
    wait_for(lambda: condition(served, admin, "broken") == "Failed", what="Failed")
    message = served.get(f"{EXPERIMENTS}/broken", headers=admin).json()["status"]["message"]
    assert "no-such-algorithm" in message
