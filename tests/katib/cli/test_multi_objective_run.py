"""Several objectives end to end: ``katib run`` with local processes, ``katib best`` (text and
JSON) with the Pareto front, and clear refusals."""

from __future__ import annotations

import json

import pytest

from tests.katib.cli.conftest import Katib, experiment_doc

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TWO_METRICS = '''
import argparse
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
a = p.parse_args()
print(f"loss={(a.x - 0.9) ** 2:.6f}")
print(f"cost={a.x:.6f}")
'''


def multi_doc(algorithm: str = "nsga2") -> dict[str, object]:
    doc = experiment_doc(
        "pareto",
        maxTrialCount=8,
        parallelTrialCount=2,
        algorithm={"algorithmName": algorithm,
                   "algorithmSettings": [{"name": "random_state", "value": "4"}]},
        container={"command": ["python3", "two.py"]},
    )
    doc["spec"]["objective"]["additionalObjectives"] = [{"name": "cost", "type": "minimize"}]
    return doc


def test_run_and_best_show_the_pareto_front(katib: Katib) -> None:
    (katib.folder / "two.py").write_text(TWO_METRICS)
    path = katib.write(multi_doc())
    result = katib("run", str(path), "--output", "best.json", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    written = json.loads((katib.folder / "best.json").read_text())
    front = written["paretoFront"]
    # In [0.1, 0.9] loss falls and cost rises with x: every trial is on the front.
    assert len(front) == 8
    losses = [t["objectives"][0]["value"] for t in front]
    costs = [t["objectives"][1]["value"] for t in front]
    assert losses == sorted(losses) and costs == sorted(costs, reverse=True)
    assert written["bestTrialName"] == front[0]["trialName"]
    assert katib.json("best", "pareto") == written
    text = katib("best", "pareto").stdout
    assert "Pareto front (8 trials)" in text and "cost ↓" in text


def test_a_single_objective_best_is_unchanged(katib: Katib) -> None:
    path = katib.write(experiment_doc("single"))
    assert katib("run", str(path), "--output", "best.json").returncode == 0
    best = json.loads((katib.folder / "best.json").read_text())
    assert list(best) == [
        "experiment", "namespace", "condition", "bestTrialName", "parameterAssignments",
        "observation",
    ]
    assert "Pareto" not in katib("best", "single").stdout


def test_a_single_objective_algorithm_is_refused(katib: Katib) -> None:
    doc = multi_doc("bayesianoptimization")
    result = katib("validate", str(katib.write(doc)))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert ("spec.algorithm.algorithmName: algorithm bayesianoptimization optimizes one"
            " objective") in result.stderr
