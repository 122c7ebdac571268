"""Browser tests of the dashboard: a real `katib server` process and Debian's Chromium driven
by Playwright for Python.

On a laptop without Chromium or Playwright the tests are skipped, saying why; with ``CI`` set
(1/true/yes) they fail instead. Screenshots of every page go to ``test-artifacts/dashboard/``
(git-ignored); every page is checked for console errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.storage import Storage
from tests.katib.dashboard.seed import seed

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
ADMIN_TOKEN = "dashboard-admin-token-0123456789"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("KATIB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# A trial that prints a line every 0.1 s while its hold file exists, then its loss.
LIVE_TRIAL = """
import os, sys, time
x, hold = float(sys.argv[1]), sys.argv[2]
i = 0
while os.path.exists(hold) and i < 3000:
    print(f"tick {i}", flush=True)
    i += 1
    time.sleep(0.1)
print(f"loss={(x - 1) ** 2}", flush=True)
"""


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or .ci/chromium.sh)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem:
        if IN_CI:
            pytest.fail(f"CI requires the browser tests: {problem}")
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class DashboardServer:
    """A `katib server` process over a seeded database, in its own KATIB_HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.work.mkdir(parents=True)
        (self.work / "live.py").write_text(textwrap.dedent(LIVE_TRIAL))
        self.hold = self.work / "hold"
        self.log = root / "server.log"
        self.url = ""
        self.viewer = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, KATIB_HOME=str(self.home), KATIB_ADMIN_TOKEN=ADMIN_TOKEN,
                   PYTHONPATH=str(REPO))
        env.pop("KATIB_DB", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "katib", "server", "--port", "0"],
                cwd=self.work, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://\S+)", self.log.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"katib server did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[DashboardServer]:
    srv = DashboardServer(tmp_path_factory.mktemp("dashboard"))
    storage = Storage.open(f"sqlite:///{srv.home / 'katib.db'}")
    seed(storage, "cmp-a", 60, seed=1, algorithm="random")
    seed(storage, "cmp-b", 45, seed=2, algorithm="tpe")
    srv.viewer = storage.create_token("vera", "default", "viewer")[1]
    storage.close()
    srv.start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.home / "logs", ignore_errors=True)


class Console:
    """Console errors of a page; those a test provokes on purpose are allowed by pattern."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(pattern)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(re.search(a, e) for a in self.allowed)]


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (its own sessionStorage) at 1280×720; fails on console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 720}, accept_downloads=True)
    pg = context.new_page()
    console = Console()
    pg.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    pg.console = console
    yield pg
    context.close()
    assert console.unexpected() == [], f"console errors in {request.node.name}"


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot as a test artifact; the page must not be wider than the
    1280-pixel window (wide tables scroll inside their own box)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280, f"{name}: the page is {width} pixels wide at 1280×720"


def sign_in(page: Any, server: DashboardServer, token: str, where: str = "/experiments") -> None:
    page.goto(f"{server.url}/#/signin")
    page.fill("#token", token)
    page.click("form button[type=submit]")
    page.wait_for_selector("#who button")
    if where != "/experiments":
        page.goto(f"{server.url}/#{where}")
