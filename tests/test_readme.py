"""The README's commands work as written: its server walkthrough runs end to end.

The block under "Server and SDK" is run with bash from the repository root, as a new user
would paste it: start ``katib server``, create the Branin experiment with curl from its Katib
YAML, list its trials with ``katib get trials`` through the server, get the best parameters
with the SDK in remote mode, make a viewer token, and stop the server with SIGTERM. Only the
port is changed (to a free one), and KATIB_HOME points into the test's folder.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from katib.storage import Storage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def walkthrough() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Server and SDK", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "the Server and SDK section has no sh block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_server_walkthrough_runs_as_written(katib_home: Path) -> None:
    katib = shutil.which("katib")
    assert katib, "the katib command is not on PATH (pip install -e .)"
    port = free_port()
    script = walkthrough().replace("8080", str(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env["KATIB_HOME"] = str(katib_home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    # curl printed the created experiment.
    assert '"kind":"Experiment"' in out and '"name":"branin"' in out
    # `katib get trials branin` through the server: its table (the trials it has so far).
    assert re.search(r"^\s*NAME\s+STATE\s+x1\s+x2\s+loss", out, re.M), out
    # The SDK printed the best parameters as a dict.
    [best_line] = [line for line in out.splitlines() if line.startswith("{'x1'")]
    best = ast.literal_eval(best_line)
    assert set(best) == {"x1", "x2"}
    assert -5 <= float(best["x1"]) <= 10 and 0 <= float(best["x2"]) <= 15
    # The viewer token was printed (on stdout) and made through the server.
    assert re.search(r"^katib_\S+$", out, re.M)
    storage = Storage.open(None)
    try:
        exp = storage.get_experiment("default", "branin")
        assert exp.condition.value == "Succeeded"
        assert exp.source_dir == str(REPO / "examples" / "branin")
        assert {t.role for t in storage.list_tokens("default")} == {"viewer"}
        assert len(storage.list_trials(exp.id)) == 30
    finally:
        storage.close()
    assert "katib server stopped" in done.stderr
