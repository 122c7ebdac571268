"""A real ``katib server`` (uvicorn on a free loopback port) inside the test process.

``live_server`` serves the REST API with its background controller over the test's database,
so that the CLI (``--server``) and the SDK (``KatibClient(url, token)``) can be driven against
it over real HTTP, and their answers compared with the embedded mode's on the same database.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from katib.api import create_app
from katib.controller import BackgroundController
from katib.storage import Storage
from tests.katib.api.conftest import Tokens, experiment_doc, work_dir  # noqa: F401
from trial_runner.local import LocalProcessLauncher

__all__ = ["LiveServer", "experiment_doc"]


@dataclass
class LiveServer:
    url: str
    storage: Storage
    tokens: Tokens
    work_dir: Path

    @property
    def admin(self) -> str:
        return self.tokens.admin


@pytest.fixture
def storage(db_url: str) -> Iterator[Storage]:
    s = Storage.open(db_url)
    yield s
    s.close()


@pytest.fixture
def live_server(
    storage: Storage, katib_home: Path, work_dir: Path  # noqa: F811
) -> Iterator[LiveServer]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    controller = BackgroundController(
        storage,
        LocalProcessLauncher(katib_home),
        logs_root=katib_home / "logs",
        api_url=url,
        scan_interval=0.2,
    )
    app = create_app(storage, controller=controller, work_dir=str(work_dir))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield LiveServer(url, storage, Tokens(storage), work_dir)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
