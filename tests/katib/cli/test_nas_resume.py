"""ENAS resumed after Ctrl-C: the controller goes on from its stored weights and steps."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from katib.storage import Storage
from tests.katib.cli.conftest import Katib
from tests.katib.cli.test_run import _running_trials, _wait_for

#: Succeeds at once for the first two trials; later ones wait while ``hold`` exists.
TRIAL = '''
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--architecture", required=True)
a = p.parse_args()
os.makedirs("done", exist_ok=True)
while os.path.exists("hold") and len(os.listdir("done")) >= 2:
    time.sleep(0.1)
layers = json.loads(a.architecture.replace("'", '"'))
open(os.path.join("done", os.environ["KATIB_TRIAL_NAME"]), "w").close()
print(f"accuracy={sum(layer[0] == 1 for layer in layers) / len(layers)}", flush=True)
'''


def enas_doc() -> dict[str, Any]:
    container = {
        "name": "training-container", "image": "python:3.11",
        "command": ["python3", "trial.py", "--architecture=${trialParameters.arch}"],
    }
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "exp"},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "enas", "algorithmSettings": [
                {"name": "random_state", "value": "1"},
                {"name": "controller_train_steps", "value": "3"},
                {"name": "controller_hidden_size", "value": "8"},
            ]},
            "parallelTrialCount": 1, "maxTrialCount": 5, "maxFailedTrialCount": 1,
            "nasConfig": {
                "graphConfig": {"numLayers": 2, "inputSizes": [8], "outputSizes": [2]},
                "operations": [
                    {"operationType": "dense", "parameters": [{
                        "name": "units", "parameterType": "categorical",
                        "feasibleSpace": {"list": ["4", "8", "16"]}}]},
                ],
            },
            "trialTemplate": {
                "primaryContainerName": "training-container",
                "trialParameters": [{"name": "arch", "reference": "architecture"}],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"template": {"spec": {"containers": [container],
                                                   "restartPolicy": "Never"}}},
                },
            },
        },
    }


def controller_state(home: Path) -> dict[str, Any]:
    storage = Storage.open(f"sqlite:///{home / 'katib.db'}")
    try:
        record = storage.get_experiment("default", "exp")
        stored = storage.load_algorithm_state(record.id)
        events = [e.reason for e in storage.list_events(record.id)]
    finally:
        storage.close()
    assert stored is not None and stored[0] == "enas"
    assert "AlgorithmStateRebuilt" not in events
    return stored[1]


@pytest.mark.slow
def test_enas_resumes_its_controller_after_ctrl_c(katib: Katib, katib_home: Path) -> None:
    (katib.folder / "trial.py").write_text(TRIAL)
    (katib.folder / "hold").write_text("")
    path = katib.write(enas_doc())
    proc = katib.popen("run", str(path))
    _wait_for(lambda: len(list((katib.folder / "done").glob("*"))) == 2
              and len(_running_trials(katib)) == 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    before = controller_state(katib_home)
    assert before["adam_step"] == 6  # two rounds of 3 steps, one after each finished trial

    os.remove(katib.folder / "hold")
    result = katib("run", str(path))
    assert result.returncode == 0, result.stderr
    after = controller_state(katib_home)
    # Trained on from the stored controller: 3 more steps after each of the 3 trials that
    # finished after the resume but the last (the budget was spent: nothing to suggest).
    assert after["adam_step"] == before["adam_step"] + 6
    # (A controller rebuilt from the history would have 3 + 3 + 3 = 9 steps.)
    assert set(before["learned"]) <= set(after["learned"])
