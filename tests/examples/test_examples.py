"""Every example experiment runs to completion as a new user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO / "examples").glob("*/experiment.yaml"))
#: An example that starts from another experiment's trials (warm start) keeps that one here;
#: it is run first, as the example's comments tell a user to.
EARLIER = "earlier.yaml"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_every_example_folder_is_covered() -> None:
    assert {p.parent.name for p in EXAMPLES} >= {
        "branin", "branin-grid", "sklearn-svc", "plugin-algorithm", "asha", "warm-start",
        "multi-objective", "enas-digits", "darts-digits",
    }


def _install_plugin_shim(tmp_path: Path) -> str:
    """Make the example plugin importable and discoverable as if pip-installed.

    importlib.metadata finds entry points in any ``*.dist-info`` folder on sys.path, which is
    exactly what ``pip install`` leaves behind; writing one avoids a real install in tests.
    """
    site = tmp_path / "site"
    dist = site / "katib_lhs-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: katib-lhs\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[katib.suggestion]\nlhs = katib_lhs:LatinHypercube\n")
    return os.pathsep.join([str(site), str(REPO / "examples" / "plugin-algorithm")])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_runs_to_success(path: Path, tmp_path: Path, katib_home: Path) -> None:
    env = dict(os.environ, KATIB_HOME=str(katib_home))
    if path.parent.name == "plugin-algorithm":
        env["PYTHONPATH"] = _install_plugin_shim(tmp_path)
    out = tmp_path / "best.json"
    earlier = path.parent / EARLIER
    if earlier.exists():
        first = subprocess.run(
            [sys.executable, "-m", "katib", "run", str(earlier)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    # Run from another folder: script paths must resolve against the YAML's folder.
    result = subprocess.run(
        [sys.executable, "-m", "katib", "run", str(path), "--output", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    best = json.loads(out.read_text())
    assert best["condition"] == "Succeeded"
    assert best["bestTrialName"] is not None
    doc = yaml.safe_load(path.read_text())
    spec = doc["spec"]
    if "nasConfig" in spec:  # the trial parameters a NAS algorithm assigns
        names = {p["reference"] for p in spec["trialTemplate"]["trialParameters"]}
    else:
        names = {p["name"] for p in spec["parameters"]}
    assert {a["name"] for a in best["parameterAssignments"]} == names
    objective = spec["objective"]["objectiveMetricName"]
    assert objective in {m["name"] for m in best["observation"]["metrics"]}
    if "additionalObjectives" in spec["objective"]:
        assert best["paretoFront"], "a multi-objective example ends with a Pareto front"
        assert best["paretoFront"][0]["trialName"] == best["bestTrialName"]
    trials = json.loads(subprocess.run(
        [sys.executable, "-m", "katib", "get", "trials", doc["metadata"]["name"], "-o", "json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout)["items"]
    if "maxTrialCount" in spec and "goal" not in spec["objective"]:
        assert len(trials) == spec["maxTrialCount"]
    states = {t["status"]["condition"] for t in trials}
    if "earlyStopping" in spec:
        assert states <= {"Succeeded", "EarlyStopped"}, states
    else:
        assert states == {"Succeeded"}, states
