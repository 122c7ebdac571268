"""Katib's defaults (what its defaulting webhook sets) and the camelCase wire format."""

from __future__ import annotations

from typing import Any

import pytest

from katib.spec import Experiment, parse_experiment
from katib.spec._models import (
    DEFAULT_FILE_PATH,
    DEFAULT_STDOUT_METRICS_FORMAT,
    DEFAULT_TFEVENT_DIR,
    JOB_FAILURE_CONDITION,
    JOB_SUCCESS_CONDITION,
    KUBEFLOW_JOB_FAILURE_CONDITION,
    KUBEFLOW_JOB_SUCCESS_CONDITION,
    TRAINJOB_SUCCESS_CONDITION,
)

Doc = dict[str, Any]


def test_parallel_trial_count_defaults_to_three(baseline_doc: Doc) -> None:
    del baseline_doc["spec"]["parallelTrialCount"]
    assert parse_experiment(baseline_doc).spec.parallel_trial_count == 3


def test_given_parallel_trial_count_is_kept(baseline_doc: Doc) -> None:
    assert parse_experiment(baseline_doc).spec.parallel_trial_count == 2


def test_resume_policy_defaults_to_never(baseline_doc: Doc) -> None:
    assert parse_experiment(baseline_doc).spec.resume_policy == "Never"


@pytest.mark.parametrize(("objective_type", "strategy"), [("minimize", "min"), ("maximize", "max")])
def test_metric_strategies_follow_the_objective_type(
    baseline_doc: Doc, objective_type: str, strategy: str
) -> None:
    baseline_doc["spec"]["objective"]["type"] = objective_type
    objective = parse_experiment(baseline_doc).spec.objective
    assert objective is not None
    assert [(s.name, s.value) for s in objective.metric_strategies] == [
        ("loss", strategy),
        ("accuracy", strategy),
    ]


def test_a_given_metric_strategy_is_kept(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["objective"]["metricStrategies"] = [
        {"name": "accuracy", "value": "latest"}
    ]
    objective = parse_experiment(baseline_doc).spec.objective
    assert objective is not None
    assert {s.name: s.value for s in objective.metric_strategies} == {
        "accuracy": "latest",
        "loss": "min",
    }


def test_job_gets_success_and_failure_conditions(baseline_doc: Doc) -> None:
    template = parse_experiment(baseline_doc).spec.trial_template
    assert template is not None
    assert template.success_condition == JOB_SUCCESS_CONDITION
    assert template.failure_condition == JOB_FAILURE_CONDITION
    assert template.primary_pod_labels is None


@pytest.mark.parametrize("kind", ["PyTorchJob", "TFJob", "XGBoostJob", "MPIJob"])
def test_kubeflow_jobs_get_conditions_and_primary_pod_labels(baseline_doc: Doc, kind: str) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "spec": {
            "args": [
                "${trialParameters.learningRate}",
                "${trialParameters.numberLayers}",
                "${trialParameters.optimizer}",
                "${trialParameters.trialName}",
            ]
        },
    }
    template = parse_experiment(baseline_doc).spec.trial_template
    assert template is not None
    assert template.success_condition == KUBEFLOW_JOB_SUCCESS_CONDITION
    assert template.failure_condition == KUBEFLOW_JOB_FAILURE_CONDITION
    assert template.primary_pod_labels == {"training.kubeflow.org/job-role": "master"}


def test_given_primary_pod_labels_and_conditions_are_kept(baseline_doc: Doc) -> None:
    template_doc = baseline_doc["spec"]["trialTemplate"]
    template_doc["primaryPodLabels"] = {"role": "worker"}
    template_doc["successCondition"] = "status.done"
    template = parse_experiment(baseline_doc).spec.trial_template
    assert template is not None
    assert template.primary_pod_labels == {"role": "worker"}
    assert template.success_condition == "status.done"
    assert template.failure_condition == JOB_FAILURE_CONDITION


def test_trainjob_gets_its_conditions(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["apiVersion"] = "trainer.kubeflow.org/v1"
    baseline_doc["spec"]["trialTemplate"]["trialSpec"]["kind"] = "TrainJob"
    template = parse_experiment(baseline_doc).spec.trial_template
    assert template is not None
    assert template.success_condition == TRAINJOB_SUCCESS_CONDITION


def test_collector_defaults_to_stdout(baseline_doc: Doc) -> None:
    mc = parse_experiment(baseline_doc).spec.metrics_collector_spec
    assert mc is not None and mc.collector is not None
    assert mc.collector.kind == "StdOut"
    assert DEFAULT_STDOUT_METRICS_FORMAT.startswith("([\\w|-]+)")


def test_file_collector_defaults(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "File"}}
    mc = parse_experiment(baseline_doc).spec.metrics_collector_spec
    assert mc is not None and mc.source is not None and mc.source.file_system_path is not None
    fs = mc.source.file_system_path
    assert (fs.path, fs.kind, fs.format) == (DEFAULT_FILE_PATH, "File", "TEXT")


def test_tensorflow_event_collector_defaults(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "TensorFlowEvent"}}
    mc = parse_experiment(baseline_doc).spec.metrics_collector_spec
    assert mc is not None and mc.source is not None and mc.source.file_system_path is not None
    fs = mc.source.file_system_path
    assert (fs.path, fs.kind, fs.format) == (DEFAULT_TFEVENT_DIR, "Directory", None)


def test_prometheus_collector_defaults(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["metricsCollectorSpec"] = {"collector": {"kind": "PrometheusMetric"}}
    mc = parse_experiment(baseline_doc).spec.metrics_collector_spec
    assert mc is not None and mc.source is not None and mc.source.http_get is not None
    assert (mc.source.http_get.port, mc.source.http_get.path) == (8080, "/metrics")


def test_distribution_defaults_to_uniform(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    distributions = [
        p.feasible_space.distribution for p in exp.spec.parameters if p.feasible_space is not None
    ]
    assert distributions == ["logUniform", "uniform", "uniform"]


def test_defaults_leave_the_original_untouched(baseline_doc: Doc) -> None:
    raw = Experiment.model_validate(baseline_doc)
    defaulted = raw.with_defaults()
    assert raw.spec.resume_policy is None
    assert raw.spec.metrics_collector_spec is None
    assert defaulted.spec.resume_policy == "Never"


def test_numbers_in_feasible_space_become_strings(baseline_doc: Doc) -> None:
    baseline_doc["spec"]["parameters"][0]["feasibleSpace"].update(min=0.001, max=0.1)
    baseline_doc["spec"]["parameters"][1]["feasibleSpace"].update(min=1, max=5, step=1)
    exp = parse_experiment(baseline_doc)
    spaces = [p.feasible_space for p in exp.spec.parameters[:2]]
    assert [(fs.min, fs.max) for fs in spaces if fs is not None] == [("0.001", "0.1"), ("1", "5")]


def test_wire_form_is_camel_case_and_round_trips(baseline_doc: Doc) -> None:
    exp = parse_experiment(baseline_doc)
    wire = exp.to_wire()
    assert wire["spec"]["trialTemplate"]["primaryContainerName"] == "training-container"
    assert wire["spec"]["parameters"][2]["feasibleSpace"]["list"] == ["sgd", "adam"]
    assert "trial_template" not in wire["spec"]
    assert parse_experiment(wire) == exp
