"""Katib's published experiments run locally with only the script path edited.

Each fixture under tests/fixtures/katib_examples whose trial is a batch Job with the StdOut
collector, and whose algorithms are available, is run to completion with the container's
``/opt/.../*.py`` script replaced by a local stand-in. As more algorithms are registered,
more examples run here automatically.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from suggestion import algorithm_names
from suggestion.early_stopping import early_stopping_names
from tests.katib.cli.conftest import Katib

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STANDIN = FIXTURES / "local_standins" / "mnist.py"
SCRIPT = re.compile(r"/opt/[\w./-]+?mnist\.py")

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _runnable(path: Path) -> str | None:
    """Why this example cannot run locally yet, or None if it can."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    spec = docs[0]["spec"]
    if not SCRIPT.search(path.read_text()):
        return "no mnist script to replace"
    if spec["algorithm"]["algorithmName"] not in algorithm_names():
        return f"algorithm {spec['algorithm']['algorithmName']} not available"
    early = (spec.get("earlyStopping") or {}).get("algorithmName")
    if early and early not in early_stopping_names():
        return f"early stopping {early} not available"
    kind = (spec.get("metricsCollectorSpec") or {}).get("collector", {}).get("kind", "StdOut")
    if kind == "Custom":
        return "its custom collector image is not available locally"
    if spec["trialTemplate"].get("trialSpec", {}).get("kind") != "Job":
        return "not a batch Job"
    return None


EXAMPLES = sorted((FIXTURES / "katib_examples").glob("*/*.yaml"))
RUNNABLE = [p for p in EXAMPLES if _runnable(p) is None]


def test_the_basic_examples_are_runnable() -> None:
    names = {p.name for p in RUNNABLE}
    assert {"random.yaml", "grid.yaml", "long-running-resume.yaml", "tpe.yaml", "cma-es.yaml",
            "bayesian-optimization.yaml", "hyperband.yaml", "sobol.yaml", "median-stop.yaml",
            "file-metrics-collector.yaml", "file-metrics-collector-with-json-format.yaml",
            "tfevent-metrics-collector.yaml"} <= names


@pytest.mark.parametrize("path", RUNNABLE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_katib_example_runs_locally(path: Path, katib: Katib) -> None:
    text = SCRIPT.sub(str(STANDIN), path.read_text())
    local = katib.folder / path.name
    local.write_text(text)
    doc = next(d for d in yaml.safe_load_all(text) if d)
    result = katib("run", str(local), "--output", "best.json", timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    best = json.loads((katib.folder / "best.json").read_text())
    assert best["condition"] == "Succeeded"
    assert best["bestTrialName"] is not None
    objective = doc["spec"]["objective"]["objectiveMetricName"]
    assert objective in {m["name"] for m in best["observation"]["metrics"]}
    namespace = doc["metadata"].get("namespace", "default")
    trials = katib.trials(doc["metadata"]["name"], "--namespace", namespace)
    assert trials and all(t["status"]["condition"] == "Succeeded" for t in trials)
    if doc["spec"]["objective"].get("goal") is None:
        assert len(trials) == doc["spec"]["maxTrialCount"]
