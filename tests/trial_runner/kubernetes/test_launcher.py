"""KubernetesLauncher on the test control plane: real apiserver, Job controller, garbage
collector; pods run by the process node (containers as host processes)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from katib.spec import MetricsCollectorSpec
from tests.cluster.control_plane import ControlPlane
from tests.trial_runner.kubernetes.conftest import Events, PushRecorder
from trial_runner import CollectionPlan, Ending, KillReason, TrialLaunch
from trial_runner.kubernetes import (
    KubeApi,
    KubernetesLauncher,
    SidecarSettings,
    prepare_workload,
)

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

T = TypeVar("T")
STANDIN = Path(__file__).resolve().parents[2] / "fixtures" / "local_standins" / "mnist.py"
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}", pytrace=False)


def job(command: list[str], *, backoff_limit: int = 0, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": backoff_limit,
            **spec,
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "training", "image": "python:3.11", "command": command}]}},
        },
    }


def trial(namespace: str, name: str, manifest: dict[str, Any], **kw: Any) -> TrialLaunch:
    return TrialLaunch(
        namespace=namespace, experiment="exp", trial=name, manifest=manifest,
        primary_container="training", assignments={},
        collection=kw.pop("collection", CollectionPlan(("loss",))),
        success_condition=kw.pop("success", JOB_SUCCESS),
        failure_condition=kw.pop("failure", JOB_FAILURE), **kw,
    )


def pods_of(cluster: ControlPlane, namespace: str, trial_name: str) -> list[str]:
    root = cluster.node_root / "logs" / namespace
    return sorted(p.name for p in root.glob(f"{trial_name}-*")) if root.exists() else []


def exists(kube_api: KubeApi, namespace: str, name: str, kind: str = "Job",
           api_version: str = "batch/v1") -> bool:
    return kube_api.get(api_version, kind, namespace, name) is not None


def test_job_trial_succeeds_and_the_sidecar_pushes_its_metrics(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events, push_recorder: PushRecorder,
) -> None:
    command = ["python3", str(STANDIN), "--lr=0.02", "--num-epochs=3"]
    launch = trial(kube_namespace, "exp-ok", job(command),
                   collection=CollectionPlan(("Validation-accuracy", "Train-accuracy")),
                   push_env={"KATIB_API_URL": push_recorder.url,
                             "KATIB_API_TOKEN": push_recorder.token})
    launcher.launch(launch, events)
    ended = events.until_end()
    assert ended.ending == Ending.COMPLETED, ended
    assert len(events.started()) == 1
    # Katib's way: the sidecar read the tee'd output and pushed before the pod finished.
    assert len(push_recorder.values("exp-ok", "Validation-accuracy")) == 3
    assert len(push_recorder.values("exp-ok", "Train-accuracy")) == 3
    assert push_recorder.unauthorized == 0
    [pod] = pods_of(kube_cluster, kube_namespace, "exp-ok")
    output = kube_cluster.read_container_log(kube_namespace, pod, "training")
    assert "Validation-accuracy=" in output  # the training output still reaches the log
    secret = kube_api.get("v1", "Secret", kube_namespace, "katib-push-exp")
    assert secret is not None
    # retain is false: the Job (and its pod) are removed once the trial ended.
    wait_for("the Job to be deleted", lambda: not exists(kube_api, kube_namespace, "exp-ok"))


def test_failed_job_is_retried_by_the_job_controller(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events,
) -> None:
    launch = trial(kube_namespace, "exp-fail",
                   job(["python3", "-c", "import sys; sys.exit(3)"], backoff_limit=1),
                   collection=CollectionPlan(("loss",), MetricsCollectorSpec.model_validate(
                       {"collector": {"kind": "None"}})), retain=True)
    launcher.launch(launch, events)
    ended = events.until_end()
    assert ended.ending == Ending.FAILED
    assert "BackoffLimitExceeded" in ended.message
    assert launcher.retries_failures
    assert len(pods_of(kube_cluster, kube_namespace, "exp-fail")) == 2  # backoffLimit 1
    time.sleep(1)
    assert exists(kube_api, kube_namespace, "exp-fail")  # retain: kept


def test_deadline_exceeded(kube_namespace: str, launcher: KubernetesLauncher,
                           events: Events) -> None:
    manifest = job(["python3", "-c", "import time; time.sleep(120)"], activeDeadlineSeconds=2)
    launcher.launch(trial(kube_namespace, "exp-slow", manifest), events)
    ended = events.until_end()
    assert ended.ending == Ending.DEADLINE_EXCEEDED, ended


def test_kill_deletes_the_workload_and_its_pods(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events,
) -> None:
    launcher.launch(trial(kube_namespace, "exp-kill",
                          job(["python3", "-c", "import time; time.sleep(120)"])), events)
    wait_for("the pod to run", lambda: pods_of(kube_cluster, kube_namespace, "exp-kill"))
    launcher.kill("exp-kill", KillReason.EARLY_STOPPED, "behind the median")
    ended = events.until_end()
    assert (ended.ending, ended.kill_reason) == (Ending.KILLED, KillReason.EARLY_STOPPED)
    assert ended.message == "behind the median"
    wait_for("the Job to go", lambda: not exists(kube_api, kube_namespace, "exp-kill"))
    wait_for("its pod to go", lambda: not kube_api.list_objects(
        "v1", "Pod", kube_namespace, label_selector="katib.kubeflow.org/trial=exp-kill")[0])


def test_kill_before_the_workload_exists(kube_namespace: str, launcher: KubernetesLauncher,
                                         events: Events) -> None:
    launcher.launch(trial(kube_namespace, "exp-k0", job(["true"])), events)
    launcher.kill("exp-k0", KillReason.EXPERIMENT_DONE)
    ended = events.until_end()
    assert (ended.ending, ended.kill_reason) == (Ending.KILLED, KillReason.EXPERIMENT_DONE)


def test_a_workload_deleted_by_someone_else_fails_the_trial(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events,
) -> None:
    launcher.launch(trial(kube_namespace, "exp-gone",
                          job(["python3", "-c", "import time; time.sleep(120)"])), events)
    wait_for("the Job", lambda: exists(kube_api, kube_namespace, "exp-gone"))
    kube_api.delete("batch/v1", "Job", kube_namespace, "exp-gone")
    ended = events.until_end()
    assert ended.ending == Ending.FAILED and "deleted" in ended.message


def test_a_workload_deleted_before_its_create_call_returns_fails_the_trial(
    kube_namespace: str, kube_api: KubeApi, launcher: KubernetesLauncher, events: Events,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The watch reports the deletion while the launcher is still in its create call."""
    create = launcher.api.create
    seen: list[str] = []
    on_event = launcher._on_event

    def recording(kind: str, obj: dict[str, Any]) -> None:
        if (obj.get("metadata") or {}).get("name") == "exp-gone-early":
            seen.append(kind)
        on_event(kind, obj)

    monkeypatch.setattr(launcher, "_on_event", recording)

    def slow_create(body: dict[str, Any], namespace: str) -> dict[str, Any]:
        created = create(body, namespace)
        kube_api.delete("batch/v1", "Job", namespace, "exp-gone-early")
        wait_for("the watch to see the deletion", lambda: "DELETED" in seen)
        return created

    monkeypatch.setattr(launcher.api, "create", slow_create)
    launcher.launch(trial(kube_namespace, "exp-gone-early",
                          job(["python3", "-c", "import time; time.sleep(120)"])), events)
    ended = events.until_end(timeout=30)
    assert ended.ending == Ending.FAILED and "deleted" in ended.message, ended


def test_unknown_kind_and_invalid_workload_do_not_start(
    kube_namespace: str, launcher: KubernetesLauncher, events: Events
) -> None:
    manifest = {"apiVersion": "example.com/v1", "kind": "Nope", "spec": {}}
    launcher.launch(trial(kube_namespace, "exp-nope", manifest), events)
    ended = events.until_end()
    assert (ended.ending, ended.reason) == (Ending.NOT_STARTED, "UnknownKind")
    bad = job(["true"])
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # not allowed for a Job
    other = Events()
    launcher.launch(trial(kube_namespace, "exp-bad", bad), other)
    ended = other.until_end()
    assert ended.ending == Ending.NOT_STARTED and ended.reason == "Invalid", ended


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "versions": [{"name": "v1", "served": True, "storage": True,
                      "subresources": {"status": {}},
                      "schema": {"openAPIV3Schema": {
                          "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def test_a_custom_kind_with_its_own_conditions(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher,
) -> None:
    status, body = kube_cluster.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert status in (201, 409), body
    wait_for("the Widget kind", lambda: kube_cluster.request(
        "GET", f"/apis/example.com/v1/namespaces/{kube_namespace}/widgets")[0] == 200)
    manifest = {"apiVersion": "example.com/v1", "kind": "Widget",
                "spec": {"template": {"spec": {"containers": [
                    {"name": "training", "image": "x", "command": ["true"]}]}}}}
    collection = CollectionPlan(("loss",), MetricsCollectorSpec.model_validate(
        {"collector": {"kind": "Push"}}))
    results = {}
    for name, phase in (("exp-w-ok", "Done"), ("exp-w-bad", "Broken")):
        sink = Events()
        launcher.launch(trial(kube_namespace, name, manifest, collection=collection,
                              success='status.[@this].#(phase=="Done")#',
                              failure='status.[@this].#(phase=="Broken")#'), sink)
        wait_for("the Widget", lambda n=name: exists(kube_api, kube_namespace, n, "Widget",
                                                     "example.com/v1"))
        time.sleep(0.5)
        assert not [e for e in sink.seen if type(e).__name__ == "TrialEnded"]
        kube_api.patch("example.com/v1", "Widget", kube_namespace, name,
                       {"status": {"phase": phase}}, subresource="status")
        results[name] = sink.until_end().ending
    assert results == {"exp-w-ok": Ending.COMPLETED, "exp-w-bad": Ending.FAILED}


def test_a_second_launcher_adopts_a_running_trial(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi, events: Events,
) -> None:
    code = "import time; time.sleep(4); print('loss=0.5')"
    first = KubernetesLauncher(kube_api)
    launch = trial(kube_namespace, "exp-adopt", job(["python3", "-c", code]))
    first.launch(launch, Events())
    wait_for("the pod to run", lambda: pods_of(kube_cluster, kube_namespace, "exp-adopt"))
    first.close()  # the controller went away: the workload keeps running
    second = KubernetesLauncher(kube_api)
    try:
        assert second.adopt(launch, events)
        ended = events.until_end()
        assert ended.ending == Ending.COMPLETED
        assert len(pods_of(kube_cluster, kube_namespace, "exp-adopt")) == 1
        assert not second.adopt(trial(kube_namespace, "exp-none", job(["true"])), Events())
    finally:
        second.close()


def test_launching_a_trial_whose_workload_exists_follows_it(
    kube_cluster: ControlPlane, kube_namespace: str, kube_api: KubeApi,
    launcher: KubernetesLauncher, events: Events,
) -> None:
    # A controller died after creating the workload and before recording the trial Running.
    launch = trial(kube_namespace, "exp-twice", job(["python3", "-c", "print('loss=1')"]))
    kube_api.create(prepare_workload(launch, sidecar=SidecarSettings()), kube_namespace)
    launcher.launch(launch, events)
    assert events.until_end().ending == Ending.COMPLETED
    assert len(events.started()) == 1
    assert len(pods_of(kube_cluster, kube_namespace, "exp-twice")) == 1


def test_config_map_templates_are_read_from_the_cluster(
    kube_namespace: str, kube_api: KubeApi, launcher: KubernetesLauncher
) -> None:
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tpl"},
                     "data": {"t.yaml": "kind: Job\n"}}, kube_namespace)
    assert launcher.read_config_map(kube_namespace, "tpl", "t.yaml") == "kind: Job\n"
    with pytest.raises(Exception, match="no key 'x.yaml'"):
        launcher.read_config_map(kube_namespace, "tpl", "x.yaml")
    with pytest.raises(Exception, match="does not exist"):
        launcher.read_config_map(kube_namespace, "none", "t.yaml")


def test_interpreter_is_this_checkouts() -> None:
    # The sidecar runs `python -m trial_runner` from this environment on the process node.
    assert Path(sys.executable).parent.joinpath("python").exists()
