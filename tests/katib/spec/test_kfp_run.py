"""Kubeflow Pipelines ``Run`` trial templates: their defaults, and every problem of their shape
reported by ``katib validate`` with its field path."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from katib.errors import InvalidExperimentError
from katib.spec import load_experiments, parse_experiment

EXPERIMENT = """
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: kfp
spec:
  objective: {type: maximize, objectiveMetricName: accuracy}
  algorithm: {algorithmName: random}
  maxTrialCount: 4
  parameters:
    - name: lr
      parameterType: double
      feasibleSpace: {min: "0.01", max: "0.1"}
  trialTemplate:
    trialParameters:
      - {name: learningRate, reference: lr}
    trialSpec:
      apiVersion: pipelines.kubeflow.org/v2beta1
      kind: Run
      spec:
        pipelinePackage: pipeline.yaml
        run:
          runtime_config:
            parameters:
              lr: ${trialParameters.learningRate}
"""


def with_spec(spec: dict[str, Any]) -> list[str]:
    doc = yaml.safe_load(EXPERIMENT)
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"] = spec
    with pytest.raises(InvalidExperimentError) as caught:
        parse_experiment(doc)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


def test_a_run_template_gets_conditions_and_validates(tmp_path: Any) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT)
    (exp,) = load_experiments(path)
    template = exp.spec.trial_template
    assert template is not None
    assert template.success_condition == '[@this].#(state=="SUCCEEDED")#'
    assert template.failure_condition == '[@this].#(state=="FAILED")#'
    assert template.primary_container_name == "pipeline"


PARAMS = {"runtime_config": {"parameters": {"lr": "${trialParameters.learningRate}"}}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"run": PARAMS}, "spec.trialTemplate.trialSpec.spec: give pipelinePackage"),
        ({"pipelinePackage": "p.yaml", "run": {**PARAMS, "pipeline_version_reference": {
            "pipeline_id": "a", "pipeline_version_id": "b"}}}, "exclude each other"),
        ({"run": {**PARAMS, "pipeline_version_reference": {"pipeline_id": "a"}}},
         "spec.run.pipeline_version_reference: needs pipeline_id and pipeline_version_id"),
        ({"pipelinePackage": "p.yaml", "run": "lr=${trialParameters.learningRate}"},
         "spec.trialTemplate.trialSpec.spec.run: must be a mapping"),
        ({"pipelinePackage": "p.yaml", "hots": "x", "run": PARAMS},
         "unknown field(s) hots"),
        ({"pipelinePackage": "p.yaml", "run": {"runtime_config": {
            "parameters": ["${trialParameters.learningRate}"]}}},
         "spec.run.runtime_config.parameters: must be a mapping"),
        ({"run": {**PARAMS, "pipeline_spec": {"x": "${trialParameters.learningRate}"}}},
         "spec.run.pipeline_spec: must be a compiled pipeline spec"),
    ],
)
def test_every_problem_of_a_run_template_is_reported(
    spec: dict[str, Any], expected: str
) -> None:
    problems = with_spec(spec)
    assert any(expected in p for p in problems), problems


def test_a_collector_that_reads_a_container_is_refused_for_a_run() -> None:
    doc = yaml.safe_load(EXPERIMENT)
    doc["spec"]["metricsCollectorSpec"] = {
        "collector": {"kind": "File"},
        "source": {"fileSystemPath": {"path": "/var/log/m.log", "kind": "File"}},
    }
    with pytest.raises(InvalidExperimentError) as caught:
        parse_experiment(doc)
    (error,) = caught.value.errors
    assert error.path == "spec.metricsCollectorSpec.collector.kind"
    assert "Kubeflow Pipelines run" in error.message
    doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "Push"}}
    parse_experiment(doc)
