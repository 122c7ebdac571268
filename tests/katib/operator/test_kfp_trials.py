"""``katib operator`` with trials as Kubeflow Pipelines runs, against the loopback KFP API
(tests/trial_runner/pipelines/kfp_server.py): each trial gets its Trial resource and one KFP
run; SIGKILL of the operator mid-run and a restart adopt the running runs instead of creating
them again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.katib.operator.conftest import Operators, apply, condition, finished, wait_for
from tests.trial_runner.pipelines.kfp_server import FakeKfp, Script, pipeline_spec, serve

pytestmark = [pytest.mark.k8s, pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp(lambda params: Script(
        metrics={"accuracy": 1 - params["lr"]}, reads_until_end=25))
    httpd, thread = serve(fake)
    yield fake
    httpd.shutdown()
    thread.join(5)


def kfp_experiment(namespace: str, pipeline_id: str, version_id: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "kfp", "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2,
            "maxTrialCount": 4,
            "maxFailedTrialCount": 1,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": "0.01", "max": "0.03"}}],
            "trialTemplate": {
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {
                    "apiVersion": "pipelines.kubeflow.org/v2beta1",
                    "kind": "Run",
                    "spec": {"run": {
                        "pipeline_version_reference": {
                            "pipeline_id": pipeline_id, "pipeline_version_id": version_id},
                        "runtime_config": {"parameters": {
                            "lr": "${trialParameters.learningRate}"}},
                    }},
                },
            },
        },
    }


def test_kfp_run_trials_survive_an_operator_sigkill(
    operators: Operators, kube_namespace: str, tmp_path: Path, fake_kfp: FakeKfp
) -> None:
    cluster, ns = operators.cluster, kube_namespace
    env = {"KFP_HOST": fake_kfp.url, "KATIB_KFP_POLL_SECONDS": "0.2"}
    pipeline_id, version_id = fake_kfp.add_pipeline("train", pipeline_spec(lr="NUMBER_DOUBLE"))
    first = operators.start(env=env)
    apply(cluster, kfp_experiment(ns, pipeline_id, version_id), tmp_path)
    wait_for("two KFP runs", lambda: len(fake_kfp.run_bodies()) >= 2)
    first.kill()
    before = {b["run_id"]: b["display_name"] for b in fake_kfp.run_bodies()}
    assert all(b["state"] not in ("SUCCEEDED", "FAILED") for b in fake_kfp.run_bodies())
    second = operators.start(env=env)
    obj = wait_for("the experiment to finish", lambda: finished(cluster, ns, "kfp"), 180)
    assert condition(obj) == "Succeeded", obj["status"]
    assert obj["status"]["trialsSucceeded"] == 4, obj["status"]
    status, body = cluster.request(
        "GET", f"/apis/kubeflow.org/v1beta1/namespaces/{ns}/trials")
    assert status == 200, body
    trials = {t["metadata"]["name"]: t for t in body["items"]}
    assert len(trials) == 4 and all(condition(t) == "Succeeded" for t in trials.values())
    assert all(t["spec"]["runSpec"]["kind"] == "Run" for t in trials.values())
    runs = fake_kfp.run_bodies()
    # One run per trial: the two the first operator created were adopted, not run again.
    assert sorted(r["display_name"] for r in runs) == sorted(trials), runs
    assert all(run_id in {r["run_id"] for r in runs} for run_id in before)
    assert "adopted KFP run" in second.output
    best = obj["status"]["currentOptimalTrial"]
    assert best["bestTrialName"] in trials
    value = float(best["observation"]["metrics"][0]["latest"])
    lr = float(next(a["value"] for a in best["parameterAssignments"] if a["name"] == "lr"))
    assert value == pytest.approx(1 - lr, abs=1e-6)
