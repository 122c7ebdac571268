"""The collector kinds without a working published example, on the test control plane:
PrometheusMetric (the sidecar scrapes the trial's endpoint from inside its pod), Custom (the
experiment's own collector container, with the trial's push environment) and Push
(``katib.report_metrics`` with KATIB_API_URL and a token from the push Secret). StdOut, File
and TensorFlowEvent run Katib's published examples in tests/katib/operator/."""

from __future__ import annotations

import socket
import textwrap
from typing import Any

import pytest

from katib.spec import MetricsCollectorSpec
from tests.trial_runner.kubernetes.conftest import Events, PushRecorder
from tests.trial_runner.kubernetes.test_launcher import job, trial
from trial_runner import CollectionPlan, Ending
from trial_runner.kubernetes import KubernetesLauncher

pytestmark = [pytest.mark.k8s, pytest.mark.slow]


def plan(spec: dict[str, Any], *names: str) -> CollectionPlan:
    return CollectionPlan(names, MetricsCollectorSpec.model_validate(spec))


def push_env(recorder: PushRecorder) -> dict[str, str]:
    return {"KATIB_API_URL": recorder.url, "KATIB_API_TOKEN": recorder.token}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_metric(kube_namespace: str, launcher: KubernetesLauncher, events: Events,
                           push_recorder: PushRecorder) -> None:
    port = free_port()  # pods share the host's network here: one port per trial
    server = textwrap.dedent(f"""
        import threading, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        value = [0.5]
        class Metrics(BaseHTTPRequestHandler):
            def log_message(self, *args): pass
            def do_GET(self):
                body = f"# TYPE accuracy gauge\\naccuracy {{value[0]}}\\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        server = ThreadingHTTPServer(("127.0.0.1", {port}), Metrics)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for step in range(5):
            value[0] = 0.5 + step / 10
            time.sleep(0.8)
    """)
    collection = plan({"collector": {"kind": "PrometheusMetric"},
                       "source": {"httpGet": {"path": "/metrics", "port": port}}}, "accuracy")
    launcher.launch(trial(kube_namespace, "exp-prom", job(["python3", "-c", server]),
                          collection=collection, push_env=push_env(push_recorder)), events)
    assert events.until_end().ending == Ending.COMPLETED
    values = push_recorder.values("exp-prom", "accuracy")
    assert len(values) >= 2 and max(values) >= 0.7, values


def test_custom_collector_container(kube_namespace: str, launcher: KubernetesLauncher,
                                    events: Events, push_recorder: PushRecorder) -> None:
    train = "open('/katib/out.txt', 'w').write('accuracy=0.75\\nloss=0.25\\nEND\\n')"
    collect = textwrap.dedent("""
        import os, time, katib
        path = '/katib/out.txt'
        while not (os.path.exists(path) and open(path).read().endswith('END\\n')):
            time.sleep(0.2)
        for line in open(path):
            if '=' in line:
                name, value = line.strip().split('=')
                katib.report_metrics({name: float(value)})
    """)
    collection = plan({
        "collector": {"kind": "Custom", "customCollector": {
            "name": "my-collector", "image": "me/collector:1",
            "command": ["python3", "-c", collect]}},
        "source": {"fileSystemPath": {"path": "/katib/out.txt", "kind": "File"}},
    }, "accuracy", "loss")
    launcher.launch(trial(kube_namespace, "exp-custom", job(["python3", "-c", train]),
                          collection=collection, push_env=push_env(push_recorder)), events)
    assert events.until_end().ending == Ending.COMPLETED
    assert push_recorder.values("exp-custom", "accuracy") == [0.75]
    assert push_recorder.values("exp-custom", "loss") == [0.25]


def test_push_with_report_metrics(kube_namespace: str, launcher: KubernetesLauncher,
                                  events: Events, push_recorder: PushRecorder) -> None:
    train = "import katib\nfor i in range(3): katib.report_metrics({'loss': 1 / (i + 1)}, step=i)"
    launcher.launch(trial(kube_namespace, "exp-push", job(["python3", "-c", train]),
                          collection=plan({"collector": {"kind": "Push"}}, "loss"),
                          push_env=push_env(push_recorder)), events)
    assert events.until_end().ending == Ending.COMPLETED
    assert push_recorder.values("exp-push", "loss") == [1.0, 0.5, 1 / 3]
