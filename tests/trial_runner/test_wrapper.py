"""``python -m trial_runner -- CMD``: passthrough, exit status, metrics pushed in batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            recorder.requests.append((self.path, self.headers.get("Authorization"), body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    httpd.shutdown()


def wrapper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "trial_runner", *args], capture_output=True,
                          text=True, timeout=60, env=full_env)


SCRIPT = "import sys\nprint('hello')\nprint('loss=0.5')\nprint('loss=0.25')\nsys.exit({code})"


def test_passthrough_push_and_exit_code(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    result = wrapper("--metric-names", "loss", "--api-url", url, "--token", "t0k",
                     "--trial-name", "exp-abc", "--", sys.executable, "-c", SCRIPT.format(code=3))
    assert result.returncode == 3
    assert result.stdout == "hello\nloss=0.5\nloss=0.25\n"
    [(path, auth, body)] = recorder.requests
    assert path == "/api/v1/namespaces/default/trials/exp-abc/observations"
    assert auth == "Bearer t0k"
    assert [(o["name"], o["value"]) for o in body["observations"]] == [
        ("loss", 0.5), ("loss", 0.25)]


def test_environment_configures_the_push(server: tuple[str, Recorder]) -> None:
    url, recorder = server
    env = {"KATIB_API_URL": url, "KATIB_TRIAL_NAME": "exp-xyz", "KATIB_NAMESPACE": "team"}
    result = wrapper("--metric-names", "loss", "--", sys.executable, "-c",
                     SCRIPT.format(code=0), env=env)
    assert result.returncode == 0
    assert recorder.requests[0][0] == "/api/v1/namespaces/team/trials/exp-xyz/observations"


def test_file_collector(tmp_path: Path, server: tuple[str, Recorder]) -> None:
    url, recorder = server
    metrics = tmp_path / "metrics.log"
    code = f"print('accuracy=0.1'); open({str(metrics)!r}, 'w').write('accuracy=0.9\\n')"
    result = wrapper("--metric-names", "accuracy", "--collector", "File", "--path", str(metrics),
                     "--api-url", url, "--trial-name", "t", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    pushed = [(o["name"], o["value"]) for _, _, b in recorder.requests for o in b["observations"]]
    assert pushed == [("accuracy", 0.9)]  # from the file; stdout is not parsed


def test_signal_exit_status_and_usage_errors(server: tuple[str, Recorder]) -> None:
    url, _ = server
    killed = wrapper("--metric-names", "loss", "--no-push", "--", sys.executable, "-c",
                     "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == 128 + 9
    missing = wrapper("--metric-names", "loss", "--no-push", "--", "/no/such/command")
    assert missing.returncode == 127 and "cannot start" in missing.stderr
    no_command = wrapper("--metric-names", "loss", "--no-push")
    assert no_command.returncode == 2
    no_url = wrapper("--metric-names", "loss", "--", "true",
                     env={"KATIB_API_URL": "", "KATIB_TRIAL_NAME": ""})
    assert no_url.returncode == 2 and "--no-push" in no_url.stderr
    bad_regex = wrapper("--metric-names", "loss", "--no-push", "--metrics-format", "(",
                        "--", "true")
    assert bad_regex.returncode == 2 and "Traceback" not in bad_regex.stderr


def test_unreachable_server_does_not_kill_the_trial() -> None:
    result = wrapper("--metric-names", "loss", "--api-url", "http://127.0.0.1:9",
                     "--trial-name", "t", "--", sys.executable, "-c", SCRIPT.format(code=0))
    assert result.returncode == 0
    assert "could not report metrics" in result.stderr


def test_collector_options_are_checked() -> None:
    for args in (["--collector", "File"], ["--collector", "TensorFlowEvent"],
                 ["--collector", "PrometheusMetric"]):
        result = wrapper("--metric-names", "loss", "--no-push", *args, "--", "true")
        assert result.returncode == 2 and "needs --" in result.stderr, args


def test_text_metrics_are_pushed_as_text(server: tuple[str, Recorder]) -> None:
    # DARTS' trials print their objective as text; the sidecar is told which metrics are.
    url, recorder = server
    genotype = "Genotype(normal=[[('max_pooling_3x3', 0)]], normal_concat=range(1, 2))"
    code = f"print({'Best-Genotype=' + genotype!r})"
    result = wrapper("--metric-names", "Best-Genotype", "--metrics-format",
                     r"([\w-]+)=(Genotype.*)", "--text-metrics", "Best-Genotype",
                     "--api-url", url, "--trial-name", "t", "--", sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    [(_, _, body)] = recorder.requests
    [observation] = body["observations"]
    assert observation["name"] == "Best-Genotype" and observation["text"] == genotype
    assert "value" not in observation
