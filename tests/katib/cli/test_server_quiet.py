"""``katib server`` keeps the user's terminal quiet, and ``/`` says where the API is.

The server runs as a process, as a user starts it; its terminal output (stdout and stderr)
is captured and checked after a few requests. ``/`` answers with links to ``/docs`` until a
dashboard serves it: the fallback steps aside for any router that does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from katib.api import create_app
from katib.api.routes import root
from katib.storage import Storage
from tests.katib.cli.conftest import REPO

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(folder: Path, home: Path, *args: str) -> tuple[str, str]:
    """Start ``katib server ARGS``, make a few requests, stop it; its url and terminal output."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, KATIB_HOME=str(home), PYTHONPATH=str(REPO),
               KATIB_ADMIN_TOKEN="quiet-admin-token-0123456789")
    env.pop("KATIB_DB", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "katib", "server", "--port", str(port), *args],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "did not start"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for path in ("/", "/docs", "/api/v1/experiments", "/nope"):
            httpx.get(url + path, timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    return url, out


def test_the_server_writes_no_access_log_to_the_terminal(tmp_path: Path, katib_home: Path) -> None:
    url, out = serve(tmp_path, katib_home)
    assert out.splitlines() == [
        f"katib server listening on {url} (dashboard: {url}/, API docs: {url}/docs)",
        "katib server stopped",
    ]


def test_access_log_goes_to_the_file_asked_for(tmp_path: Path, katib_home: Path) -> None:
    log = tmp_path / "access.log"
    url, out = serve(tmp_path, katib_home, "--access-log", str(log))
    assert "GET" not in out
    lines = log.read_text().splitlines()
    assert any('"GET / HTTP/1.1" 200' in line for line in lines), lines
    assert any('"GET /api/v1/experiments HTTP/1.1" 401' in line for line in lines), lines
    assert any('"GET /nope HTTP/1.1" 404' in line for line in lines), lines


def test_root_points_at_the_api_docs(tmp_path: Path) -> None:
    storage = Storage.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        client = TestClient(create_app(storage, dashboard=False))
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<a href="/docs">/docs</a>' in page.text and "no dashboard yet" in page.text
        answer = client.get("/")  # curl, scripts
        assert answer.status_code == 200
        assert answer.json()["docs"] == "/docs" and answer.json()["api"] == "/api/v1"
        assert "/" not in client.get("/openapi.json").json()["paths"]
    finally:
        storage.close()


def test_a_dashboard_router_owns_the_root() -> None:
    app = FastAPI()
    dashboard = APIRouter()

    @dashboard.get("/")
    def home() -> dict[str, str]:
        return {"page": "dashboard"}

    app.include_router(dashboard)
    root.add_fallback(app)
    assert TestClient(app).get("/").json() == {"page": "dashboard"}
    assert [r for r in app.routes if getattr(r, "name", "") == "root-fallback"] == []
