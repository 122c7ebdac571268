"""The workload a trial creates: identity, owners, trial environment and Katib's collector."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from katib.spec import load_experiments, render_trial_spec
from trial_runner import CollectionPlan, TrialLaunch
from trial_runner.kubernetes import (
    DONE_FILE,
    SIDECAR_NAME,
    STDOUT_FILE,
    SidecarSettings,
    WorkloadError,
    pod_templates,
    prepare_workload,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "katib_examples"
JOB: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "training", "image": "trainer:1",
                     "command": ["python3", "train.py"], "args": ["--lr=0.1", "$(HOME)"]}
                ],
            }
        },
    },
}
PUSH_ENV = {"KATIB_API_URL": "http://katib:8080", "KATIB_API_TOKEN": "secret"}


def launch_of(manifest: dict[str, Any], collector: dict[str, Any] | None = None, **kw: Any
              ) -> TrialLaunch:
    from katib.spec import MetricsCollectorSpec

    spec = None if collector is None else MetricsCollectorSpec.model_validate(collector)
    formats = kw.pop("formats", None)
    texts = kw.pop("text_metrics", ())
    return TrialLaunch(
        namespace="ns", experiment="exp", trial="exp-abc", manifest=copy.deepcopy(manifest),
        primary_container=kw.pop("primary", "training"), assignments={"lr": "0.1"},
        labels={"katib.kubeflow.org/experiment": "exp", "algo": "x"},
        push_env=kw.pop("push_env", PUSH_ENV),
        collection=CollectionPlan(("loss", "acc"), spec, formats, texts), **kw,
    )


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in obj["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_identity_labels_and_owners() -> None:
    owner = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": "exp-abc",
             "uid": "u-1", "controller": True}
    obj = prepare_workload(launch_of(JOB), sidecar=SidecarSettings(), owner_references=[owner],
                           push_secret="katib-push-exp")
    meta = obj["metadata"]
    assert (meta["name"], meta["namespace"]) == ("exp-abc", "ns")
    assert meta["labels"] == {"katib.kubeflow.org/experiment": "exp", "algo": "x",
                              "katib.kubeflow.org/trial": "exp-abc"}
    assert meta["ownerReferences"] == [owner]
    pod_labels = obj["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["katib.kubeflow.org/trial"] == "exp-abc"
    assert JOB["spec"]["template"].get("metadata") is None  # the template is not changed


def test_stdout_wraps_the_command_and_adds_the_sidecar() -> None:
    obj = prepare_workload(launch_of(JOB), sidecar=SidecarSettings(image="katib-local:9"),
                           push_secret="katib-push-exp")
    c = containers(obj)
    training, sidecar = c["training"], c[SIDECAR_NAME]
    assert training["command"][:2] == ["sh", "-c"]
    script = training["command"][2]
    assert f"tee -a {STDOUT_FILE}" in script and DONE_FILE in script
    assert "$$@" in script  # `$` escaped from Kubernetes' $(VAR) expansion
    assert training["command"][3:] == ["katib-trial", "python3", "train.py"]
    assert training["args"] == ["--lr=0.1", "$(HOME)"]  # the user's references still expand
    assert {"name": "katib-metrics", "mountPath": "/var/log/katib"} in training["volumeMounts"]
    env = env_of(training)
    assert env["KATIB_TRIAL_NAME"] == "exp-abc" and env["KATIB_NAMESPACE"] == "ns"
    assert env["KATIB_API_TOKEN"] == {"secretKeyRef": {"name": "katib-push-exp", "key": "token"}}
    assert sidecar["image"] == "katib-local:9"
    assert sidecar["command"] == ["python", "-m", "trial_runner"]
    assert "--sidecar" in sidecar["args"] and f"--path={STDOUT_FILE}" in sidecar["args"]
    assert "--metric-names=loss,acc" in sidecar["args"]
    assert not any(a.startswith("--text-metrics") for a in sidecar["args"])
    assert env_of(sidecar)["KATIB_API_URL"] == "http://katib:8080"
    volumes = obj["spec"]["template"]["spec"]["volumes"]
    assert {"name": "katib-metrics", "emptyDir": {}} in volumes


def test_user_env_wins_and_no_push_without_a_secret() -> None:
    manifest = copy.deepcopy(JOB)
    containers_ = manifest["spec"]["template"]["spec"]["containers"]
    containers_[0]["env"] = [{"name": "KATIB_TRIAL_NAME", "value": "mine"}]
    obj = prepare_workload(launch_of(manifest), sidecar=SidecarSettings(), push_secret=None)
    env = env_of(containers(obj)["training"])
    assert env["KATIB_TRIAL_NAME"] == "mine"
    assert "KATIB_API_TOKEN" not in env


def test_metrics_format_dollars_are_escaped() -> None:
    obj = prepare_workload(launch_of(JOB, formats=(r"(\w+)=(\d+)$",)),
                           sidecar=SidecarSettings())
    assert r"--metrics-format=(\w+)=(\d+)$$" in containers(obj)[SIDECAR_NAME]["args"]


def test_file_collector_shares_the_folder() -> None:
    collector = {"collector": {"kind": "File"},
                 "source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File",
                                               "format": "JSON"}}}
    obj = prepare_workload(launch_of(JOB, collector), sidecar=SidecarSettings())
    c = containers(obj)
    assert "tee" not in c["training"]["command"][2]
    shared = {"name": "katib-metrics-source", "mountPath": "/katib"}
    assert shared in c["training"]["volumeMounts"]
    assert shared in c[SIDECAR_NAME]["volumeMounts"]
    args = c[SIDECAR_NAME]["args"]
    assert "--path=/katib/mnist.log" in args and "--format=JSON" in args


def test_file_collector_reuses_the_users_volume() -> None:
    manifest = copy.deepcopy(JOB)
    pod = manifest["spec"]["template"]["spec"]
    pod["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]
    pod["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    collector = {"collector": {"kind": "File"},
                 "source": {"fileSystemPath": {"path": "/data/out/m.log", "kind": "File"}}}
    obj = prepare_workload(launch_of(manifest, collector), sidecar=SidecarSettings())
    assert {"name": "data", "mountPath": "/data"} in containers(obj)[SIDECAR_NAME]["volumeMounts"]
    assert len(obj["spec"]["template"]["spec"]["volumes"]) == 2  # data + katib-metrics


@pytest.mark.parametrize(
    ("collector", "arg"),
    [
        ({"collector": {"kind": "TensorFlowEvent"},
          "source": {"fileSystemPath": {"path": "/tb/logs/", "kind": "Directory"}}},
         "--path=/tb/logs/"),
        ({"collector": {"kind": "PrometheusMetric"},
          "source": {"httpGet": {"path": "/m", "port": 9090}}},
         "--url=http://127.0.0.1:9090/m"),
    ],
)
def test_tfevent_and_prometheus(collector: dict[str, Any], arg: str) -> None:
    obj = prepare_workload(launch_of(JOB, collector), sidecar=SidecarSettings())
    assert arg in containers(obj)[SIDECAR_NAME]["args"]


def test_custom_collector_is_the_experiments_container() -> None:
    collector = {"collector": {"kind": "Custom", "customCollector": {
        "name": "my-collector", "image": "me/collector", "args": ["-m", "acc"]}},
        "source": {"fileSystemPath": {"path": "/katib/mnist.log", "kind": "File"}}}
    obj = prepare_workload(launch_of(JOB, collector), sidecar=SidecarSettings(),
                           push_secret="katib-push-exp")
    c = containers(obj)
    assert SIDECAR_NAME not in c
    assert c["my-collector"]["image"] == "me/collector"
    assert env_of(c["my-collector"])["KATIB_TRIAL_NAME"] == "exp-abc"
    shared = {"name": "katib-metrics-source", "mountPath": "/katib"}
    assert shared in c["my-collector"]["volumeMounts"]
    assert c["training"]["command"] == ["python3", "train.py"]  # not wrapped


@pytest.mark.parametrize("kind", ["Push", "None"])
def test_push_and_none_add_only_the_environment(kind: str) -> None:
    obj = prepare_workload(launch_of(JOB, {"collector": {"kind": kind}}),
                           sidecar=SidecarSettings(), push_secret="s")
    c = containers(obj)
    assert list(c) == ["training"]
    assert c["training"]["command"] == ["python3", "train.py"]
    assert "KATIB_API_URL" in env_of(c["training"])


def test_a_container_without_command_cannot_be_wrapped() -> None:
    manifest = copy.deepcopy(JOB)
    del manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    with pytest.raises(WorkloadError, match="entrypoint"):
        prepare_workload(launch_of(manifest), sidecar=SidecarSettings())
    # ... but Push needs no wrapping.
    prepare_workload(launch_of(manifest, {"collector": {"kind": "Push"}}),
                     sidecar=SidecarSettings())


def _rendered(example: str) -> tuple[dict[str, Any], Any]:
    exp = load_experiments(EXAMPLES / example)[0]
    params = {p.name: (p.feasible_space.min or p.feasible_space.values[0])
              for p in exp.spec.parameters}
    manifest = render_trial_spec(exp, params, trial_name="t-1", namespace="ns")
    return manifest, exp


def test_pytorchjob_master_gets_the_sidecar_and_workers_do_not() -> None:
    manifest, exp = _rendered("kubeflow-training-operator/pytorchjob-mnist.yaml")
    template = exp.spec.trial_template
    launch = launch_of(manifest, primary=template.primary_container_name,
                       primary_pod_labels=template.primary_pod_labels)
    obj = prepare_workload(launch, sidecar=SidecarSettings())
    specs = obj["spec"]["pytorchReplicaSpecs"]
    master = [c["name"] for c in specs["Master"]["template"]["spec"]["containers"]]
    worker = [c["name"] for c in specs["Worker"]["template"]["spec"]["containers"]]
    assert master == ["pytorch", SIDECAR_NAME] and worker == ["pytorch"]
    sidecar = specs["Master"]["template"]["spec"]["containers"][1]
    # Replicas share templates, so the sidecar checks its own pod's role label.
    assert "--only-if=KATIB_POD_LABEL_0=master" in sidecar["args"]
    assert env_of(sidecar)["KATIB_POD_LABEL_0"] == {
        "fieldRef": {"fieldPath": "metadata.labels['training.kubeflow.org/job-role']"}}
    labels = specs["Worker"]["template"]["metadata"]["labels"]
    assert labels["katib.kubeflow.org/trial"] == "exp-abc"


@pytest.mark.parametrize(
    ("example", "replica"),
    [
        ("kubeflow-training-operator/tfjob-mnist-with-summaries.yaml", "Worker"),
        ("kubeflow-training-operator/xgboostjob-lightgbm.yaml", "Master"),
        ("kubeflow-training-operator/mpijob-horovod.yaml", "Launcher"),
    ],
)
def test_training_operator_kinds_primary_replica(example: str, replica: str) -> None:
    manifest, exp = _rendered(example)
    template = exp.spec.trial_template
    for _, pod in pod_templates(manifest):
        for c in pod["spec"]["containers"]:
            # The XGBoostJob example relies on its image's entrypoint, which we cannot read.
            c.setdefault("command", ["python3", "main.py"])
    launch = TrialLaunch(
        namespace="ns", experiment="exp", trial="exp-abc", manifest=manifest,
        primary_container=template.primary_container_name, assignments={},
        collection=CollectionPlan(("loss",), exp.spec.metrics_collector_spec),
        primary_pod_labels=template.primary_pod_labels or {},
    )
    obj = prepare_workload(launch, sidecar=SidecarSettings())
    with_sidecar = [path for path, t in pod_templates(obj)
                    if any(c["name"] == SIDECAR_NAME for c in t["spec"]["containers"])]
    assert len(with_sidecar) == 1 and with_sidecar[0][-2] == replica


def test_trainjob_gets_push_env_and_refuses_a_sidecar() -> None:
    manifest, exp = _rendered("kubeflow-trainer/trainjob-pytorch.yaml")
    template = exp.spec.trial_template
    push = launch_of(manifest, {"collector": {"kind": "Push"}},
                     primary=template.primary_container_name)
    obj = prepare_workload(push, sidecar=SidecarSettings(), push_secret="s")
    assert "KATIB_TRIAL_NAME" in env_of(obj["spec"]["trainer"])
    stdout = launch_of(manifest, primary=template.primary_container_name)
    with pytest.raises(WorkloadError, match="Push collector"):
        prepare_workload(stdout, sidecar=SidecarSettings())


@pytest.mark.parametrize("kind", ["StdOut", "File", "TensorFlowEvent", "PrometheusMetric",
                                  "Custom", "Push"])
def test_rendered_jobs_pass_kubernetes_validate_strict(kind: str) -> None:
    collector: dict[str, Any] = {"collector": {"kind": kind}}
    if kind == "File":
        collector["source"] = {"fileSystemPath": {"path": "/katib/m.log", "kind": "File"}}
    if kind == "TensorFlowEvent":
        collector["source"] = {"fileSystemPath": {"path": "/tb", "kind": "Directory"}}
    if kind == "Custom":
        collector["collector"]["customCollector"] = {"name": "c", "image": "c:1"}
    owner = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial", "name": "exp-abc",
             "uid": "0b7e3f38-4f0b-4a0e-9d1b-1b8d6f1b2c3d", "controller": True}
    obj = prepare_workload(launch_of(JOB, collector), sidecar=SidecarSettings(),
                           owner_references=[owner], push_secret="katib-push-exp")
    kubernetes_validate.validate(obj, "1.37.0", strict=True)


def test_the_sidecar_keeps_a_text_objective_as_text() -> None:
    # DARTS' trials print Best-Genotype=Genotype(...): the controller asks for it as text.
    obj = prepare_workload(launch_of(JOB, text_metrics=("loss",)), sidecar=SidecarSettings(),
                           push_secret="katib-push-exp")
    assert "--text-metrics=loss" in containers(obj)[SIDECAR_NAME]["args"]
