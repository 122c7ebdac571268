"""Helpers for end-to-end tests that run the ``katib`` command as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]

# A trial script used by many tests: prints metrics from its arguments, can fail on demand,
# and can wait for a marker file to disappear (to hold trials in Running).
TRIAL_SCRIPT = '''
import argparse, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--x", type=float, required=True)
p.add_argument("--mode", default="ok")
a = p.parse_args()
while os.path.exists("hold"):
    time.sleep(0.05)
if a.mode == "fail":
    print("something broke", file=sys.stderr)
    sys.exit(3)
if a.mode == "silent":
    print("no metrics here")
    sys.exit(0)
print(f"epoch=1 loss={a.x * 2}")
print(f"loss={a.x}")
name, env = os.environ.get("KATIB_TRIAL_NAME"), os.environ.get("MY_ENV")
print("trial", name, "cwd", os.getcwd(), "env", env)
'''


def experiment_doc(name: str = "exp", **spec_overrides: Any) -> dict[str, Any]:
    """A small valid experiment around TRIAL_SCRIPT."""
    args = spec_overrides.pop("args", ["--x=${trialParameters.x}"])
    env = spec_overrides.pop("env", [{"name": "MY_ENV", "value": "hello"}])
    container: dict[str, Any] = {
        "name": "training-container",
        "image": "python:3.11",
        "command": ["python3", "trial.py"],
        "args": args,
        "env": env,
    }
    container.update(spec_overrides.pop("container", {}))
    spec: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random",
                      "algorithmSettings": [{"name": "random_state", "value": "1"}]},
        "parallelTrialCount": 2,
        "maxTrialCount": 4,
        "maxFailedTrialCount": 2,
        "parameters": [{"name": "x", "parameterType": "double",
                        "feasibleSpace": {"min": "0.1", "max": "0.9"}}],
        "trialTemplate": {
            "primaryContainerName": "training-container",
            "trialParameters": [{"name": "x", "reference": "x"}],
            "trialSpec": {
                "apiVersion": "batch/v1", "kind": "Job",
                "spec": {"template": {"spec": {"containers": [container],
                                               "restartPolicy": "Never"}}},
            },
        },
    }
    spec.update(spec_overrides)
    return {"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
            "metadata": {"name": name}, "spec": spec}


def trial_processes(trial_names: set[str]) -> list[int]:
    """Pids of the processes running these trials (each carries KATIB_TRIAL_NAME)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("KATIB_TRIAL_NAME") in trial_names:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


class Katib:
    """Runs ``python -m katib`` in a project folder with its own KATIB_HOME."""

    def __init__(self, folder: Path, home: Path) -> None:
        self.folder = folder
        self.home = home
        self.env = dict(os.environ, KATIB_HOME=str(home), PYTHONPATH=str(REPO))
        self.env.pop("KATIB_DB", None)

    def write(self, *docs: dict[str, Any], name: str = "experiment.yaml") -> Path:
        path = self.folder / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "katib", *args], cwd=self.folder, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "katib", *args], cwd=self.folder, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "-o", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def trials(self, experiment: str, *extra: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("get", "trials", experiment, *extra)["items"]
        return items


@pytest.fixture
def katib(tmp_path: Path, katib_home: Path) -> Katib:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trial.py").write_text(textwrap.dedent(TRIAL_SCRIPT))
    return Katib(folder, katib_home)
