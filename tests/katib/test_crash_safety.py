"""Crash safety at named points: SIGKILL the controller there, start again, lose nothing.

For every point of ``katib._faults.POINTS`` and both drivers (``katib run`` and
``katib server``), the controller kills itself with SIGKILL the third time it reaches the
point. The test then reads what the database holds, starts the same driver again without
the fault, and checks that the experiment finishes and that:

* every trial that had finished is still finished, with the same state, objective and
  observation points;
* the best result never got worse;
* no trial name was used twice and no trial is left Running or Created;
* the algorithm's state was restored, or rebuilt from the history with an event saying so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from katib._faults import ENV_AFTER, ENV_POINT, POINTS
from katib.records import ExperimentCondition, TrialState
from katib.storage import Storage
from tests.katib.api.test_server import HEADERS, TOKEN, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NAME = "crash"
TRIAL = """
import sys, time
x = float(sys.argv[1])
for step in range(3):
    print(f"loss={(x - 0.3) ** 2 + 1 / (step + 1)}", flush=True)
    time.sleep(0.6)  # the launcher reports metrics each second: some arrive mid-run
"""


def experiment() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": NAME},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": "tpe",
                "algorithmSettings": [{"name": "random_state", "value": "3"}],
            },
            "parallelTrialCount": 2,
            "maxTrialCount": 8,
            "parameters": [
                {"name": "x", "parameterType": "double",
                 "feasibleSpace": {"min": "0", "max": "1"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {
                        "containers": [{
                            "name": "main", "image": "python:3.11",
                            "command": ["python3", "trial.py", "${trialParameters.x}"],
                        }],
                        "restartPolicy": "Never",
                    }}},
                },
            },
        },
    }


@dataclass(frozen=True)
class Snapshot:
    finished: dict[str, tuple[TrialState, float | None, int]]  # name → state, objective, points
    names: list[str]
    best: float | None


def snapshot(db: Path) -> Snapshot:
    storage = Storage.open(f"sqlite:///{db}")
    try:
        record = storage.get_experiment("default", NAME)
        trials = storage.list_trials(record.id)
        finished = {
            t.name: (t.state, t.objective, len(storage.get_observations(t.id)))
            for t in trials
            if t.state.is_finished
            and not (t.state == TrialState.KILLED and t.reason == "Interrupted")
        }
        best = [t.objective for t in trials if t.state == TrialState.SUCCEEDED
                and t.objective is not None]
        return Snapshot(finished, [t.name for t in trials], min(best) if best else None)
    finally:
        storage.close()


class Project:
    def __init__(self, tmp_path: Path) -> None:
        self.folder = tmp_path / "project"
        self.folder.mkdir()
        self.home = tmp_path / "home"
        (self.folder / "trial.py").write_text(TRIAL)
        (self.folder / "exp.yaml").write_text(yaml.safe_dump(experiment()))
        self.db = self.home / "katib.db"

    def env(self, point: str | None) -> dict[str, str]:
        env = dict(os.environ, KATIB_HOME=str(self.home), PYTHONPATH=str(REPO),
                   KATIB_ADMIN_TOKEN=TOKEN)
        env.pop("KATIB_DB", None)
        env.pop(ENV_POINT, None)
        if point is not None:
            env[ENV_POINT] = point
            env[ENV_AFTER] = "2"
        return env

    def run(self, point: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "katib", "run", "exp.yaml", "--quiet"],
            cwd=self.folder, env=self.env(point), capture_output=True, text=True, timeout=300,
        )

    def serve(self, point: str | None) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        log = open(self.folder / f"server-{port}.log", "wb")  # noqa: SIM115 - closed by the OS
        proc = subprocess.Popen(
            [sys.executable, "-m", "katib", "server", "--port", str(port)],
            cwd=self.folder, env=self.env(point), stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "the server died while starting"
            time.sleep(0.1)
        raise AssertionError("the server did not start")


def condition(url: str) -> str:
    body = httpx.get(f"{url}/api/v1/namespaces/default/experiments/{NAME}", headers=HEADERS,
                     timeout=10).json()
    return str(body["status"]["condition"])


def check_after(project: Project, before: Snapshot, point: str) -> None:
    # The crash came mid-run, the third time the point was reached: there was work to lose.
    assert before.names, "no trial was stored before the crash"
    if point == "while-finishing":
        assert len(before.finished) == 2, before.finished
    after = snapshot(project.db)
    storage = Storage.open(f"sqlite:///{project.db}")
    try:
        record = storage.get_experiment("default", NAME)
        trials = storage.list_trials(record.id)
        events = storage.list_events(record.id)
    finally:
        storage.close()
    assert record.condition == ExperimentCondition.SUCCEEDED, record.message
    for name, was in before.finished.items():
        now = after.finished.get(name)
        assert now == was, f"{name} changed: {was} → {now}"
    assert len(after.names) == len(set(after.names))
    assert set(before.names) <= set(after.names)
    assert not [t.name for t in trials if t.state.is_active]
    if before.best is not None:
        assert after.best is not None and after.best <= before.best
    counted = [
        t for t in trials if not (t.state == TrialState.KILLED and t.reason == "Interrupted")
    ]
    assert len(counted) == 8
    # Restored from the stored state, or rebuilt with an event; never silently dropped.
    rebuilt = [e for e in events if e.reason == "AlgorithmStateRebuilt"]
    assert all("rebuilt from the history" in e.message for e in rebuilt)


@pytest.mark.parametrize("point", POINTS)
def test_katib_run_survives_sigkill(tmp_path: Path, point: str) -> None:
    project = Project(tmp_path)
    crashed = project.run(point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    before = snapshot(project.db)
    resumed = project.run(None)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    check_after(project, before, point)


@pytest.mark.parametrize("point", POINTS)
def test_katib_server_survives_sigkill(tmp_path: Path, point: str) -> None:
    project = Project(tmp_path)
    proc, url = project.serve(point)
    try:
        created = httpx.post(
            f"{url}/api/v1/namespaces/default/experiments",
            content=(project.folder / "exp.yaml").read_bytes(),
            headers={**HEADERS, "Content-Type": "application/yaml"},
            params={"sourceDir": str(project.folder)},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    before = snapshot(project.db)
    proc, url = project.serve(None)
    try:
        deadline = time.monotonic() + 180
        while condition(url) not in ("Succeeded", "Failed"):
            assert time.monotonic() < deadline, "the experiment did not finish after a restart"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    check_after(project, before, point)
