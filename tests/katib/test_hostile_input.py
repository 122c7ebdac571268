"""Hostile input: property-based documents, bodies and metric lines; values that look like code.

Nothing a user (or an attacker with an editor token) writes may produce a traceback, a 5xx,
or run anything: documents and bodies get clear refusals naming what is wrong, metric lines
are parsed or skipped, and parameter values reach a trial as data, exactly as written.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katib.errors import InvalidExperimentError
from katib.spec import load_experiments, parse_experiment
from tests.katib.cli.conftest import experiment_doc
from trial_runner.metrics import MetricsParser

REPO = Path(__file__).resolve().parents[2]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += _paths(value, (*prefix, i))
    return out


BASE = experiment_doc("hostile")
PATHS = _paths(BASE)[1:]


@FAST
@given(st.sampled_from(PATHS), json_values)
def test_any_value_anywhere_in_a_document_is_refused_clearly_or_accepted(
    path: tuple[Any, ...], value: Any
) -> None:
    doc = copy.deepcopy(BASE)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        parse_experiment(doc)
    except InvalidExperimentError as e:
        assert e.errors and all(err.message for err in e.errors)


@FAST
@given(st.text(max_size=400))
def test_any_text_as_a_yaml_file_is_refused_clearly_or_accepted(text: str) -> None:
    try:
        load_experiments("fuzz.yaml", text=text)
    except InvalidExperimentError as e:
        assert e.errors


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_as_a_metric_line_are_parsed_or_skipped(line: bytes) -> None:
    parser = MetricsParser(["loss", "acc"], None)
    for observation in parser.parse_line(line):
        assert observation.name in ("loss", "acc")
        assert observation.value == observation.value  # not NaN
        assert abs(observation.value) != float("inf")


@FAST
@given(st.lists(st.text(alphabet="loss=acc0123456789.eE+- \t|:", max_size=40), max_size=5))
def test_metric_like_lines_never_raise(lines: list[str]) -> None:
    parser = MetricsParser(["loss", "acc"], [r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"])
    for line in lines:
        parser.parse_line(line.encode())


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(json_values, st.text(max_size=200)))
def test_any_api_body_is_a_clear_4xx(body: Any) -> None:
    from fastapi.testclient import TestClient

    from katib.api import create_app
    from katib.storage import Storage

    storage = _api_storage()
    with TestClient(create_app(storage)) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for path in ("/api/v1/namespaces/default/experiments", "/api/v1/validate",
                     "/api/v1/namespaces/default/trials/none/observations"):
            data = body if isinstance(body, str) else json.dumps(body)
            r = client.post(path, content=data.encode(), headers={
                **headers, "Content-Type": "application/json"})
            assert r.status_code < 500, (path, r.text)
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["detail"]
    _ = Storage


TOKEN = "hostile-admin-token-0123456789"
_storage: list[Any] = []


def _api_storage() -> Any:
    from katib.storage import Storage

    if not _storage:
        import tempfile

        folder = tempfile.mkdtemp(prefix="katib-hostile-")
        storage = Storage.open(f"sqlite:///{folder}/katib.db")
        storage.create_token("admin", "*", "admin", plaintext=TOKEN)
        _storage.append(storage)
    return _storage[0]


# --- values that look like code reach trials as data ----------------------------------------

NASTY = [
    "$(touch pwned-dollar)",
    "`touch pwned-backtick`",
    "; touch pwned-semicolon",
    "a'b\"c",
    "line1\nline2",
    "${trialParameters.x}",
    "$HOME",
    "|| touch pwned-or",
]

ECHO = """
import json, sys
with open("argv.jsonl", "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("loss=0.5")
"""


def test_parameter_values_with_shell_syntax_are_passed_as_data(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trial.py").write_text(ECHO)
    doc = experiment_doc(
        "nasty",
        args=["--x=${trialParameters.x}", "${trialParameters.x}"],
        parameters=[{"name": "x", "parameterType": "categorical",
                     "feasibleSpace": {"list": NASTY}}],
        algorithm={"algorithmName": "grid"},
        maxTrialCount=len(NASTY),
        parallelTrialCount=2,
    )
    (folder / "exp.yaml").write_text(yaml.safe_dump(doc))
    env = dict(os.environ, KATIB_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO))
    env.pop("KATIB_DB", None)
    done = subprocess.run([sys.executable, "-m", "katib", "run", "exp.yaml", "-q"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = [json.loads(line) for line in (folder / "argv.jsonl").read_text().splitlines()]
    # Each value arrived once, verbatim, and was never substituted a second time.
    assert sorted(args[1] for args in seen) == sorted(NASTY)
    assert all(args[0] == f"--x={args[1]}" for args in seen)
    assert not list(folder.glob("pwned*")) and not list(tmp_path.glob("**/pwned*"))


def test_a_collector_path_cannot_leave_the_trials_folder() -> None:
    doc = experiment_doc("escape")
    doc["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/katib/../..", "kind": "File"}},
    }
    with pytest.raises(InvalidExperimentError, match=r"\.\."):
        parse_experiment(doc)


def test_a_slow_client_does_not_hold_the_server(tmp_path: Path) -> None:
    from tests.katib.api.test_server import free_port

    port = free_port()
    env = dict(os.environ, KATIB_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO),
               KATIB_ADMIN_TOKEN=TOKEN)
    server = subprocess.Popen([sys.executable, "-m", "katib", "server", "--port", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        import httpx

        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        # Ten connections that send half a request and then nothing.
        slow = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /api/v1/validate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n")
            slow.append(s)
        started = time.monotonic()
        r = httpx.get(f"{url}/healthz", timeout=5)
        assert r.status_code == 200 and time.monotonic() - started < 2
        for s in slow:
            s.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
