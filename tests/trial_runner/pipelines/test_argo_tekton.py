"""Katib's published Argo and Tekton examples as trials on the test control plane.

The real Argo and Tekton controllers are not run: they could not be built and started here
in the time this work had. What runs is everything else, for real:

- their CRDs are installed (tests/fixtures/crds/: Argo's *full* Workflow schema, so the
  apiserver refuses or prunes a field katib-local puts in the wrong place; Tekton's
  PipelineRun CRD, whose schema is open, so the test checks the structure itself);
- the trial is rendered from Katib's example as published (the script path aside: there are no
  images here) and created by the real :class:`~trial_runner.kubernetes.KubernetesLauncher`;
- the test plays the controller's part for the primary step: it makes the pod that Argo
  (container ``main``, the template's sidecars and volumes, its labels) or Tekton (containers
  ``step-<name>`` and ``sidecar-<name>``, the ``tekton.dev/pipelineTask`` label) would make
  from the stored object, with the parameters substituted; the process node runs it, and the
  injected collector sidecar pushes the training script's metrics;
- the test then writes the workflow's status as the controller would (Argo ``status.phase``,
  Tekton's ``Succeeded`` condition), and the launcher ends the trial by the example's own
  success and failure conditions.
"""

from __future__ import annotations

import copy
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from katib.spec import load_experiments, render_trial_spec
from tests.cluster.control_plane import ControlPlane
from tests.trial_runner.kubernetes.conftest import Events, PushRecorder
from trial_runner import CollectionPlan, Ending, TrialLaunch
from trial_runner.kubernetes import KubeApi, KubernetesLauncher

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

T = TypeVar("T")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
STANDIN = FIXTURES / "local_standins" / "mnist.py"
EXAMPLE_SCRIPT = "/opt/mxnet-mnist/mnist.py"
ARGO_EXAMPLE = FIXTURES / "katib_examples" / "argo" / "argo-workflow.yaml"
TEKTON_EXAMPLE = FIXTURES / "katib_examples" / "tekton" / "pipeline-run.yaml"
METRICS = ("Validation-accuracy", "Train-accuracy")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}", pytrace=False)


def install_crd(cluster: ControlPlane, crd: dict[str, Any]) -> None:
    status, body = cluster.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert status in (201, 409), json.dumps(body)[:3000]
    name = crd["metadata"]["name"]

    def established() -> bool:
        code, got = cluster.request(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        conditions = ((got or {}).get("status") or {}).get("conditions") or []
        if code != 200:
            return False
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(f"CRD {name}", established)
    time.sleep(1)  # discovery of the new group


@pytest.fixture(scope="module")
def argo_crd(kube_cluster: ControlPlane) -> None:
    with gzip.open(FIXTURES / "crds" / "argo-workflows.json.gz", "rt") as f:
        install_crd(kube_cluster, json.load(f))


@pytest.fixture(scope="module")
def tekton_crd(kube_cluster: ControlPlane) -> None:
    install_crd(kube_cluster, yaml.safe_load((FIXTURES / "crds" / "tekton-pipelineruns.yaml")
                                             .read_text()))


def trial_of(example: Path, namespace: str, name: str, lr: str,
             push: PushRecorder) -> TrialLaunch:
    """The trial the controller would launch for ``example`` with ``lr``."""
    (exp,) = load_experiments(example)
    template = exp.spec.trial_template
    assert template is not None
    manifest = render_trial_spec(exp, {"lr": lr}, trial_name=name, namespace=namespace)
    # No images here: the example's script is the local stand-in that prints the same lines.
    manifest = json.loads(json.dumps(manifest).replace(EXAMPLE_SCRIPT, str(STANDIN)))
    return TrialLaunch(
        namespace=namespace, experiment=exp.metadata.name, trial=name, manifest=manifest,
        primary_container=str(template.primary_container_name), assignments={"lr": lr},
        collection=CollectionPlan(METRICS, exp.spec.metrics_collector_spec),
        success_condition=str(template.success_condition),
        failure_condition=str(template.failure_condition),
        primary_pod_labels=dict(template.primary_pod_labels or {}),
        push_env={"KATIB_API_URL": push.url, "KATIB_API_TOKEN": push.token},
    )


def owner(obj: dict[str, Any]) -> list[dict[str, Any]]:
    meta = obj["metadata"]
    return [{"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
             "uid": meta["uid"], "controller": True}]


def argo_pod(workflow: dict[str, Any], num_examples: str) -> dict[str, Any]:
    """The pod Argo makes for the workflow's model-training step."""
    spec = workflow["spec"]
    (template,) = [t for t in spec["templates"] if t["name"] == "model-training"]
    main = copy.deepcopy(template["container"])
    main["name"] = "main"
    text = json.dumps(main).replace("{{inputs.parameters.num-examples}}", num_examples)
    labels = {**workflow["metadata"].get("labels", {}),
              **spec.get("podMetadata", {}).get("labels", {}),
              **template.get("metadata", {}).get("labels", {}),
              "workflows.argoproj.io/workflow": workflow["metadata"]["name"]}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{workflow['metadata']['name']}-model-training",
                     "labels": labels, "ownerReferences": owner(workflow)},
        "spec": {"restartPolicy": "Never",
                 "containers": [json.loads(text), *copy.deepcopy(template.get("sidecars", []))],
                 "volumes": [*spec.get("volumes", []), *template.get("volumes", [])]},
    }


def tekton_pod(run: dict[str, Any], num_examples: str) -> dict[str, Any]:
    """The pod Tekton makes for the PipelineRun's model-training task."""
    params = {p["name"]: p["value"] for p in run["spec"]["params"]}
    (task,) = [t for t in run["spec"]["pipelineSpec"]["tasks"] if t["name"] == "model-training"]
    task_params = {p["name"]: p["value"].replace("$(params.lr)", params["lr"])
                   for p in task["params"]}
    task_params["num-examples"] = num_examples
    task_spec = task["taskSpec"]
    text = json.dumps(task_spec["steps"])
    for key, value in task_params.items():
        text = text.replace(f"$(params.{key})", value)
    steps = [{**s, "name": f"step-{s['name']}"} for s in json.loads(text)]
    sidecars = [{**s, "name": f"sidecar-{s['name']}"} for s in task_spec.get("sidecars", [])]
    name = run["metadata"]["name"]
    labels = {**run["metadata"].get("labels", {}), "tekton.dev/pipelineRun": name,
              "tekton.dev/pipelineTask": "model-training"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-model-training-pod", "labels": labels,
                     "ownerReferences": owner(run)},
        "spec": {"restartPolicy": "Never", "containers": [*steps, *sidecars],
                 "volumes": copy.deepcopy(task_spec.get("volumes", []))},
    }


def run_primary_pod(kube_api: KubeApi, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    kube_api.create(pod, namespace)
    name = pod["metadata"]["name"]

    def finished() -> dict[str, Any] | None:
        got = kube_api.get("v1", "Pod", namespace, name)
        phase = (got or {}).get("status", {}).get("phase")
        return got if phase in ("Succeeded", "Failed") else None

    done = wait_for(f"pod {name}", finished, timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    return done


def test_katibs_argo_example_runs_as_a_trial(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi, argo_crd: None,
    launcher: KubernetesLauncher, push_recorder: PushRecorder,
) -> None:
    results: dict[str, Ending] = {}
    for name, lr, phase in (("argo-ok", "0.02", "Succeeded"), ("argo-bad", "0.01", "Failed")):
        events = Events()
        launcher.launch(trial_of(ARGO_EXAMPLE, kube_namespace, name, lr, push_recorder),
                        events)
        workflow = wait_for("the Workflow", lambda n=name: kube_api.get(
            "argoproj.io/v1alpha1", "Workflow", kube_namespace, n))
        # The stored object, after the full schema's checks and pruning, still holds what
        # katib-local added: the collector as a sidecar of the primary template, its volume,
        # the trial's identity on every pod Argo makes.
        (training,) = [t for t in workflow["spec"]["templates"] if t["name"] == "model-training"]
        assert [s["name"] for s in training["sidecars"]] == ["katib-metrics-collector"]
        assert training["volumes"] and training["container"]["volumeMounts"]
        assert training["container"]["command"][:2] == ["sh", "-c"]
        assert "--lr=" + lr in training["container"]["command"]
        env = {e["name"] for e in training["container"]["env"]}
        assert {"KATIB_TRIAL_NAME", "KATIB_API_URL"} <= env
        pod_labels = workflow["spec"]["podMetadata"]["labels"]
        assert pod_labels["katib.kubeflow.org/trial"] == name
        (preprocess,) = [t for t in workflow["spec"]["templates"]
                         if t["name"] == "gen-num-examples"]
        assert "sidecars" not in preprocess or not preprocess["sidecars"]

        run_primary_pod(kube_api, kube_namespace, argo_pod(workflow, "600"))
        assert len(push_recorder.values(name, "Validation-accuracy")) >= 1
        assert not [e for e in events.seen if type(e).__name__ == "TrialEnded"]
        # Argo's CRD has no status subresource: its controller writes status on the object.
        kube_api.patch("argoproj.io/v1alpha1", "Workflow", kube_namespace, name,
                       {"status": {"phase": phase}})
        results[name] = events.until_end().ending
    assert results == {"argo-ok": Ending.COMPLETED, "argo-bad": Ending.FAILED}


def test_katibs_tekton_example_runs_as_a_trial(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi, tekton_crd: None,
    launcher: KubernetesLauncher, push_recorder: PushRecorder,
) -> None:
    results: dict[str, Ending] = {}
    for name, lr, ok in (("tekton-ok", "0.02", "True"), ("tekton-bad", "0.01", "False")):
        events = Events()
        launcher.launch(trial_of(TEKTON_EXAMPLE, kube_namespace, name, lr, push_recorder),
                        events)
        run = wait_for("the PipelineRun", lambda n=name: kube_api.get(
            "tekton.dev/v1beta1", "PipelineRun", kube_namespace, n))
        assert {"name": "lr", "value": lr} in run["spec"]["params"]
        tasks = {t["name"]: t for t in run["spec"]["pipelineSpec"]["tasks"]}
        training = tasks["model-training"]["taskSpec"]
        # Tekton's TaskSpec: sidecars and volumes beside steps, each sidecar a container.
        assert [s["name"] for s in training["sidecars"]] == ["katib-metrics-collector"]
        assert set(training) <= {"params", "steps", "sidecars", "volumes", "results",
                                 "metadata", "workspaces", "description", "stepTemplate"}
        (step,) = training["steps"]
        assert step["command"][:2] == ["sh", "-c"] and "--lr=$(params.lr)" in step["command"]
        assert {v["name"] for v in training["volumes"]} >= {
            m["name"] for m in step["volumeMounts"]}
        assert "sidecars" not in tasks["data-preprocessing"]["taskSpec"]

        run_primary_pod(kube_api, kube_namespace, tekton_pod(run, "600"))
        assert len(push_recorder.values(name, "Validation-accuracy")) >= 1
        status = {"conditions": [{"type": "Succeeded", "status": ok,
                                  "reason": "Succeeded" if ok == "True" else "Failed"}]}
        kube_api.patch("tekton.dev/v1beta1", "PipelineRun", kube_namespace, name,
                       {"status": status}, subresource="status")
        results[name] = events.until_end().ending
    assert results == {"tekton-ok": Ending.COMPLETED, "tekton-bad": Ending.FAILED}


def test_the_argo_container_step_example_fits_argos_schema(
    kube_cluster: ControlPlane, kube_namespace: str, argo_crd: None,
) -> None:
    """examples/pipelines/argo-tune-then-train.yaml, created (dry run) against Argo's full
    Workflow schema: accepted, and nothing of it pruned."""
    example = FIXTURES.parents[1] / "examples" / "pipelines" / "argo-tune-then-train.yaml"
    workflow = yaml.safe_load(example.read_text())
    status, body = kube_cluster.request(
        "POST", f"/apis/argoproj.io/v1alpha1/namespaces/{kube_namespace}/workflows"
        "?dryRun=All&fieldValidation=Strict", workflow)
    assert status == 201, json.dumps(body)[:3000]
    assert body["spec"] == workflow["spec"]
