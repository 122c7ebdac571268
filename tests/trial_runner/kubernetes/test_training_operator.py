"""Training-operator kinds on the test control plane.

* PyTorchJob, TFJob and XGBoostJob trials run under the **real Kubeflow Training Operator**
  v1.8.1, built from its Go module (.ci/training-operator.sh) and started here against the
  test apiserver: it creates the replicas' pods and Services, sets RANK/WORLD_SIZE/TF_CONFIG,
  and writes the job's conditions, which the launcher reads with Katib's default conditions.
  Its validating webhook is registered with failurePolicy Ignore: the apiserver cannot reach
  it under its Service's DNS name here (no cluster DNS), so it is not exercised.
* MPIJob (its CRD from the same module; its controller needs the kubectl-delivery image and
  an SSH launcher, which a process node cannot run) and TrainJob (a minimal CRD: Kubeflow
  Trainer v2 is another project) are created by the launcher as the real operators expect
  them (the primary container in the launcher replica; env in ``spec.trainer.env``), and the
  test drives their status as their operators would.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.spec import MetricsCollectorSpec
from tests.cluster.control_plane import ControlPlane, free_port
from tests.trial_runner.kubernetes.conftest import Events, PushRecorder
from tests.trial_runner.kubernetes.test_launcher import wait_for
from trial_runner import CollectionPlan, Ending, TrialLaunch
from trial_runner.kubernetes import SIDECAR_NAME, KubeApi, KubernetesLauncher, pod_templates

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KUBEFLOW_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
MASTER = {"training.kubeflow.org/job-role": "master"}
CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")  # fixed in the operator's main.go
WEBHOOK = {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "validator.training-operator.kubeflow.org"},
    "webhooks": [{
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": "https://127.0.0.1:1/validate-kubeflow-org-v1-pytorchjob"},
        "failurePolicy": "Ignore",
        "name": "validator.pytorchjob.training-operator.kubeflow.org",
        "rules": [{"apiGroups": ["kubeflow.org"], "apiVersions": ["v1"],
                   "operations": ["CREATE"], "resources": ["pytorchjobs"]}],
        "sideEffects": "None",
    }],
}


def _start(binary: str, kubeconfig: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [binary, "--enable-scheme=pytorchjob", "--enable-scheme=tfjob",
            "--enable-scheme=xgboostjob", f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            f"--webhook-server-port={free_port()}"]
    env = {k: v for k, v in os.environ.items() if k != "KUBEFLOW_NAMESPACE"}
    env["KUBECONFIG"] = str(kubeconfig)
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def training_operator(kube_cluster: ControlPlane) -> Iterator[ControlPlane]:
    built = subprocess.run(["bash", str(ROOT / ".ci" / "training-operator.sh")],
                           capture_output=True, text=True, timeout=1800, check=False)
    assert built.returncode == 0, f"cannot build the Training Operator: {built.stderr[-3000:]}"
    crds, binary = built.stdout.strip().splitlines()[-2:]
    cluster = kube_cluster
    cluster.kubectl("apply", "--server-side", "-k", crds)
    cluster.kubectl("create", "namespace", "kubeflow", check=False)
    cluster.kubectl("create", "secret", "generic", "training-operator-webhook-cert",
                    "-n", "kubeflow", check=False)
    cluster.request(
        "POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", WEBHOOK
    )
    log = cluster.workdir / "logs" / "training-operator.log"
    # Its cert rotator fills the webhook Secret, then waits for the Secret's files in its
    # cert folder, as a kubelet would mount them: write them, and start it again.
    first = _start(binary, cluster.kubeconfig, log)

    def certs() -> dict[str, str] | None:
        status, body = cluster.request(
            "GET", "/api/v1/namespaces/kubeflow/secrets/training-operator-webhook-cert")
        data = body.get("data") if status == 200 else None
        return data if data and "tls.crt" in data else None

    try:
        data = wait_for("the operator's webhook certificates", certs, 120)
    finally:
        first.terminate()
        first.wait(30)
    CERT_DIR.mkdir(parents=True, exist_ok=True)
    for name, value in data.items():
        (CERT_DIR / name).write_bytes(base64.b64decode(value))
    operator = _start(binary, cluster.kubeconfig, log)
    try:
        wait_for("its controllers", lambda: log.read_text().count('"worker count": 1') >= 4, 120)
        yield cluster
    finally:
        operator.terminate()
        operator.wait(30)


def job(kind: str, replicas: dict[str, int], code: str, container: str) -> dict[str, Any]:
    key = {"PyTorchJob": "pytorchReplicaSpecs", "TFJob": "tfReplicaSpecs",
           "XGBoostJob": "xgbReplicaSpecs", "MPIJob": "mpiReplicaSpecs"}[kind]
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "spec": {key: {
            role: {"replicas": n, "restartPolicy": "Never", "template": {"spec": {
                "containers": [{"name": container, "image": "trainer:1",
                                "command": ["python3", "-c", code]}]}}}
            for role, n in replicas.items()}},
    }


def launch(namespace: str, name: str, manifest: dict[str, Any], container: str,
           recorder: PushRecorder, collector: str = "StdOut") -> TrialLaunch:
    return TrialLaunch(
        namespace=namespace, experiment="exp", trial=name, manifest=manifest,
        primary_container=container, assignments={}, primary_pod_labels=MASTER,
        collection=CollectionPlan(("loss",), MetricsCollectorSpec.model_validate(
            {"collector": {"kind": collector}})),
        push_env={"KATIB_API_URL": recorder.url, "KATIB_API_TOKEN": recorder.token},
        success_condition=KUBEFLOW_SUCCESS, failure_condition=KUBEFLOW_FAILURE,
    )


PRINT_ENV = ("import os\n"
             "print('env', os.environ.get('RANK'), os.environ.get('WORLD_SIZE'),"
             " os.environ.get('TF_CONFIG', '')[:20])\n"
             "print('loss=0.25')\n")


@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("kind", "replicas", "container"),
    [
        ("PyTorchJob", {"Master": 1}, "pytorch"),
        ("TFJob", {"Worker": 1}, "tensorflow"),
        ("XGBoostJob", {"Master": 1}, "xgboost"),
    ],
)
def test_training_jobs_run_under_the_real_training_operator(
    training_operator: ControlPlane, kube_namespace: str, launcher: KubernetesLauncher,
    events: Events, push_recorder: PushRecorder, kind: str, replicas: dict[str, int],
    container: str,
) -> None:
    name = f"exp-{kind.lower()}"
    manifest = job(kind, replicas, PRINT_ENV, container)
    launcher.launch(launch(kube_namespace, name, manifest, container, push_recorder), events)
    ended = events.until_end(180)
    assert ended.ending == Ending.COMPLETED, ended
    assert "Succeeded" in ended.message
    # The operator's pod ran the trial, with our sidecar beside it; the pod labelled
    # job-role=master pushed the metrics.
    assert push_recorder.values(name, "loss") == [0.25]
    root = training_operator.node_root / "logs" / kube_namespace
    [pod] = [p.name for p in root.glob(f"{name}-*")]
    output = training_operator.read_container_log(kube_namespace, pod, container)
    assert output.startswith("env "), output  # the operator set the replica's environment
    assert (root / pod / f"{SIDECAR_NAME}.log").exists()


def test_mpijob_structure_and_conditions(kube_namespace: str, kube_api: KubeApi,
                                         training_operator: ControlPlane,
                                         launcher: KubernetesLauncher, events: Events,
                                         push_recorder: PushRecorder) -> None:
    manifest = job("MPIJob", {"Launcher": 1, "Worker": 2}, "print('loss=1')", "mpi")
    launcher.launch(launch(kube_namespace, "exp-mpi", manifest, "mpi", push_recorder), events)
    obj = wait_for("the MPIJob", lambda: kube_api.get("kubeflow.org/v1", "MPIJob",
                                                      kube_namespace, "exp-mpi"))
    with_sidecar = [path[-2] for path, t in pod_templates(obj)
                    if any(c["name"] == SIDECAR_NAME for c in t["spec"]["containers"])]
    assert with_sidecar == ["Launcher"]  # the primary container is the launcher's
    time.sleep(0.5)
    kube_api.patch("kubeflow.org/v1", "MPIJob", kube_namespace, "exp-mpi", {"status": {
        "conditions": [{"type": "Created", "status": "True"},
                       {"type": "Succeeded", "status": "True", "reason": "MPIJobSucceeded",
                        "message": "MPIJob exp-mpi successfully completed."}]}},
        subresource="status")
    ended = events.until_end()
    assert ended.ending == Ending.COMPLETED and "MPIJobSucceeded" in ended.message


TRAINJOB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "trainjobs.trainer.kubeflow.org"},
    "spec": {
        "group": "trainer.kubeflow.org", "scope": "Namespaced",
        "names": {"kind": "TrainJob", "plural": "trainjobs", "singular": "trainjob"},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                      "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {
                          "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def test_trainjob_push_environment_and_conditions(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events, push_recorder: PushRecorder,
) -> None:
    kube_cluster.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                         TRAINJOB_CRD)
    wait_for("the TrainJob kind", lambda: kube_cluster.request(
        "GET", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{kube_namespace}/trainjobs"
    )[0] == 200)
    manifest = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"command": ["python3", "train.py"], "numNodes": 1}}}
    trial = launch(kube_namespace, "exp-train", manifest, "node", push_recorder, "Push")
    trial = TrialLaunch(**{
        **trial.__dict__,
        "success_condition": 'status.conditions.#(type=="Complete")#|#(status=="True")#',
        "failure_condition": 'status.conditions.#(type=="Failed")#|#(status=="True")#',
    })
    launcher.launch(trial, events)
    obj = wait_for("the TrainJob", lambda: kube_api.get(
        "trainer.kubeflow.org/v1alpha1", "TrainJob", kube_namespace, "exp-train"))
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in obj["spec"]["trainer"]["env"]}
    assert env["KATIB_TRIAL_NAME"] == "exp-train" and "secretKeyRef" in env["KATIB_API_TOKEN"]
    kube_api.patch("trainer.kubeflow.org/v1alpha1", "TrainJob", kube_namespace, "exp-train",
                   {"status": {"conditions": [{"type": "Complete", "status": "True",
                                               "reason": "JobsCompleted"}]}},
                   subresource="status")
    assert events.until_end().ending == Ending.COMPLETED
