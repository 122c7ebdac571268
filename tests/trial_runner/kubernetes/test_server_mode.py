"""``katib server --launcher kubernetes`` on the test control plane, as the katib-server
ServiceAccount that ``crds/`` binds: experiments created through the API run their trials
as Jobs in the experiment's namespace, metrics come back through the sidecar."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.control_plane import ControlPlane
from tests.trial_runner.kubernetes.test_launcher import wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "tests" / "fixtures" / "katib_examples" / "hp-tuning" / "random.yaml"
STANDIN = ROOT / "tests" / "fixtures" / "local_standins" / "mnist.py"
TOKEN = "admin-token-for-tests-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example(namespace: str, max_trials: int = 4) -> str:
    """Katib's published random.yaml, its script pointed at the local stand-in."""
    text = EXAMPLE.read_text()
    text = text.replace("namespace: kubeflow", f"namespace: {namespace}")
    text = text.replace("/opt/mxnet-mnist/mnist.py", str(STANDIN))
    return text.replace("maxTrialCount: 12", f"maxTrialCount: {max_trials}")


@pytest.fixture
def server(katib_installed: ControlPlane, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    kubeconfig = katib_installed.service_account_kubeconfig("katib-system", "katib-server")
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    env = dict(os.environ, KATIB_HOME=str(tmp_path / "home"), KATIB_ADMIN_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-c", "from katib.cli import main; main()", "server", "--port",
         str(port), "--launcher", "kubernetes", "--kubeconfig", str(kubeconfig)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        wait_for("the server", lambda: _ready(client), timeout=60)
        yield url, client
    finally:
        process.terminate()
        process.wait(30)
        client.close()
        log.close()
        print((tmp_path / "server.log").read_text())


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def test_api_experiments_run_as_jobs_in_their_namespace(
    server: tuple[str, Any], kube_namespace: str, katib_installed: ControlPlane
) -> None:
    _, client = server
    created = client.post(
        f"/api/v1/namespaces/{kube_namespace}/experiments",
        content=example(kube_namespace),
        headers={"Content-Type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    jobs_seen: set[str] = set()

    def finished() -> dict[str, Any] | None:
        listed = katib_installed.kubectl("get", "jobs", "-n", kube_namespace, "-o", "name")
        jobs_seen.update(listed.stdout.split())
        body = client.get(f"/api/v1/namespaces/{kube_namespace}/experiments/random").json()
        return body if body["status"]["condition"] in ("Succeeded", "Failed") else None

    body = wait_for("the experiment to finish", finished, timeout=180)
    assert body["status"]["condition"] == "Succeeded", body["status"]
    assert body["status"]["trialsSucceeded"] == 4
    best = body["status"]["currentOptimalTrial"]
    assert best["bestTrialName"] and best["observation"]["metrics"]
    trials = client.get(f"/api/v1/namespaces/{kube_namespace}/experiments/random/trials").json()
    names = {t["metadata"]["name"] for t in trials["items"]}
    assert len(names) == 4
    assert jobs_seen and {j.split("/")[1] for j in jobs_seen} <= names  # trials ran as Jobs
    # Finished Jobs are deleted (retain: false), their pods with them.
    wait_for("the Jobs to go", lambda: not katib_installed.kubectl(
        "get", "jobs", "-n", kube_namespace, "-o", "name").stdout.strip())
