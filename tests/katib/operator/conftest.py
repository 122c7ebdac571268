"""The operator on the test control plane: ``katib operator`` as a process, acting with the
token of the katib-operator ServiceAccount that ``crds/`` binds (so a verb missing from its
RBAC fails a test), on its own SQLite database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.cluster.control_plane import ControlPlane

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]
TRAINER = Path(__file__).resolve().parent / "trainer.py"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90) -> T:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OperatorProcess:
    """One ``katib operator`` replica."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("ab")
        self.process = subprocess.Popen(argv, env=env, stdout=self._file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a node failure or an OOM kill."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._file.close()
        return int(self.process.returncode)


class Operators:
    """Starts operator replicas for one test; all share a database, a Lease and a port."""

    def __init__(self, cluster: ControlPlane, namespace: str, tmp: Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.tmp = tmp
        self.db = f"sqlite:///{tmp / 'operator.db'}"
        self.lease = f"katib-operator-{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.kubeconfig = cluster.service_account_kubeconfig(
            "katib-system", "katib-operator", path=tmp / "operator.kubeconfig"
        )
        self.started: list[OperatorProcess] = []

    def start(self, *extra: str, port: int | None = None,
              env: dict[str, str] | None = None) -> OperatorProcess:
        n = len(self.started)
        argv = [
            sys.executable, "-c", "from katib.cli import main; main()", "operator",
            "--namespace", self.namespace, "--db", self.db, "--kubeconfig",
            str(self.kubeconfig), "--lease-name", self.lease, "--lease-duration", "4",
            "--listen", f"127.0.0.1:{self.port if port is None else port}", *extra,
        ]
        environ = dict(os.environ, KATIB_HOME=str(self.tmp / f"home-{n}"), PYTHONUNBUFFERED="1",
                       **(env or {}))
        made = OperatorProcess(argv, environ, self.tmp / f"operator-{n}.log")
        self.started.append(made)
        return made

    def lease_holder(self) -> str:
        status, body = self.cluster.request(
            "GET", f"/apis/coordination.k8s.io/v1/namespaces/katib-system/leases/{self.lease}")
        return str(body["spec"].get("holderIdentity") or "") if status == 200 else ""

    def stop_all(self) -> None:
        for op in self.started:
            op.stop()


@pytest.fixture
def operators(katib_installed: ControlPlane, kube_namespace: str,
              tmp_path: Path) -> Iterator[Operators]:
    made = Operators(katib_installed, kube_namespace, tmp_path)
    try:
        yield made
    finally:
        made.stop_all()
        for op in made.started:
            print(f"--- {op.log.name}\n{op.output[-6000:]}")


def experiment_yaml(namespace: str, *, name: str = "slow", max_trials: int = 4,
                    parallel: int = 2, epochs: int = 2, seconds: float = 0.5,
                    resume_policy: str | None = None, **spec: Any) -> dict[str, Any]:
    """A random-search Experiment whose trials run tests/katib/operator/trainer.py."""
    body: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "Validation-accuracy",
                          "additionalMetricNames": ["loss"]},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": 1,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": "0.01", "max": "0.03"}}],
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "training-container",
                        "image": "python:3.11",
                        "command": ["python3", str(TRAINER),
                                    "--lr=${trialParameters.learningRate}",
                                    f"--epochs={epochs}", f"--seconds={seconds}"],
                    }]}}},
                },
            },
            **spec,
        },
    }
    if resume_policy:
        body["spec"]["resumePolicy"] = resume_policy
    return body


def apply(cluster: ControlPlane, body: dict[str, Any] | str, tmp: Path) -> None:
    path = tmp / f"apply-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    cluster.kubectl("apply", "-f", str(path))


def get_experiment(cluster: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    status, body = cluster.request(
        "GET", f"/apis/kubeflow.org/v1beta1/namespaces/{namespace}/experiments/{name}")
    return body if status == 200 else None


def condition(obj: dict[str, Any] | None) -> str | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return conditions[-1]["type"] if conditions and conditions[-1]["status"] == "True" else None


def finished(cluster: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    obj = get_experiment(cluster, namespace, name)
    return obj if condition(obj) in ("Succeeded", "Failed") else None


def pods_per_trial(cluster: ControlPlane, namespace: str) -> dict[str, int]:
    """How many pods ran for each trial (the process node keeps every pod's log folder)."""
    root = cluster.node_root / "logs" / namespace
    counts: dict[str, int] = {}
    for folder in root.glob("*") if root.exists() else []:
        trial = folder.name.rsplit("-", 1)[0]
        counts[trial] = counts.get(trial, 0) + 1
    return counts
