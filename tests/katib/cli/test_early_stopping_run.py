"""Early-stopping rules end to end: ``katib run`` with local processes, parallel trials and
intermediate metrics from the StdOut and Push collectors."""

from __future__ import annotations

import json

import pytest

from tests.katib.cli.conftest import Katib, experiment_doc

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The loss falls with the steps; a larger x is worse at every step.
CURVE = '''
import argparse, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
a = p.parse_args()
for step in range(1, 10):
    print(f"loss={a.x + 1 / step}", flush=True)
    time.sleep(0.15)
'''

PUSHED = '''
import argparse, time
from katib import report_metrics
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
a = p.parse_args()
for step in range(1, 8):
    report_metrics({"loss": a.x * 10 + 1 / step}, step=step)
    time.sleep(0.1)
'''


def grid_doc(script: str, early: dict[str, object], **spec: object) -> dict[str, object]:
    doc = experiment_doc(
        parallelTrialCount=3,
        algorithm={
            "algorithmName": "grid",
            "algorithmSettings": [{"name": "random_state", "value": "1"}],
        },
        container={"command": ["python3", script]},
        earlyStopping=early,
        **spec,
    )
    del doc["spec"]["maxTrialCount"]
    doc["spec"]["parameters"][0]["feasibleSpace"] = {"min": "0.1", "max": "0.9", "step": "0.1"}
    return doc


def test_asha_stops_trials_behind_their_rung(katib: Katib) -> None:
    (katib.folder / "curve.py").write_text(CURVE)
    early = {"algorithmName": "asha", "algorithmSettings": [
        {"name": "reduction_factor", "value": "3"}]}
    path = katib.write(grid_doc("curve.py", early))
    result = katib("run", str(path), "--output", "best.json", timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    by_x = {t["spec"]["parameterAssignments"][0]["value"]: t["status"] for t in katib.trials("exp")}
    assert len(by_x) == 9
    # x = 0.1 is the best at every step, so no rung ever stops it, and it is the optimum.
    assert by_x["0.1"]["condition"] == "Succeeded"
    stopped = {x: s for x, s in by_x.items() if s["condition"] == "EarlyStopped"}
    assert stopped, by_x
    for status in stopped.values():
        assert status["reason"] == "EarlyStopped"
        assert "loss greater than" in status["message"] and "at rung" in status["message"]
    assert all(s["condition"] in ("Succeeded", "EarlyStopped") for s in by_x.values())
    best = json.loads((katib.folder / "best.json").read_text())
    assert best["parameterAssignments"] == [{"name": "x", "value": "0.1"}]
    exp = katib.json("get", "experiments")["items"][0]
    assert exp["status"]["trialsEarlyStopped"] == len(stopped)


def test_threshold_with_pushed_metrics(katib: Katib) -> None:
    (katib.folder / "pushed.py").write_text(PUSHED)
    early = {"algorithmName": "threshold", "algorithmSettings": [
        {"name": "threshold", "value": "5.5"}, {"name": "start_step", "value": "2"}]}
    doc = grid_doc("pushed.py", early, metricsCollectorSpec={"collector": {"kind": "Push"}})
    path = katib.write(doc)
    result = katib("run", str(path), timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    by_x = {t["spec"]["parameterAssignments"][0]["value"]: t["status"] for t in katib.trials("exp")}
    # At step 2 the loss is 10 x + 0.5: above 5.5 from x = 0.6 on.
    for x, status in by_x.items():
        expected = "EarlyStopped" if float(x) >= 0.55 else "Succeeded"
        assert status["condition"] == expected, (x, status)
    assert by_x["0.9"]["message"].startswith("loss greater than 5.5 (the threshold)")


def test_bad_early_stopping_settings_are_named(katib: Katib) -> None:
    early = {"algorithmName": "asha", "algorithmSettings": [
        {"name": "reduction_factor", "value": "1"}, {"name": "eta", "value": "3"}]}
    path = katib.write(grid_doc("trial.py", early))
    result = katib("validate", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "spec.earlyStopping.algorithmSettings[0].value" in result.stderr
    assert "reduction_factor" in result.stderr
    assert "spec.earlyStopping.algorithmSettings[1].name" in result.stderr
    assert "'eta'" in result.stderr
