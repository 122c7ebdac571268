"""The README's commands work as written: its quick tour and its server walkthrough.

The quick tour is run with bash, line by line under ``set -e``, in a copy of the examples
(so that its files land in the test's folder): every command must succeed. Its ``pip install
-e examples/plugin-algorithm`` installs the plugin into a folder of the test (``pip install
--target``, put on PYTHONPATH) rather than into the environment the tests run in.

The block under "Server and SDK" is run with bash from the repository root, as a new user
would paste it: start ``katib server``, create the Branin experiment with curl from its Katib
YAML, list its trials with ``katib get trials`` through the server, get the best parameters
with the SDK in remote mode, make a viewer token, and stop the server with SIGTERM. Only the
port is changed (to a free one), and KATIB_HOME points into the test's folder.
"""

from __future__ import annotations

import ast
import json
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


def sh_block(heading: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, f"the {heading} section has no sh block"
    return match.group(1)


def walkthrough() -> str:
    return sh_block("Server and SDK")


def user_env(katib_home: Path) -> dict[str, str]:
    """The environment of a new user's shell: katib on PATH, no KATIB_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env["KATIB_HOME"] = str(katib_home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


PLUGIN_INSTALL = "pip install -e examples/plugin-algorithm"


def test_quick_tour_runs_as_written(katib_home: Path, tmp_path: Path) -> None:
    assert shutil.which("katib"), "the katib command is not on PATH (pip install -e .)"
    tour = sh_block("Quick tour")
    assert PLUGIN_INSTALL in tour
    site = tmp_path / "site"
    script = tour.replace(
        PLUGIN_INSTALL,
        f"{sys.executable} -m pip install --quiet --no-deps --no-build-isolation "
        f"--target {site} examples/plugin-algorithm",
    )
    folder = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", folder / "examples",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    env = user_env(katib_home)
    env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out, err = done.stdout, done.stderr
    assert "Traceback" not in out + err
    # validate: every example, the plugin one too once its package is installed.
    for example in ("branin", "branin-grid", "sklearn-svc", "plugin-algorithm"):
        assert f"examples/{example}/experiment.yaml: valid" in out
    # run --output says where it wrote.
    assert f"wrote the optimal trial to {folder / 'best.json'}" in out
    best = json.loads((folder / "best.json").read_text())
    assert best["experiment"] == "branin" and best["bestTrialName"]
    # get trials --sort-by objective: the best trial first; -o csv: one row per trial.
    rows = (folder / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("name,state,value,params_x1,params_x2,metrics_loss,")
    assert len(rows) == 1 + 30
    lines = out.splitlines()
    [head] = [i for i, line in enumerate(lines) if re.match(r"\s*NAME\s+STATE\s+x1\s+x2\s+loss"
                                                            r"\s+DURATION\s+REASON", line)]
    first = lines[head + 1].split()[0]
    assert first == best["bestTrialName"], "get trials --sort-by objective: the best first"
    # describe trial and logs of the best trial.
    assert f"Name:        {best['bestTrialName']}" in out
    assert "loss=" in out
    # restart, edit + restart ran 20 more trials; delete removed it.
    assert "Restarting" in out and "katib restart branin" in out
    assert "experiment default/branin deleted" in out
    storage = Storage.open(None)
    try:
        assert storage.list_experiments() == []
    finally:
        storage.close()


def test_nas_block_runs_as_written(katib_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "checkout"
    shutil.copytree(REPO / "examples", folder / "examples",
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", sh_block("Neural architecture search")],
        cwd=folder, env=user_env(katib_home), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    best = json.loads(out[out.index('{\n  "experiment": "enas-digits"'):].split("\n}\n")[0] + "}")
    assert {a["name"] for a in best["parameterAssignments"]} == {"architecture", "nn_config"}
    assert best["observation"]["metrics"][0]["max"] >= 0.95
    assert "Best-Genotype" in out and "Genotype(normal=" in out


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
    env = user_env(katib_home)
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
    # `katib get trials branin` through the server: its table (the trials it has so far), or,
    # when it asks before the first trial was made, that there is none yet (on stderr, as
    # kubectl says "No resources found").
    assert re.search(r"^\s*NAME\s+STATE\s+x1\s+x2\s+loss", out, re.M) or (
        "No trials yet in experiment default/branin" in done.stderr
    ), f"stdout:\n{out}\nstderr:\n{done.stderr}"
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
