"""The CLI with ``--server URL --token T``: the same output as on the database, the server's
refusals as exit statuses, and ``run``/``restart``/``logs --follow`` watching a server's work.

A real server (uvicorn on loopback, with its controller) runs over the test's database, so
each command can be run both ways on the same experiments and the outputs compared.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from katib.cli import cli
from katib.client import RemoteBackend
from katib.errors import NotFoundError
from tests.katib.cli.conftest import REPO
from tests.katib.client import conftest as client_fixtures
from tests.katib.client.conftest import LiveServer, experiment_doc

pytestmark = pytest.mark.e2e

# The live server and the fixtures it stands on.
live_server = client_fixtures.live_server
storage = client_fixtures.storage
work_dir = client_fixtures.work_dir

# Prints the folder it runs in, so a test can tell which folder relative paths resolved to.
PROJECT_SCRIPT = """
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
a = p.parse_args()
while os.path.exists("hold"):
    time.sleep(0.05)
print("cwd", os.getcwd())
print(f"loss={a.x}")
"""


def katib(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.stderr, result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def remote(server: LiveServer, token: str | None = None) -> list[str]:
    return ["--server", server.url, "--token", token or server.admin]


def wait_for(predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def finished(server: LiveServer, name: str) -> dict[str, Any]:
    api = RemoteBackend(server.url, server.admin)

    def done() -> dict[str, Any] | None:
        exp = api.get_experiment("default", name)
        return exp if exp["status"]["condition"] in ("Succeeded", "Failed") else None

    exp: dict[str, Any] = wait_for(done)
    api.close()
    return exp


def running_trial(server: LiveServer, name: str) -> str:
    api = RemoteBackend(server.url, server.admin)

    def running() -> str | None:
        try:
            trials = api.list_trials("default", name)
        except NotFoundError:
            return None  # not created yet
        for t in trials:
            if t["status"]["condition"] == "Running":
                return str(t["metadata"]["name"])
        return None

    trial: str = wait_for(running)
    api.close()
    return trial


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder apart from the server's work folder, holding a YAML file and its script."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent(PROJECT_SCRIPT))
    doc = experiment_doc("proj", maxTrialCount=3)
    container = doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    container["command"] = ["python3", "train.py"]
    (folder / "experiment.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def subprocess_env(server: LiveServer) -> dict[str, str]:
    env = dict(
        os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", KATIB_SERVER=server.url,
        KATIB_TOKEN=server.admin,
    )
    env.pop("KATIB_DB", None)
    return env


def test_run_on_the_server_then_every_read_matches_the_database(
    live_server: LiveServer, project: Path, db_url: str, tmp_path: Path
) -> None:
    best_file = tmp_path / "best.json"
    code, out, err = katib(
        "run", str(project / "experiment.yaml"), "--output", str(best_file),
        *remote(live_server),
    )
    assert code == 0, err
    assert "best trial" in out and "default/proj" in out
    code, shown, _ = katib("best", "proj", "-o", "json", *remote(live_server))
    assert code == 0 and json.loads(best_file.read_text()) == json.loads(shown)
    assert json.loads(shown)["condition"] == "Succeeded"
    trials = json.loads(katib("get", "trials", "proj", "-o", "json", *remote(live_server))[1])
    assert len(trials["items"]) == 3
    # One line per finished trial, as a local run prints it when not on a terminal.
    for t in trials["items"]:
        assert f"{t['metadata']['name']} Succeeded" in out
    name = trials["items"][0]["metadata"]["name"]
    # Trials ran in the YAML file's folder, not in the server's.
    code, log, _ = katib("logs", name, *remote(live_server))
    assert code == 0 and f"cwd {project}\n" in log and "loss=" in log

    for args in (
        ["get", "experiments"],
        ["get", "experiments", "-o", "json"],
        ["get", "experiments", "-n", "default"],
        ["get", "trials", "proj"],
        ["get", "trials", "proj", "-o", "json"],
        ["describe", "experiment", "proj"],
        ["best", "proj"],
        ["best", "proj", "-o", "json"],
        ["logs", name],
        ["logs", name, "-n", "default"],
        ["token", "list"],
        ["token", "list", "--all", "-o", "json"],
    ):
        on_db = katib(*args, "--db", db_url)
        on_server = katib(*args, *remote(live_server))
        assert on_db[0] == on_server[0] == 0, (args, on_db[2], on_server[2])
        assert on_db[1] == on_server[1], args
    table = katib("get", "trials", "proj", *remote(live_server))[1]
    assert "loss" in table.splitlines()[0] and "DURATION" in table
    described = katib("describe", "experiment", "proj", *remote(live_server))[1]
    assert "Best trial:" in described and "trialsSucceeded=3" in described

    again = katib("run", str(project / "experiment.yaml"), *remote(live_server))
    assert again[0] == 2 and "already finished" in again[2]

    # Archived experiments are listed only with --archived, in both modes.
    archived = httpx.post(
        f"{live_server.url}/api/v1/namespaces/default/experiments/proj/archive",
        headers={"Authorization": f"Bearer {live_server.admin}"},
    )
    assert archived.status_code == 200, archived.text
    for where in (["--db", db_url], remote(live_server)):
        listed = json.loads(katib("get", "experiments", "-o", "json", *where)[1])["items"]
        assert listed == []
        shown = json.loads(katib("get", "experiments", "--archived", "-o", "json", *where)[1])
        assert [e["metadata"]["name"] for e in shown["items"]] == ["proj"]


def test_errors_through_the_server(live_server: LiveServer, db_url: str) -> None:
    api = RemoteBackend(live_server.url, live_server.admin)
    api.create_experiment(experiment_doc("mine", maxTrialCount=1, parallelTrialCount=1))
    finished(live_server, "mine")
    viewer = live_server.tokens.viewer("default")
    code, _, err = katib("delete", "experiment", "mine", *remote(live_server, viewer))
    assert code == 2 and "needs owner" in err
    code, _, err = katib("stop", "mine", *remote(live_server, viewer))
    assert code == 2 and "needs editor" in err
    code, _, err = katib("edit", "mine", "--max-trial-count", "5", *remote(live_server, viewer))
    assert code == 2 and "needs editor" in err
    other = live_server.tokens.editor("team-b")
    code, _, err = katib("describe", "experiment", "mine", *remote(live_server, other))
    assert code == 2 and "not found" in err
    code, out, _ = katib("get", "experiments", "-o", "json", *remote(live_server, other))
    assert code == 0 and json.loads(out)["items"] == []
    code, _, err = katib("get", "experiments", *remote(live_server, "katib_not-a-token"))
    assert code == 2 and "unknown or revoked" in err
    code, _, err = katib("get", "experiments", "--server", live_server.url)
    assert code == 2 and "needs an API token" in err
    code, _, err = katib("get", "experiments", *remote(live_server), "--db", db_url)
    assert code == 2 and "not both" in err
    code, _, err = katib("stop", "mine", *remote(live_server))
    assert code == 2 and "already finished" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = katib("get", "experiments", "--server", f"http://127.0.0.1:{port}",
                        "--token", "t")
    assert code == 1 and f"cannot reach the katib server at http://127.0.0.1:{port}" in err
    # The environment variables stand for the options; an explicit --db beats KATIB_SERVER.
    env = {"KATIB_SERVER": live_server.url, "KATIB_TOKEN": live_server.admin}
    assert katib("get", "experiments", env=env) == katib("get", "experiments", *remote(live_server))
    assert katib("get", "experiments", "--db", db_url, env=env)[1] == katib(
        "get", "experiments", "--db", db_url)[1]
    code, _, err = katib("get", "experiments", env={**env, "KATIB_DB": db_url})
    assert code == 2 and "not both" in err
    api.close()


def test_edit_stop_restart_delete_through_the_server(live_server: LiveServer) -> None:
    hold = live_server.work_dir / "hold"
    hold.write_text("")
    api = RemoteBackend(live_server.url, live_server.admin)
    api.create_experiment(experiment_doc("cycle", maxTrialCount=20, resumePolicy="LongRunning"))
    running_trial(live_server, "cycle")
    code, out, err = katib("edit", "cycle", "--max-failed-trial-count", "0", *remote(live_server))
    assert code == 0, err
    assert out.strip() == (
        "experiment default/cycle: maxTrialCount=20 parallelTrialCount=2 maxFailedTrialCount=0"
    )
    assert api.get_experiment("default", "cycle")["spec"]["maxFailedTrialCount"] == 0
    code, _, err = katib("delete", "experiment", "cycle", *remote(live_server))
    assert code == 2 and "stop it first" in err
    code, out, err = katib("stop", "cycle", *remote(live_server))
    assert code == 0 and "stop requested for default/cycle" in out, err
    stopped = finished(live_server, "cycle")
    assert "stopped" in stopped["status"]["message"]
    hold.unlink()
    tried = stopped["status"]["trials"]
    code, _, err = katib("restart", "cycle", "--max-trial-count", str(tried), *remote(live_server))
    assert code == 2 and "exceed" in err
    code, out, err = katib(
        "restart", "cycle", "--max-trial-count", str(tried + 2), *remote(live_server)
    )
    assert code == 0, err
    assert f"watching default/cycle on server {live_server.url} ({tried} trials so far)" in out
    assert "best trial" in out
    assert api.get_experiment("default", "cycle")["status"]["trials"] == tried + 2
    code, out, err = katib("delete", "experiment", "cycle", *remote(live_server))
    assert code == 0 and out.strip() == "experiment default/cycle deleted", err
    code, _, err = katib("describe", "experiment", "cycle", *remote(live_server))
    assert code == 2 and "not found" in err
    api.close()


def test_logs_follow_through_the_server(live_server: LiveServer) -> None:
    hold = live_server.work_dir / "hold"
    hold.write_text("")
    api = RemoteBackend(live_server.url, live_server.admin)
    api.create_experiment(experiment_doc("long", maxTrialCount=2))
    name = running_trial(live_server, "long")
    follower = subprocess.Popen(
        [sys.executable, "-m", "katib", "logs", name, "--follow"],
        env=subprocess_env(live_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert follower.poll() is None  # still following a running trial
        hold.unlink()
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    trial = api.get_trial("default", name)
    assert trial["status"]["condition"] == "Succeeded"
    assert out == (api.trial_log("default", name) or b"").decode()
    assert "loss=" in out
    code, _, err = katib("logs", "nope-123", *remote(live_server))
    assert code == 2 and "not found" in err
    api.close()


def test_tokens_through_the_server(live_server: LiveServer) -> None:
    code, out, err = katib(
        "token", "create", "--namespace", "team-a", "--role", "viewer", "--name", "ci",
        *remote(live_server),
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("katib_") and "shown only this once" in err
    listed = json.loads(katib("token", "list", "-o", "json", *remote(live_server))[1])["items"]
    [made] = [t for t in listed if t["name"] == "ci"]
    assert made["namespace"] == "team-a" and made["role"] == "viewer" and secret not in str(listed)
    code, out, _ = katib("token", "list", *remote(live_server))
    assert "team-a" in out and "viewer" in out
    assert katib("get", "experiments", *remote(live_server, secret))[0] == 0
    code, _, err = katib("token", "create", "--namespace", "x", "--role", "viewer",
                        *remote(live_server, secret))
    assert code == 2, err
    code, out, err = katib("token", "revoke", str(made["id"]), *remote(live_server))
    assert code == 0 and out.strip() == f"token #{made['id']} (ci) revoked", err
    code, _, err = katib("get", "experiments", *remote(live_server, secret))
    assert code == 2 and "unknown or revoked" in err
    code, out, _ = katib("token", "list", "--all", *remote(live_server))
    assert "ci" in out


@pytest.mark.slow
def test_ctrl_c_leaves_the_experiment_running_on_the_server(
    live_server: LiveServer, project: Path
) -> None:
    (project / "hold").write_text("")
    command = [sys.executable, "-m", "katib", "run", str(project / "experiment.yaml")]
    env = subprocess_env(live_server)
    watcher = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        running_trial(live_server, "proj")
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 130, err
    assert "Traceback" not in err
    assert "keeps running on the server" in err and "katib stop proj" in err
    api = RemoteBackend(live_server.url, live_server.admin)
    assert api.get_experiment("default", "proj")["status"]["condition"] == "Running"
    # Running the file again attaches to the experiment and watches it to its end.
    again = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert again.stdout is not None
        first = again.stdout.readline()
        assert first.startswith(f"watching default/proj on server {live_server.url}"), first
        (project / "hold").unlink()
        rest, err = again.communicate(timeout=120)
    finally:
        if again.poll() is None:
            again.kill()
    assert again.returncode == 0, err
    assert "best trial" in rest and "experiment proj: Succeeded" in rest
    assert api.get_experiment("default", "proj")["status"]["trials"] == 3
    api.close()


def test_run_on_the_server_resumes_as_locally(live_server: LiveServer, project: Path) -> None:
    """A file run again while its experiment runs: new counts are taken, other changes refused."""
    (project / "hold").write_text("")
    doc = yaml.safe_load((project / "experiment.yaml").read_text())
    api = RemoteBackend(live_server.url, live_server.admin)
    api.create_experiment(doc, source_dir=str(project))
    running_trial(live_server, "proj")
    changed = json.loads(json.dumps(doc))
    changed["spec"]["parameters"][0]["feasibleSpace"]["max"] = "0.95"
    (project / "changed.yaml").write_text(yaml.safe_dump(changed))
    code, _, err = katib("run", str(project / "changed.yaml"), *remote(live_server))
    assert code == 2 and "different spec" in err and "spec.parameters" in err, err
    space = api.get_experiment("default", "proj")["spec"]["parameters"][0]["feasibleSpace"]
    assert space["max"] == "0.9"
    more = json.loads(json.dumps(doc))
    more["spec"]["maxTrialCount"] = 4
    (project / "more.yaml").write_text(yaml.safe_dump(more))
    watcher = subprocess.Popen(
        [sys.executable, "-m", "katib", "run", str(project / "more.yaml")],
        env=subprocess_env(live_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first.startswith("watching default/proj"), first
        assert api.get_experiment("default", "proj")["spec"]["maxTrialCount"] == 4
        # The server's own run takes the new budget at once (no wait for a heartbeat).
        (project / "hold").unlink()
        _, err = watcher.communicate(timeout=120)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert api.get_experiment("default", "proj")["status"]["trials"] == 4
    api.close()
