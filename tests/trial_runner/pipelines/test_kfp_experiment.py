"""A whole experiment whose trials are KFP runs, run by ``katib run`` against the loopback KFP
API server (kfp_server.py): a compiled package uploaded once, the trial's parameters as run
parameters, metrics from metric artifacts and from a step's push, and each way a run ends
giving the trial the right condition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib._push import push_observations
from tests.trial_runner.pipelines.kfp_server import FakeKfp, Script, pipeline_spec

REPO = Path(__file__).resolve().parents[3]

EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: kfp-trials
spec:
  objective:
    type: maximize
    objectiveMetricName: accuracy
  algorithm:
    algorithmName: grid
  maxTrialCount: 5
  parallelTrialCount: 5
  parameters:
    - name: mode
      parameterType: categorical
      feasibleSpace:
        list: [succeed, fail, silent, cancel, push]
    - name: lr
      parameterType: discrete
      feasibleSpace:
        list: ["0.25"]
  trialTemplate:
    trialParameters:
      - name: mode
        reference: mode
      - name: learningRate
        reference: lr
    trialSpec:
      apiVersion: pipelines.kubeflow.org/v2beta1
      kind: Run
      spec:
        pipelinePackage: pipeline.yaml
        run:
          runtime_config:
            parameters:
              mode: ${trialParameters.mode}
              lr: ${trialParameters.learningRate}
"""


def behave(params: dict[str, Any]) -> Script:
    mode = params["mode"]
    if mode == "succeed":
        return Script(metrics={"accuracy": 1 - params["lr"]})
    if mode == "fail":
        return Script(end="fail", message="train: exit status 3")
    if mode == "silent":
        return Script(metrics={"loss": 0.5})  # never reports the objective
    if mode == "cancel":
        return Script(end="cancel")

    def push(run_params: dict[str, Any]) -> None:
        # What a step does with katib.report_metrics, given the parameters the launcher filled.
        push_observations(
            [{"name": "accuracy", "value": 0.9, "step": None, "timestamp": None}],
            url=run_params["katib_api_url"], namespace=run_params["katib_namespace"],
            trial=run_params["katib_trial_name"], token=run_params["katib_api_token"],
        )

    return Script(metrics={}, push=push)


@pytest.mark.slow
def test_every_way_a_run_ends_gives_its_trial_the_right_condition(
    fake_kfp: FakeKfp, tmp_path: Path, katib_home: Path
) -> None:
    fake_kfp.behave = behave
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline_spec(
        mode="STRING", lr="NUMBER_DOUBLE", katib_trial_name="STRING",
        katib_namespace="STRING", katib_api_url="STRING", katib_api_token="STRING",
    )))
    (tmp_path / "experiment.yaml").write_text(EXPERIMENT)
    env = dict(os.environ, KATIB_HOME=str(katib_home), KFP_HOST=fake_kfp.url,
               KATIB_KFP_POLL_SECONDS="0.05", PYTHONPATH=str(REPO))
    out = tmp_path / "best.json"
    result = subprocess.run(
        [sys.executable, "-m", "katib", "run", str(tmp_path / "experiment.yaml"),
         "--output", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = json.loads(subprocess.run(
        [sys.executable, "-m", "katib", "get", "trials", "kfp-trials", "-o", "json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout)["items"]
    by_mode = {
        next(a["value"] for a in t["spec"]["parameterAssignments"] if a["name"] == "mode"):
        t for t in trials
    }
    conditions = {mode: _condition(t) for mode, t in by_mode.items()}
    assert conditions == {
        "succeed": "Succeeded", "push": "Succeeded", "fail": "Failed",
        "silent": "MetricsUnavailable", "cancel": "Killed",
    }, json.dumps(trials, indent=1)[:4000]
    assert fake_kfp.uploads == 1
    assert len(fake_kfp.runs) == 5
    best = json.loads(out.read_text())
    assert best["bestTrialName"] == by_mode["push"]["metadata"]["name"]
    assert {m["name"]: m["latest"] for m in best["observation"]["metrics"]} == {"accuracy": 0.9}
    # Parameters reach KFP typed as the pipeline declares them.
    assert {b["runtime_config"]["parameters"]["lr"] for b in fake_kfp.run_bodies()} == {0.25}


def test_a_bad_package_is_a_clear_error_not_a_traceback(
    fake_kfp: FakeKfp, tmp_path: Path, katib_home: Path
) -> None:
    (tmp_path / "pipeline.yaml").write_text("not: a pipeline\n")
    (tmp_path / "experiment.yaml").write_text(
        EXPERIMENT.replace("maxTrialCount: 5", "maxTrialCount: 1")
        .replace("parallelTrialCount: 5", "parallelTrialCount: 1")
        + "  maxFailedTrialCount: 0\n"
    )
    env = dict(os.environ, KATIB_HOME=str(katib_home), KFP_HOST=fake_kfp.url,
               KATIB_KFP_POLL_SECONDS="0.05", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "katib", "run", str(tmp_path / "experiment.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "not a compiled KFP pipeline" in output or "not a compiled KFP pipeline" in (
        _trial_messages(env)
    ), output


def _trial_messages(env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "katib", "get", "trials", "kfp-trials", "-o", "json"],
        env=env, capture_output=True, text=True,
    ).stdout


def _condition(trial: dict[str, Any]) -> str:
    return str(trial["status"]["condition"])
