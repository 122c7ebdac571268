"""Fixtures for the Kubernetes launcher's tests on the test control plane."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.cluster.control_plane import ControlPlane
from trial_runner import TrialEnded, TrialEvent
from trial_runner.kubernetes import KubeApi, KubernetesLauncher, SidecarSettings


@pytest.fixture
def kube_api(kube_cluster: ControlPlane) -> Iterator[KubeApi]:
    api = KubeApi.connect(str(kube_cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def launcher(kube_api: KubeApi) -> Iterator[KubernetesLauncher]:
    # The process node runs `python` from the test interpreter's folder: this checkout.
    made = KubernetesLauncher(kube_api, sidecar=SidecarSettings(image="katib-local:test"))
    yield made
    made.close()


class Events:
    """What a launcher reported, as a sink."""

    def __init__(self) -> None:
        self.queue: queue.Queue[TrialEvent] = queue.Queue()
        self.seen: list[TrialEvent] = []

    def __call__(self, event: TrialEvent) -> None:
        self.queue.put(event)

    def until_end(self, timeout: float = 90) -> TrialEnded:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no TrialEnded within {timeout}s; seen {self.seen}", pytrace=False)
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, TrialEnded):
                return event

    def started(self) -> list[TrialEvent]:
        return [e for e in self.seen if type(e).__name__ == "TrialStarted"]


@pytest.fixture
def events() -> Events:
    return Events()


class PushRecorder:
    """A stand-in for the API's push endpoint (pods share the host's network here)."""

    token = "push-token-123"

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, Any]]] = []
        self.unauthorized = 0
        self.url = ""

    def values(self, trial: str, metric: str) -> list[float]:
        return [p["value"] for t, p in self.points if t == trial and p["name"] == metric]


@pytest.fixture
def push_recorder() -> Iterator[PushRecorder]:
    recorder = PushRecorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("Authorization") != f"Bearer {recorder.token}":
                recorder.unauthorized += 1
                self.send_response(401)
            else:
                trial = self.path.split("/trials/")[1].split("/")[0]
                recorder.points.extend((trial, p) for p in body["observations"])
                self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield recorder
    httpd.shutdown()
