"""The primary step of Katib's published Argo and Tekton examples, found and prepared without a
cluster (test_argo_tekton.py runs them on the test control plane)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from katib.spec import MetricsCollectorSpec, load_experiments, render_trial_spec
from trial_runner import CollectionPlan, TrialLaunch
from trial_runner.kubernetes import SIDECAR_NAME, SidecarSettings, WorkloadError, prepare_workload
from trial_runner.pipelines import primary_step

EXAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "katib_examples"


def launch_for(example: str, *, collector: str | None = None,
               edit: Any = None) -> TrialLaunch:
    (exp,) = load_experiments(EXAMPLES / example)
    template = exp.spec.trial_template
    assert template is not None
    manifest = render_trial_spec(exp, {"lr": "0.02"}, trial_name="t-1", namespace="ns")
    if edit is not None:
        edit(manifest)
    spec = exp.spec.metrics_collector_spec if collector is None else (
        MetricsCollectorSpec.model_validate({"collector": {"kind": collector}}))
    return TrialLaunch(
        namespace="ns", experiment=exp.metadata.name, trial="t-1", manifest=manifest,
        primary_container=str(template.primary_container_name), assignments={"lr": "0.02"},
        collection=CollectionPlan(("Validation-accuracy",), spec),
        primary_pod_labels=dict(template.primary_pod_labels or {}),
    )


def test_argo_the_labelled_template_is_the_primary_step() -> None:
    launch = launch_for("argo/argo-workflow.yaml")
    (step,) = primary_step(copy.deepcopy(dict(launch.manifest)), "main",
                           launch.primary_pod_labels) or []
    assert (step.engine, step.path) == ("argo", "spec.templates[2]")
    obj = prepare_workload(launch, sidecar=SidecarSettings())
    templates = {t["name"]: t for t in obj["spec"]["templates"]}
    assert [s["name"] for s in templates["model-training"]["sidecars"]] == [SIDECAR_NAME]
    assert "sidecars" not in templates["gen-num-examples"]
    assert obj["spec"]["podMetadata"]["labels"]["katib.kubeflow.org/trial"] == "t-1"


def test_tekton_the_task_named_by_the_pipeline_task_label_is_the_primary_step() -> None:
    launch = launch_for("tekton/pipeline-run.yaml")
    obj = prepare_workload(launch, sidecar=SidecarSettings())
    tasks = {t["name"]: t["taskSpec"] for t in obj["spec"]["pipelineSpec"]["tasks"]}
    assert [s["name"] for s in tasks["model-training"]["sidecars"]] == [SIDECAR_NAME]
    assert "sidecars" not in tasks["data-preprocessing"]
    (step,) = tasks["model-training"]["steps"]
    assert step["command"][:2] == ["sh", "-c"]


def by_reference(manifest: dict[str, Any]) -> None:
    del manifest["spec"]["pipelineSpec"]
    manifest["spec"]["pipelineRef"] = {"name": "training"}


def test_a_referenced_pipeline_needs_the_push_collector() -> None:
    with pytest.raises(WorkloadError, match="pipelineRef/templateRef cannot be changed"):
        prepare_workload(launch_for("tekton/pipeline-run.yaml", edit=by_reference),
                         sidecar=SidecarSettings())
    obj = prepare_workload(launch_for("tekton/pipeline-run.yaml", collector="Push",
                                      edit=by_reference), sidecar=SidecarSettings())
    assert obj["spec"]["pipelineRef"] == {"name": "training"}
