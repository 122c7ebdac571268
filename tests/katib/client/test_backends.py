"""The database backend and the server backend give the same answers and the same errors.

Both are driven over one database, with a real server (uvicorn on loopback) running its
controller, so the experiments really run and the remote side goes over real HTTP.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import pytest

from katib.client import Backend, LocalBackend, RemoteBackend, ServerUnreachableError, connect
from katib.errors import (
    ConflictError,
    ForbiddenError,
    InvalidExperimentError,
    KatibError,
    NotFoundError,
    UnauthorizedError,
)
from katib.records import TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.client.conftest import LiveServer, experiment_doc

pytestmark = pytest.mark.e2e


def wait_finished(backend: Backend, name: str, namespace: str = "default") -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exp = backend.get_experiment(namespace, name)
        if exp["status"]["condition"] in ("Succeeded", "Failed"):
            return exp
        time.sleep(0.1)
    raise AssertionError(f"{name} did not finish: {exp['status']}")


def hold(storage: Storage, experiment_id: int) -> None:
    """Keep the server's controller off an experiment: another live process owns it."""
    assert storage.claim(
        experiment_id, f"{socket.gethostname()}:{os.getppid()}:held", expected=None
    )


@pytest.fixture
def both(live_server: LiveServer) -> tuple[LocalBackend, RemoteBackend]:
    local = LocalBackend(live_server.storage)
    remote = RemoteBackend(live_server.url, live_server.admin)
    yield local, remote
    remote.close()


def test_same_answers_for_a_finished_experiment(
    both: tuple[LocalBackend, RemoteBackend]
) -> None:
    local, remote = both
    created = remote.create_experiment(experiment_doc("same"))
    assert created["metadata"]["name"] == "same" and created["status"]["condition"] == "Created"
    done = wait_finished(remote, "same")
    assert done["status"]["condition"] == "Succeeded" and done["status"]["trials"] == 3
    for backend in (local, remote):
        assert backend.get_experiment("default", "same") == done
    assert local.list_experiments() == remote.list_experiments() == [done]
    assert local.list_experiments("default") == remote.list_experiments("default") == [done]
    assert remote.list_experiments(archived=True) == local.list_experiments(archived=True) == []
    trials = remote.list_trials("default", "same")
    assert len(trials) == 3 and trials == local.list_trials("default", "same")
    assert {t["status"]["condition"] for t in trials} == {"Succeeded"}
    first = trials[0]["metadata"]["name"]
    assert remote.get_trial("default", first) == local.get_trial("default", first) == trials[0]
    assert remote.find_trials(first) == local.find_trials(first) == [trials[0]]
    assert remote.find_trials("no-such-trial") == local.find_trials("no-such-trial") == []
    logged = remote.trial_observations("default", first)
    assert logged == local.trial_observations("default", first)
    x = trials[0]["spec"]["parameterAssignments"][0]["value"]
    assert [(p["metric"]["name"], p["metric"]["value"]) for p in logged] == [("loss", float(x))]
    log = remote.trial_log("default", first)
    assert log is not None and f"loss={x}".encode() in log
    assert log == local.trial_log("default", first)
    assert remote.trial_log("default", first, offset=3) == log[3:]
    assert remote.trial_log("default", first, offset=len(log)) == b""
    best = remote.best_trial("default", "same")
    assert best == local.best_trial("default", "same")
    losses = {
        t["metadata"]["name"]: t["status"]["observation"]["metrics"][0]["min"] for t in trials
    }
    assert best["bestTrialName"] == min(losses, key=losses.__getitem__)
    record = local.storage.get_experiment("default", "same")
    local.storage.add_event(record.id, "Noted", "a note", trial_name=first)
    events = remote.list_events("default", "same")
    reasons = [e["reason"] for e in events]
    # The controller's story (a new best trial at least once, the end), then the note.
    assert "NewOptimalTrial" in reasons and "ExperimentMaxTrialsReached" in reasons
    assert events[-1]["reason"] == "Noted" and events[-1]["trialName"] == first
    assert events == local.list_events("default", "same")


@pytest.mark.parametrize("side", ["local", "remote"])
def test_same_errors(both: tuple[LocalBackend, RemoteBackend], side: str) -> None:
    local, remote = both
    backend = local if side == "local" else remote
    with pytest.raises(NotFoundError, match="experiment default/nope not found"):
        backend.get_experiment("default", "nope")
    with pytest.raises(NotFoundError):
        backend.get_trial("default", "nope-123")
    bad = experiment_doc("bad", maxTrialCount=0, parallelTrialCount=5)
    with pytest.raises(InvalidExperimentError) as caught:
        backend.create_experiment(bad)
    assert {e.path for e in caught.value.errors} >= {"spec.maxTrialCount"}
    storage = local.storage
    record = storage.create_experiment(parse_experiment(experiment_doc("held")))
    hold(storage, record.id)
    with pytest.raises(ConflictError):
        backend.create_experiment(experiment_doc("held"))
    with pytest.raises(InvalidExperimentError) as caught:
        backend.edit_budget("default", "held", {"parallel_trial_count": 50})
    assert [e.path for e in caught.value.errors] == ["spec.parallelTrialCount"]
    with pytest.raises(ConflictError, match="has not finished"):
        backend.restart_experiment("default", "held", {"max_trial_count": 9})
    with pytest.raises(ConflictError):
        backend.delete_experiment("default", "held")
    assert storage.get_experiment("default", "held").spec.spec.parallel_trial_count == 2


def test_budget_stop_restart_delete_through_the_server(
    both: tuple[LocalBackend, RemoteBackend]
) -> None:
    local, remote = both
    doc = experiment_doc("cycle", resumePolicy="LongRunning", maxTrialCount=2)
    remote.create_experiment(doc)
    edited = remote.edit_budget("default", "cycle", {"max_failed_trial_count": 0})
    assert edited["spec"]["maxFailedTrialCount"] == 0
    assert wait_finished(remote, "cycle")["status"]["trials"] == 2
    restarted = remote.restart_experiment("default", "cycle", {"max_trial_count": 3})
    assert restarted["status"]["condition"] == "Restarting"
    assert wait_finished(remote, "cycle")["status"]["trials"] == 3
    with pytest.raises(ConflictError, match="already finished"):
        remote.stop_experiment("default", "cycle")
    remote.delete_experiment("default", "cycle")
    with pytest.raises(NotFoundError):
        local.get_experiment("default", "cycle")


def test_stop_a_running_experiment(
    both: tuple[LocalBackend, RemoteBackend], live_server: LiveServer
) -> None:
    _, remote = both
    (live_server.work_dir / "hold").write_text("")
    remote.create_experiment(experiment_doc("long", maxTrialCount=50))
    deadline = time.monotonic() + 30
    while not any(
        t["status"]["condition"] == "Running" for t in remote.list_trials("default", "long")
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert remote.stop_experiment("default", "long") is False  # its controller ends it
    done = wait_finished(remote, "long")
    assert done["status"]["condition"] == "Succeeded"
    assert "stopped" in done["status"]["message"]


def test_lists_are_fetched_whole_across_pages(
    both: tuple[LocalBackend, RemoteBackend]
) -> None:
    local, remote = both
    storage = local.storage
    record = storage.create_experiment(parse_experiment(experiment_doc("many")))
    hold(storage, record.id)
    for i in range(1203):
        trial = storage.create_trial(record, {"x": f"0.{i}"})
        if i % 2:
            storage.finish_trial(trial.id, TrialResult(TrialState.KILLED, "", "", 1.0))
    trials = remote.list_trials("default", "many")
    assert len(trials) == 1203
    assert trials == local.list_trials("default", "many")


def test_tokens_through_both(both: tuple[LocalBackend, RemoteBackend]) -> None:
    local, remote = both
    made = remote.create_token("ci", "team-a", "viewer")
    assert made["token"].startswith("katib_") and made["role"] == "viewer"
    listed = {t["id"]: t for t in local.list_tokens()}
    assert made["id"] in listed and "token" not in listed[made["id"]]
    assert remote.list_tokens() == local.list_tokens()
    viewer = RemoteBackend(remote.url, made["token"])
    assert viewer.list_experiments() == []
    revoked = remote.revoke_token(made["id"])
    assert revoked["name"] == "ci"
    with pytest.raises(UnauthorizedError, match="unknown or revoked"):
        viewer.list_experiments()
    assert made["id"] not in {t["id"] for t in remote.list_tokens()}
    assert made["id"] in {t["id"] for t in remote.list_tokens(include_revoked=True)}
    with pytest.raises(NotFoundError):
        local.revoke_token(10**6)


def test_roles_and_namespaces_reach_the_caller(live_server: LiveServer) -> None:
    viewer = RemoteBackend(live_server.url, live_server.tokens.viewer("default"))
    with pytest.raises(ForbiddenError, match="needs editor"):
        viewer.create_experiment(experiment_doc("nope"))
    other = RemoteBackend(live_server.url, live_server.tokens.editor("team-b"))
    RemoteBackend(live_server.url, live_server.admin).create_experiment(
        experiment_doc("mine", maxTrialCount=1, parallelTrialCount=1)
    )
    with pytest.raises(NotFoundError):
        other.get_experiment("default", "mine")
    assert other.list_experiments() == []
    assert [e["metadata"]["name"] for e in viewer.list_experiments()] == ["mine"]


def test_connection_problems_are_clear_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = RemoteBackend(f"http://127.0.0.1:{port}", "token")
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=f"cannot reach the katib server at .*:{port}"):
        backend.list_experiments()
    assert time.monotonic() - started < 15
    with pytest.raises(UnauthorizedError, match="needs an API token"):
        connect(server="http://127.0.0.1:1", token=None)
    with pytest.raises(KatibError, match="expected http://HOST:PORT"):
        RemoteBackend("127.0.0.1:8080", "t")
