"""``KatibClient(url, token)`` against a real ``katib server`` (uvicorn on loopback).

The server's controller runs the experiments, as processes on this machine; the SDK talks to
it over real HTTP. Embedded and remote clients are compared on the same work: the same
``tune()`` on separate databases, and the same reads on the server's own database.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib import KatibClient, search
from katib.client import ServerUnreachableError
from katib.errors import (
    ConflictError,
    ForbiddenError,
    InvalidExperimentError,
    NotFoundError,
    UnauthorizedError,
)
from katib.sdk import ExperimentFailedError, ExperimentTimeoutError, InvalidArgumentError
from tests.katib.client.conftest import LiveServer, experiment_doc

pytestmark = pytest.mark.e2e

WAIT = {"timeout": 90, "polling_interval": 0.1}


def quadratic(parameters: dict[str, Any]) -> dict[str, float]:
    """The function tuned embedded and through the server (self-contained, as tune() needs)."""
    import math

    x, y = parameters["x"], parameters["y"]
    loss = (x - 1) ** 2 + (y + 2) ** 2 + 0.1 * math.cos(parameters["layers"])
    print(f"scale={parameters['scale']} layers={parameters['layers']}")
    return {"loss": loss}


def held(parameters: dict[str, Any]) -> float:
    """Waits while a file named ``hold`` exists in the trial's folder, then returns x."""
    import os
    import time

    while os.path.exists("hold"):
        time.sleep(0.05)
    return float(parameters["x"])


def tune_quadratic(client: KatibClient, name: str) -> dict[str, Any]:
    return client.tune(
        name,
        quadratic,
        {
            "x": search.double(-3, 3),
            "y": search.double(-3, 3),
            "layers": search.int(1, 4),
            "scale": 2,
        },
        algorithm_name="random",
        algorithm_settings={"random_state": 7},
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=4,
        parallel_trial_count=1,
    )


def outcome(trials: list[dict[str, Any]]) -> list[tuple[dict[str, str], dict[str, Any], str]]:
    """What a trial did, without names and times."""
    return [
        (
            {a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]},
            {m["name"]: (m["min"], m["max"], m["latest"])
             for m in t["status"]["observation"]["metrics"]},
            t["status"]["condition"],
        )
        for t in trials
    ]


@pytest.fixture
def owner(live_server: LiveServer) -> Iterator[KatibClient]:
    client = KatibClient(live_server.url, live_server.tokens.owner("default"))
    yield client
    client.close()


def test_tune_gives_the_same_trials_embedded_and_through_the_server(
    live_server: LiveServer, owner: KatibClient, tmp_path: Path, katib_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    embedded = KatibClient(db=str(tmp_path / "embedded.db"))
    try:
        local_done = tune_quadratic(embedded, "quad-here")
        local_best = embedded.get_optimal_hyperparameters("quad-here")
        local_trials = embedded.list_trials("quad-here")
    finally:
        embedded.close()
    assert owner.remote and owner.url == live_server.url and owner.db_url is None
    remote_done = tune_quadratic(owner, "quad-there")
    assert local_done["status"]["condition"] == remote_done["status"]["condition"] == "Succeeded"
    assert remote_done["status"]["trialsSucceeded"] == 4

    remote_trials = owner.list_trials("quad-there")
    assert len(remote_trials) == 4
    assert outcome(remote_trials) == outcome(local_trials)
    remote_best = owner.get_optimal_hyperparameters("quad-there")
    assert local_best is not None and remote_best is not None
    assert remote_best.best_trial_name.startswith("quad-there-")
    assert remote_best.parameter_assignments == local_best.parameter_assignments
    assert remote_best.observation == local_best.observation
    assert remote_best.parameters["layers"] in {"1", "2", "3", "4"}

    # The source travelled inside the experiment: no script was written for it.
    [container] = remote_done["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"][
        "spec"]["containers"]
    assert container["command"][:3] == ["python", "-u", "-c"]
    assert "def quadratic(parameters" in container["command"][3]
    assert container["args"] == [
        "${trialParameters.x}", "${trialParameters.y}", "${trialParameters.layers}"]
    assert (katib_home / "functions" / "default" / "quad-here").is_dir()
    assert not (katib_home / "functions" / "default" / "quad-there").exists()
    # Trials ran on the server's machine, in its work folder, and printed there.
    first = remote_trials[0]["metadata"]["name"]
    assert "scale=2 layers=" in owner.get_job_logs(first)


def test_tune_without_waiting_returns_at_once(
    live_server: LiveServer, owner: KatibClient
) -> None:
    hold = live_server.work_dir / "hold"  # trials run in the server's work folder
    hold.write_text("")
    started = time.monotonic()
    created = owner.tune("later", held, {"x": search.double(0, 1)}, objective_metric_name="x",
                         max_trial_count=2, wait=False)
    assert time.monotonic() - started < 10
    assert created["status"]["condition"] not in ("Succeeded", "Failed")
    owner.wait_for_experiment_condition("later", expected_condition="Running", **WAIT)
    with pytest.raises(ExperimentTimeoutError, match="within 0.3 s"):
        owner.wait_for_experiment_condition("later", timeout=0.3, polling_interval=0.1)
    hold.unlink()
    done = owner.run_experiment("later")  # a server runs it: this only waits for the end
    assert done["status"]["condition"] == "Succeeded" and done["status"]["trials"] == 2
    with pytest.raises(ConflictError, match="already finished"):
        owner.run_experiment("later")


def test_create_experiment_from_a_yaml_file_in_another_folder(
    live_server: LiveServer, owner: KatibClient, db_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    # Only the YAML file's folder has train.py; the server's work folder has trial.py.
    (project / "train.py").write_text(textwrap.dedent("""
        import os, sys
        x = float(sys.argv[1].split("=")[1])
        print(f"loss={2 * x}")
        print(f"loss={x}")
        print("cwd", os.getcwd())
    """))
    doc = experiment_doc("from-yaml", maxTrialCount=2, parallelTrialCount=1)
    [container] = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"]
    container["command"] = ["python3", "train.py"]
    path = project / "experiment.yaml"
    path.write_text(yaml.safe_dump(doc))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    created = owner.create_experiment(os.path.relpath(path, elsewhere))
    assert created["status"]["condition"] == "Created"
    done = owner.wait_for_experiment_condition("from-yaml", **WAIT)
    assert done["status"]["trialsSucceeded"] == 2
    trials = owner.list_trials("from-yaml")
    name = trials[0]["metadata"]["name"]
    x = float(trials[0]["spec"]["parameterAssignments"][0]["value"])
    logs = owner.get_trial_metrics(name)
    assert [(m.metric.name, m.metric.value) for m in logs] == [
        ("loss", pytest.approx(2 * x)), ("loss", pytest.approx(x))]
    text = owner.get_job_logs(name)
    assert f"cwd {project}" in text

    # The same reads on the server's database, embedded, give the same answers.
    embedded = KatibClient(db=db_url)
    try:
        assert embedded.get_experiment("from-yaml") == owner.get_experiment("from-yaml")
        assert embedded.list_experiments() == owner.list_experiments()
        assert embedded.list_trials("from-yaml") == trials == owner.list_trials()
        assert embedded.get_trial(name) == owner.get_trial(name)
        assert embedded.get_trial_metrics(name) == logs
        assert embedded.get_optimal_hyperparameters("from-yaml") == (
            owner.get_optimal_hyperparameters("from-yaml"))
        assert embedded.get_success_trial_details("from-yaml") == (
            owner.get_success_trial_details("from-yaml"))
        assert embedded.get_job_logs(name) == text
    finally:
        embedded.close()

    # Validated here first: the file's own errors, with its path, and nothing sent.
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "2", "max": "1"}
    bad = project / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(InvalidExperimentError) as caught:
        owner.create_experiment(bad)
    assert caught.value.source == str(bad)
    assert [e.path for e in caught.value.errors] == ["spec.parameters[0].feasibleSpace.max"]
    with pytest.raises(ConflictError, match="already exists"):
        owner.create_experiment(path)


def test_logs_follow_budget_restart_stop_and_delete_through_the_server(
    live_server: LiveServer, owner: KatibClient, capsys: pytest.CaptureFixture[str]
) -> None:
    owner.create_experiment(experiment_doc("budget", maxTrialCount=2, parallelTrialCount=1,
                                           resumePolicy="LongRunning"))
    owner.wait_for_experiment_condition("budget", **WAIT)
    trials = owner.list_trials("budget")
    assert len(trials) == 2
    name = trials[0]["metadata"]["name"]
    text = owner.get_job_logs(name)
    assert text.startswith("loss=")
    assert owner.get_job_logs(name, follow=True) == text
    assert text in capsys.readouterr().out
    with pytest.raises(NotFoundError):
        owner.get_job_logs("budget-nope")

    with pytest.raises(InvalidArgumentError, match="give max_trial_count"):
        owner.edit_experiment_budget("budget")
    with pytest.raises(InvalidExperimentError, match="must exceed the 2 trials already run"):
        owner.edit_experiment_budget("budget", max_trial_count=2)
    restarted = owner.edit_experiment_budget("budget", max_trial_count=3)
    assert restarted["status"]["condition"] == "Restarting"
    assert restarted["spec"]["maxTrialCount"] == 3
    done = owner.wait_for_experiment_condition("budget", **WAIT)  # the server runs the new trial
    assert done["status"]["trials"] == 3 and done["status"]["trialsSucceeded"] == 3

    owner.create_experiment(experiment_doc("never", maxTrialCount=1, parallelTrialCount=1))
    owner.wait_for_experiment_condition("never", **WAIT)
    with pytest.raises(ConflictError, match="resumePolicy Never"):
        owner.edit_experiment_budget("never", max_trial_count=5)

    # Following a running trial's log until it ends; a budget edit while it runs.
    hold = live_server.work_dir / "hold"
    hold.write_text("")
    owner.create_experiment(experiment_doc("held", maxTrialCount=4, parallelTrialCount=1))
    owner.wait_for_experiment_condition("held", expected_condition="Running", **WAIT)
    edited = owner.edit_experiment_budget("held", max_trial_count=3, parallel_trial_count=2)
    assert edited["spec"]["maxTrialCount"] == 3 and edited["status"]["condition"] == "Running"
    trial = _first_trial(owner, "held")
    # The server's controller picks budget edits up every 2 s; let it, before trials end.
    threading.Timer(3.0, hold.unlink).start()
    followed = owner.get_job_logs(trial, follow=True)
    assert followed.startswith("loss=") and owner.get_trial(trial)["status"]["condition"] == (
        "Succeeded")
    done = owner.wait_for_experiment_condition("held", **WAIT)
    assert done["status"]["trials"] == 3

    # Stop, and delete of an unfinished experiment: stopped first, deleted once it ended.
    hold.write_text("")
    owner.create_experiment(experiment_doc("stopme", maxTrialCount=4, parallelTrialCount=2))
    owner.wait_for_experiment_condition("stopme", expected_condition="Running", **WAIT)
    owner.stop_experiment("stopme")
    stopped = owner.wait_for_experiment_condition("stopme", **WAIT)
    [succeeded] = [c for c in stopped["status"]["conditions"] if c["type"] == "Succeeded"]
    assert succeeded["reason"] == "ExperimentStoppedByUser"
    assert {t["status"]["condition"] for t in owner.list_trials("stopme")} == {"Killed"}
    with pytest.raises(ConflictError, match="already finished"):
        owner.stop_experiment("stopme")

    owner.create_experiment(experiment_doc("gone", maxTrialCount=4, parallelTrialCount=2))
    owner.wait_for_experiment_condition("gone", expected_condition="Running", **WAIT)
    editor = KatibClient(live_server.url, live_server.tokens.editor("default"))
    with pytest.raises(ForbiddenError, match="needs owner"):
        editor.delete_experiment("gone")
    assert editor.is_experiment_running("gone")  # refused before anything was stopped
    owner.delete_experiment("gone")
    with pytest.raises(NotFoundError):
        owner.get_experiment("gone")
    assert live_server.storage.find_trials(trial)  # the others are still there
    owner.delete_experiment("stopme")
    assert [e["metadata"]["name"] for e in owner.list_experiments()] == [
        "budget", "never", "held"]
    hold.unlink()
    editor.close()


def _first_trial(client: KatibClient, experiment: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [t for t in client.list_trials(experiment)
                   if t["status"]["condition"] == "Running"]
        if running:
            return str(running[0]["metadata"]["name"])
        time.sleep(0.05)
    raise AssertionError(f"no trial of {experiment} started")


def test_a_failing_experiment_and_missing_packages_on_the_server(owner: KatibClient) -> None:
    failed = owner.tune(
        "no-pkg", quadratic,
        {"x": search.double(-3, 3), "y": search.double(-3, 3), "layers": search.int(1, 4),
         "scale": 1},
        objective_metric_name="loss", objective_type="minimize", max_trial_count=2,
        max_failed_trial_count=0,
        packages_to_install=["pytest", "not-a-real-package-xyz>=1"],
    )
    assert failed["status"]["condition"] == "Failed"
    [trial] = owner.list_trials("no-pkg")
    assert trial["status"]["condition"] == "Failed"
    log = owner.get_job_logs(trial["metadata"]["name"])
    [line] = [x for x in log.splitlines() if "packages_to_install" in x]
    assert "not-a-real-package-xyz>=1 not installed" in line and "pytest" not in line
    assert owner.get_optimal_hyperparameters("no-pkg") is None
    with pytest.raises(ExperimentFailedError):
        owner.wait_for_experiment_condition("no-pkg", **WAIT)
    with pytest.raises(InvalidArgumentError, match="is not a package"):
        owner.tune("bad-pkg", quadratic, {"x": search.double(0, 1)}, objective_metric_name="x",
                   packages_to_install=["==1"])
    with pytest.raises(NotFoundError):
        owner.get_experiment("bad-pkg")


def test_viewers_cannot_tune_or_create_and_nothing_is_stored(
    live_server: LiveServer, owner: KatibClient
) -> None:
    viewer = KatibClient(live_server.url, live_server.tokens.viewer("default"))
    with pytest.raises(ForbiddenError, match="needs editor"):
        viewer.tune("peek", quadratic, {"x": search.double(0, 1)}, objective_metric_name="loss")
    with pytest.raises(ForbiddenError, match="needs editor"):
        viewer.create_experiment(experiment_doc("peek-yaml"))
    assert live_server.storage.list_experiments() == []
    assert viewer.list_experiments() == []

    owner.create_experiment(experiment_doc("mine", maxTrialCount=1, parallelTrialCount=1))
    owner.wait_for_experiment_condition("mine", **WAIT)
    assert viewer.get_experiment("mine") == owner.get_experiment("mine")
    with pytest.raises(ForbiddenError):
        viewer.edit_experiment_budget("mine", max_trial_count=3)
    with pytest.raises(ForbiddenError):
        viewer.delete_experiment("mine")
    viewer.close()


def test_namespaces_and_tokens(
    live_server: LiveServer, owner: KatibClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner.create_experiment(experiment_doc("mine", maxTrialCount=1, parallelTrialCount=1))
    owner.wait_for_experiment_condition("mine", **WAIT)
    trial = owner.list_trials("mine")[0]["metadata"]["name"]

    other = KatibClient(live_server.url, live_server.tokens.editor("team-b"), namespace="team-b")
    with pytest.raises(NotFoundError):
        other.get_experiment("mine", "default")
    with pytest.raises(NotFoundError):
        other.get_trial_metrics(trial, "default")
    with pytest.raises(NotFoundError):
        other.tune("intruder", quadratic, {"x": search.double(0, 1)},
                   objective_metric_name="loss", namespace="default")
    assert other.list_experiments() == []
    other.close()

    monkeypatch.setenv("KATIB_TOKEN", live_server.tokens.viewer("default"))
    from_env = KatibClient(live_server.url)
    assert [e["metadata"]["name"] for e in from_env.list_experiments()] == ["mine"]
    from_env.close()

    record, secret = live_server.storage.create_token("ci", "default", "editor")
    revoked = KatibClient(live_server.url, secret)
    assert revoked.is_experiment_succeeded("mine")
    live_server.storage.revoke_token(record.id)
    with pytest.raises(UnauthorizedError):
        revoked.get_experiment("mine")
    with pytest.raises(UnauthorizedError):
        KatibClient(live_server.url, "katib_not-a-token").list_experiments()
    monkeypatch.delenv("KATIB_TOKEN")
    with pytest.raises(UnauthorizedError, match="needs an API token"):
        KatibClient(live_server.url)


def test_an_unreachable_server_fails_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = KatibClient(f"http://127.0.0.1:{port}", "token")
    started = time.monotonic()
    with pytest.raises(ServerUnreachableError, match=f"cannot reach the katib server .*:{port}"):
        client.get_experiment("anything")
    with pytest.raises(ServerUnreachableError):
        client.tune("anything", quadratic, {"x": search.double(0, 1)},
                    objective_metric_name="loss")
    assert time.monotonic() - started < 20


def test_a_function_too_big_for_one_argument_is_refused(tmp_path: Path) -> None:
    module = tmp_path / "big_objective.py"
    module.write_text(
        "def big(parameters):\n"
        f"    table = {'x' * 140_000!r}\n"
        "    return parameters['x'] + len(table)\n"
    )
    spec = importlib.util.spec_from_file_location("big_objective", module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    # Refused before anything is sent: no server listens at this URL.
    client = KatibClient("http://127.0.0.1:9", "token")
    with pytest.raises(InvalidArgumentError, match="at most 131071 bytes"):
        client.tune("big", loaded.big, {"x": search.double(0, 1)}, objective_metric_name="x")


@pytest.mark.slow
def test_the_sdk_example_runs_through_a_server(live_server: LiveServer, tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    script = repo / "examples" / "sdk-tune" / "tune_quadratic.py"
    env = dict(
        os.environ,
        PYTHONPATH=str(repo),
        KATIB_SERVER=live_server.url,
        KATIB_TOKEN=live_server.tokens.owner("default"),  # it deletes its previous run
    )
    env.pop("KATIB_DB", None)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = dict(re.findall(r"^\s+(\w+) = (\S+)$", result.stdout, re.M))
    assert abs(float(found["x"]) - 2.0) < 1.5 and abs(float(found["y"]) + 1.0) < 1.5
    # The server ran it: its database has the experiment and the 20 trials.
    record = live_server.storage.get_experiment("default", "sdk-tune-quadratic")
    trials = live_server.storage.list_trials(record.id)
    assert len(trials) == 20 and all(t.state.value == "Succeeded" for t in trials)
