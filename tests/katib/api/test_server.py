"""``katib server`` as a user runs it: a process on a free port, driven over HTTP.

Creates experiments from Katib YAML (as ``curl -X POST -H 'Content-Type: application/yaml'
--data-binary @exp.yaml`` would), waits for them to succeed with trials running as local
processes (one reporting on stdout, one pushing with ``katib.report_metrics``), and stops the
server with SIGTERM, mid-run too: interrupted trials run again at the next start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from katib.records import REASON_INTERRUPTED, ExperimentCondition, TrialState
from katib.storage import Storage
from tests.katib.api.conftest import TRIAL_SCRIPT, experiment_doc
from tests.katib.cli.conftest import trial_processes

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-admin-token-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
EXPERIMENTS = "/api/v1/namespaces/default/experiments"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One `katib server` process in a project folder with its own KATIB_HOME."""

    def __init__(self, folder: Path, home: Path) -> None:
        self.folder = folder
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = folder / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(
            os.environ, KATIB_HOME=str(self.home), KATIB_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(REPO)
        )
        env.pop("KATIB_DB", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "katib", "server", "--port", str(self.port)],
                cwd=self.folder,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, headers=HEADERS, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_condition(self, name: str, wanted: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"{EXPERIMENTS}/{name}")
            if body["status"]["condition"] == wanted:
                return body  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"{name} never became {wanted}:\n{self.log.read_text()}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trial.py").write_text(textwrap.dedent(TRIAL_SCRIPT))
    return folder


@pytest.fixture
def server(project: Path, katib_home: Path) -> Iterator[Server]:
    s = Server(project, katib_home)
    s.start()
    yield s
    if s.proc is not None:
        s.proc.kill()
        s.proc.wait()


def post_yaml(server: Server, doc: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.url + EXPERIMENTS,
        content=yaml.safe_dump(doc, sort_keys=False).encode(),
        headers={**HEADERS, "Content-Type": "application/yaml"},
        timeout=10,
    )


def test_a_user_session(server: Server, katib_home: Path) -> None:
    stdout = post_yaml(server, experiment_doc("curl"))
    assert stdout.status_code == 201, stdout.text
    pushed = experiment_doc(
        "pushed",
        args=["--x=${trialParameters.x}", "--push"],
        metricsCollectorSpec={"collector": {"kind": "Push"}},
    )
    assert post_yaml(server, pushed).status_code == 201

    for name in ("curl", "pushed"):
        done = server.wait_condition(name, "Succeeded")
        assert done["status"]["trialsSucceeded"] == 3
        trials = server.get(f"{EXPERIMENTS}/{name}/trials?sort=objective")["items"]
        assert [t["status"]["condition"] for t in trials] == ["Succeeded"] * 3
        best = server.get(f"{EXPERIMENTS}/{name}/best")
        assert best["bestTrialName"] == trials[0]["metadata"]["name"]
        x = float(best["parameterAssignments"][0]["value"])
        assert best["observation"]["metrics"][0]["latest"] == pytest.approx(x)

    # Pushed values went through the REST API into the observation log.
    trial = server.get(f"{EXPERIMENTS}/pushed/trials")["items"][0]["metadata"]["name"]
    log = server.get(f"/api/v1/namespaces/default/trials/{trial}/observations")
    assert {m["metric"]["name"] for m in log["metricLogs"]} == {"loss", "pushed"}
    first = server.get(f"{EXPERIMENTS}/curl/trials")["items"][0]["metadata"]["name"]
    text = httpx.get(
        f"{server.url}/api/v1/namespaces/default/trials/{first}/logs", headers=HEADERS
    ).text
    assert text.startswith("loss=")
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'katib_experiments{condition="Succeeded"} 2.0' in metrics

    assert server.terminate() == 0
    storage = Storage.open(f"sqlite:///{katib_home / 'katib.db'}")
    # Only the admin token is left: every run's push token was revoked.
    assert [t.name for t in storage.list_tokens()] == ["admin (KATIB_ADMIN_TOKEN)"]


def test_sigterm_mid_run_and_resume(server: Server, project: Path, katib_home: Path) -> None:
    (project / "hold").touch()
    assert post_yaml(server, experiment_doc("held")).status_code == 201
    deadline = time.monotonic() + 60
    while server.get(f"{EXPERIMENTS}/held")["status"]["trialsRunning"] < 2:
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.2)
    names = {t.name for t in Storage.open(f"sqlite:///{katib_home / 'katib.db'}").list_trials(1)}
    pids = trial_processes(names)
    assert len(pids) == 2
    assert server.terminate() == 0
    storage = Storage.open(f"sqlite:///{katib_home / 'katib.db'}")
    record = storage.get_experiment("default", "held")
    assert record.owner is None and record.condition == ExperimentCondition.RUNNING
    trials = storage.list_trials(record.id)
    assert {(t.state, t.reason) for t in trials} == {(TrialState.KILLED, REASON_INTERRUPTED)}
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the trial processes are gone

    (project / "hold").unlink()
    server.start()
    done = server.wait_condition("held", "Succeeded")
    assert done["status"]["trialsSucceeded"] == 3
    assert server.terminate() == 0
