"""End-to-end tests of the test control plane: the real apiserver, Job controller, garbage
collector and RBAC, with pods run by the process node."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.cluster.control_plane import ControlPlane

pytestmark = [pytest.mark.k8s, pytest.mark.slow]

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on time-out."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:g}s waiting for {what}", pytrace=False)


def create(cluster: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, result = cluster.request("POST", path, body)
    assert status == 201, f"POST {path}: {status} {result}"
    return dict(result)


def get(cluster: ControlPlane, path: str) -> dict[str, Any] | None:
    status, result = cluster.request("GET", path)
    return dict(result) if status == 200 else None


def job(name: str, code: str, *, backoff_limit: int = 0, **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "python:3.11", "command": ["python3", "-c", code]}
                    ],
                    **pod_spec,
                }
            },
        },
    }


def job_condition(cluster: ControlPlane, namespace: str, name: str) -> str | None:
    body = get(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}") or {}
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def job_pods(cluster: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    body = get(cluster, f"/api/v1/namespaces/{namespace}/pods?labelSelector=job-name%3D{name}")
    return list((body or {}).get("items") or [])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_apiserver_answers_and_the_node_is_ready(kube_cluster: ControlPlane) -> None:
    version = get(kube_cluster, "/version")
    assert version is not None and version["gitVersion"] == "v1.37.2"
    nodes = kube_cluster.kubectl("get", "nodes", "--no-headers").stdout
    assert kube_cluster.node_name in nodes and " Ready" in nodes
    assert "v1.37.2" in kube_cluster.kubectl("version").stdout


def test_a_job_completes_through_the_real_job_controller(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    create(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs", job("hello", "print('hello')"))
    assert wait_for("Job hello to finish", lambda: job_condition(kube_cluster, ns, "hello")) == (
        "Complete"
    )
    (pod,) = job_pods(kube_cluster, ns, "hello")
    assert pod["status"]["phase"] == "Succeeded"
    (status,) = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert terminated["startedAt"] and terminated["finishedAt"]
    log = kube_cluster.read_container_log(ns, pod["metadata"]["name"], "main")
    assert log == "hello\n"
    succeeded = get(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs/hello")
    assert succeeded is not None and succeeded["status"]["succeeded"] == 1


def test_a_failing_job_with_backoff_limit_1_fails_after_two_pods(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    body = job("fails", "import sys; print('bad'); sys.exit(3)", backoff_limit=1)
    create(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    # The Job controller waits ~10s before replacing a failed pod, as on any cluster.
    condition = wait_for("Job fails to end", lambda: job_condition(kube_cluster, ns, "fails"), 90)
    assert condition == "Failed"
    reasons = {
        c["type"]: c.get("reason")
        for c in (get(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs/fails") or {})["status"][
            "conditions"
        ]
    }
    assert reasons["Failed"] == "BackoffLimitExceeded"
    pods = job_pods(kube_cluster, ns, "fails")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"


ENV_POD_READER = """
import os, pathlib, time
shared = pathlib.Path('/shared/msg')
for _ in range(200):
    if shared.exists():
        break
    time.sleep(0.05)
print('shared=' + shared.read_text())
for name in ('POD_NAME', 'POD_NS', 'POD_UID', 'TEAM', 'NOTE', 'NODE', 'POD_IP', 'PASSWORD',
             'COLOR', 'CFG_color', 'SEC_password', 'GREETING'):
    print(name + '=' + os.environ.get(name, '<unset>'))
print('file=' + pathlib.Path('/etc/config/color').read_text())
print('secretfile=' + pathlib.Path('/etc/secret/password').read_text())
print('cwd=' + os.getcwd())
"""


def test_env_value_from_volumes_and_an_emptydir_shared_by_two_containers(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    create(
        kube_cluster,
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "cfg"}, "data": {"color": "blue"}},
    )
    create(
        kube_cluster,
        f"/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "sec"}, "stringData": {"password": "s3cret"}},
    )
    shared_mount = [{"name": "shared", "mountPath": "/shared"}]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "env",
            "labels": {"team": "katib"},
            "annotations": {"note": "hi there"},
        },
        "spec": {
            "restartPolicy": "Never",
            "volumes": [
                {"name": "shared", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
            ],
            "containers": [
                {
                    "name": "writer",
                    "image": "busybox",
                    "command": ["python3", "-c"],
                    "args": ["import pathlib; pathlib.Path('/shared/msg').write_text('$(WORD)')"],
                    "env": [{"name": "WORD", "value": "from-writer"}],
                    "volumeMounts": shared_mount,
                },
                {
                    "name": "reader",
                    "image": "busybox",
                    "command": ["python3", "-c", ENV_POD_READER],
                    "workingDir": "/shared",
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_NS",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                        },
                        {
                            "name": "POD_UID",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}},
                        },
                        {
                            "name": "TEAM",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}},
                        },
                        {
                            "name": "NOTE",
                            "valueFrom": {
                                "fieldRef": {"fieldPath": "metadata.annotations['note']"}
                            },
                        },
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                        {
                            "name": "PASSWORD",
                            "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}},
                        },
                        {
                            "name": "COLOR",
                            "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}},
                        },
                        {"name": "GREETING", "value": "hello $(TEAM) in $(POD_NS), $$(TEAM)"},
                    ],
                    "envFrom": [
                        {"prefix": "CFG_", "configMapRef": {"name": "cfg"}},
                        {"prefix": "SEC_", "secretRef": {"name": "sec"}},
                    ],
                    "volumeMounts": [
                        *shared_mount,
                        {"name": "cfg", "mountPath": "/etc/config"},
                        {"name": "sec", "mountPath": "/etc/secret", "readOnly": True},
                    ],
                },
            ],
        },
    }
    created = create(kube_cluster, f"/api/v1/namespaces/{ns}/pods", pod)

    def finished() -> dict[str, Any] | None:
        body = get(kube_cluster, f"/api/v1/namespaces/{ns}/pods/env") or {}
        phase = (body.get("status") or {}).get("phase")
        return body if phase in ("Succeeded", "Failed") else None

    body = wait_for("pod env to finish", finished)
    log = kube_cluster.read_container_log(ns, "env", "reader")
    assert body["status"]["phase"] == "Succeeded", log
    lines = dict(line.split("=", 1) for line in log.splitlines())
    assert lines["shared"] == "from-writer"
    assert lines["POD_NAME"] == "env"
    assert lines["POD_NS"] == ns
    assert lines["POD_UID"] == created["metadata"]["uid"]
    assert lines["TEAM"] == "katib"
    assert lines["NOTE"] == "hi there"
    assert lines["NODE"] == kube_cluster.node_name
    assert lines["POD_IP"] == "127.0.0.1"
    assert lines["PASSWORD"] == lines["SEC_password"] == "s3cret"
    assert lines["COLOR"] == lines["CFG_color"] == "blue"
    assert lines["GREETING"] == f"hello katib in {ns}, $(TEAM)"
    assert lines["file"] == "blue"
    assert lines["secretfile"] == "s3cret"
    assert lines["cwd"].endswith("/volumes/shared")
    statuses = {s["name"]: s for s in body["status"]["containerStatuses"]}
    assert {n: s["state"]["terminated"]["exitCode"] for n, s in statuses.items()} == {
        "writer": 0,
        "reader": 0,
    }


def test_on_failure_restarts_the_container_in_the_same_pod(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    code = (
        "import pathlib, sys\n"
        "marker = pathlib.Path('/scratch/tried')\n"
        "if not marker.exists():\n"
        "    marker.write_text('1'); print('first try fails'); sys.exit(1)\n"
        "print('second try works')\n"
    )
    body = job(
        "flaky",
        code,
        backoff_limit=3,
        restartPolicy="OnFailure",
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/scratch"}
    ]
    create(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs", body)
    assert wait_for("Job flaky to finish", lambda: job_condition(kube_cluster, ns, "flaky")) == (
        "Complete"
    )
    (pod,) = job_pods(kube_cluster, ns, "flaky")
    (status,) = pod["status"]["containerStatuses"]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    name = pod["metadata"]["name"]
    assert kube_cluster.read_container_log(ns, name, "main") == "second try works\n"
    assert kube_cluster.read_container_log(ns, name, "main", previous=True) == "first try fails\n"


@pytest.mark.parametrize("policy", ["Foreground", "Background"])
def test_deleting_a_job_removes_its_pods_and_kills_their_processes(
    kube_cluster: ControlPlane, kube_namespace: str, policy: str
) -> None:
    ns = kube_namespace
    create(
        kube_cluster,
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        job("sleeper", "import time; print('sleeping', flush=True); time.sleep(600)"),
    )

    def running_pid() -> int | None:
        for pod in job_pods(kube_cluster, ns, "sleeper"):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                if "running" in status["state"] and status.get("containerID"):
                    return int(status["containerID"].removeprefix("process://"))
        return None

    pid = wait_for("the sleeper's process to run", running_pid)
    assert pid_alive(pid)
    status, body = kube_cluster.request(
        "DELETE",
        f"/apis/batch/v1/namespaces/{ns}/jobs/sleeper",
        {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy},
    )
    assert status in (200, 202), body
    wait_for(
        "the Job to be gone",
        lambda: get(kube_cluster, f"/apis/batch/v1/namespaces/{ns}/jobs/sleeper") is None,
    )
    wait_for(
        "the garbage collector to remove the pod", lambda: not job_pods(kube_cluster, ns, "sleeper")
    )
    wait_for("the process to be killed", lambda: not pid_alive(pid), 10)


def test_rbac_is_enforced_for_a_service_account_token(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    create(
        kube_cluster, f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "reader"}}
    )
    create(
        kube_cluster,
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
        {
            "metadata": {"name": "get-pods"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    )
    create(
        kube_cluster,
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": "reader-gets-pods"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "get-pods",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
        },
    )
    create(
        kube_cluster,
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "target"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "x", "command": ["true"]}],
            },
        },
    )
    kubeconfig = kube_cluster.service_account_kubeconfig(ns, "reader")
    got = kube_cluster.kubectl(
        "-n", ns, "get", "pod", "target", "-o", "name", kubeconfig=kubeconfig, check=False
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "pod/target"
    listed = kube_cluster.kubectl("-n", ns, "get", "pods", kubeconfig=kubeconfig, check=False)
    assert listed.returncode != 0 and "Forbidden" in listed.stderr
    created = kube_cluster.kubectl(
        "-n",
        ns,
        "run",
        "intruder",
        "--image=x",
        "--restart=Never",
        "--command",
        "--",
        "true",
        kubeconfig=kubeconfig,
        check=False,
    )
    assert created.returncode != 0
    assert f'User "system:serviceaccount:{ns}:reader" cannot create resource "pods"' in (
        created.stderr
    )
    whoami = kube_cluster.kubectl(
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
        kubeconfig=kubeconfig,
        check=False,
    )
    assert whoami.stdout == f"system:serviceaccount:{ns}:reader"


POD_CALLS_APISERVER = """
import json, os, ssl, urllib.error, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount'
token = open(sa + '/token').read()
ctx = ssl.create_default_context(cafile=sa + '/ca.crt')
host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
ns = open(sa + '/namespace').read()
req = urllib.request.Request(f'https://{host}:{port}/api/v1/namespaces/{ns}/pods',
                             headers={'Authorization': 'Bearer ' + token})
try:
    urllib.request.urlopen(req, context=ctx)
    print('allowed')
except urllib.error.HTTPError as e:
    print(e.code, json.load(e)['message'])
"""


def test_a_pod_reaches_the_apiserver_with_its_projected_service_account_token(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    create(
        kube_cluster,
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "caller"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "c", "image": "x", "command": ["python3", "-c", POD_CALLS_APISERVER]}
                ],
            },
        },
    )

    def done() -> str | None:
        body = get(kube_cluster, f"/api/v1/namespaces/{ns}/pods/caller") or {}
        phase = (body.get("status") or {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for("pod caller to finish", done)
    log = kube_cluster.read_container_log(ns, "caller", "c")
    assert phase == "Succeeded", log
    # Authenticated as the pod's ServiceAccount, which RBAC gives no right to list pods.
    assert log.startswith("403 ") and f"system:serviceaccount:{ns}:default" in log


def wait_pod_phase(cluster: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        body = get(cluster, f"/api/v1/namespaces/{ns}/pods/{name}") or {}
        phase = (body.get("status") or {}).get("phase")
        return body if phase in ("Succeeded", "Failed") else None

    return wait_for(f"pod {name} to finish", finished)


def test_init_containers_run_in_order_before_the_containers_and_sidecars_end_with_the_pod(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    mount = [{"name": "work", "mountPath": "/work"}]

    def step(name: str, code: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "image": "x",
            "command": ["python3", "-c", code],
            "volumeMounts": mount,
            **extra,
        }

    append = "open('/work/order', 'a').write('{}\\n')"
    pod = {
        "metadata": {"name": "ordered"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                step("first", append.format("first")),
                step(
                    "sidecar",
                    append.format("sidecar") + "; import time; time.sleep(600)",
                    restartPolicy="Always",
                ),
                step("second", "import time; time.sleep(0.3); " + append.format("second")),
            ],
            "containers": [step("main", "print(open('/work/order').read(), end='')")],
        },
    }
    create(kube_cluster, f"/api/v1/namespaces/{ns}/pods", pod)
    body = wait_pod_phase(kube_cluster, ns, "ordered")
    assert body["status"]["phase"] == "Succeeded"
    assert kube_cluster.read_container_log(ns, "ordered", "main") == "first\nsidecar\nsecond\n"
    inits = {s["name"]: s["state"] for s in body["status"]["initContainerStatuses"]}
    assert inits["first"]["terminated"]["exitCode"] == 0
    assert inits["second"]["terminated"]["exitCode"] == 0
    assert "terminated" in inits["sidecar"]  # stopped when the main container ended


def test_a_failing_init_container_fails_a_never_restarting_pod(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    pod = {
        "metadata": {"name": "badinit"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "init", "image": "x", "command": ["false"]}],
            "containers": [{"name": "main", "image": "x", "command": ["true"]}],
        },
    }
    create(kube_cluster, f"/api/v1/namespaces/{ns}/pods", pod)
    body = wait_pod_phase(kube_cluster, ns, "badinit")
    assert body["status"]["phase"] == "Failed"
    (init,) = body["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 1
    (main,) = body["status"]["containerStatuses"]
    assert main["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_what_the_node_cannot_do_fails_the_pod_with_a_clear_reason(
    kube_cluster: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    pods: dict[str, dict[str, Any]] = {
        "nfs": {
            "volumes": [{"name": "v", "nfs": {"server": "nfs.example", "path": "/"}}],
            "containers": [{"name": "c", "image": "x", "command": ["true"]}],
        },
        "noentry": {"containers": [{"name": "c", "image": "python:3.11"}]},
        "nobinary": {"containers": [{"name": "c", "image": "x", "command": ["/no/such/bin"]}]},
    }
    for name, spec in pods.items():
        body = {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", **spec}}
        create(kube_cluster, f"/api/v1/namespaces/{ns}/pods", body)
    nfs = wait_pod_phase(kube_cluster, ns, "nfs")["status"]
    assert nfs["phase"] == "Failed" and nfs["reason"] == "UnsupportedByProcessNode"
    assert "nfs volumes are not supported" in nfs["message"]
    for name in ("noentry", "nobinary"):
        status = wait_pod_phase(kube_cluster, ns, name)["status"]
        assert status["phase"] == "Failed"
        terminated = status["containerStatuses"][0]["state"]["terminated"]
        assert terminated["reason"] == "StartError" and terminated["exitCode"] == 128
    noentry = kube_cluster.read_container_log(ns, "noentry", "c")
    assert "has no command" in noentry and "python:3.11" in noentry
    assert "/no/such/bin" in kube_cluster.read_container_log(ns, "nobinary", "c")
