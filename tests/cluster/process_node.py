"""The process node: TEST INFRASTRUCTURE that stands in for a kubelet on the test control plane.

These machines have no container runtime, so no real kubelet can run pods. This module
registers one Node with the real kube-apiserver and runs each pod bound to it as local
processes, writing honest pod status through the status subresource, so that the real Job
controller, garbage collector and everything else in kube-controller-manager do the rest.
It is never shipped and never used outside the tests.

What it does, as a kubelet would:

- registers a Ready Node (capacity cpu/memory/pods) and renews its Lease in
  ``kube-node-lease`` so the node-lifecycle controller keeps it Ready;
- binds pending pods that name no node (it is the only node, so it is also the scheduler: no
  kube-scheduler runs; resources, affinity and taints are not considered);
- list-then-watch over pods, with resourceVersion, relisting on 410 Gone
  (:class:`PodWatcher`);
- runs init containers in order, then the containers in parallel, each as a process in its
  own process group: command + args with Kubernetes' ``$(VAR)`` expansion; env with
  ``valueFrom`` (fieldRef, resourceFieldRef, secretKeyRef, configMapKeyRef) and ``envFrom``;
  ``workingDir``; ``restartPolicy`` Never/OnFailure/Always; native sidecars (init containers
  with ``restartPolicy: Always``); pod ``activeDeadlineSeconds``;
- volumes as folders under ``<root>/pods/<uid>/volumes/``: emptyDir, configMap, secret,
  downwardAPI, projected (including a real bound service-account token from the TokenRequest
  API), hostPath (the host path itself) and persistentVolumeClaim (one folder per claim under
  ``<root>/claims/``, shared by the pods that use it);
- kills processes on pod deletion (SIGTERM to the process group, SIGKILL after the grace
  period), writes a terminal phase, then deletes the pod object, as kubelets since 1.27 do;
- writes each container's output (stdout and stderr interleaved, as ``kubectl logs`` shows
  them) to ``<root>/logs/<namespace>/<pod>/<container>.log`` (the previous run of a restarted
  container to ``<container>.previous.log``); :func:`read_container_log` reads them. The
  apiserver's ``pods/log`` endpoint proxies to a kubelet, so it does not work here.

Processes cannot have their own mount namespace, so a container's ``volumeMounts`` are made
visible by **rewriting paths**: wherever a mountPath appears as a path in the command, args,
env values or workingDir (``/katib/mnist.log``, ``--log=/katib/x``), it is replaced by the
volume's host folder. Code that builds paths at run time can use the env vars
``PROCESS_NODE_MOUNTS`` (JSON: mountPath → host folder) and ``PROCESS_NODE_POD_DIR``.
Images are ignored: a container without ``command`` cannot start (reason ``StartError``).
All pods share the host network; ``status.podIP`` is 127.0.0.1.

Run as a script (the ``kube_cluster`` fixture starts it as a subprocess)::

    python process_node.py --kubeconfig admin.kubeconfig --root DIR --api-port 6443
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("process_node")

NODE_NAME = "katib-process-node"
POD_IP = "127.0.0.1"
KUBELET_VERSION = "v1.37.2-process-node"
_PROJECTED_TOKEN_FILE_MODE = 0o644

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Pure helpers: variable expansion, path rewriting, quantities, logs (unit-tested directly)
# --------------------------------------------------------------------------------------------


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion, as in ``third_party/forked/golang/expansion``.

    ``$(NAME)`` becomes the value of NAME when NAME is defined, and stays as written when it
    is not; ``$$`` is an escaped ``$`` (so ``$$(NAME)`` gives ``$(NAME)``).
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    # An unclosed reference is kept as a literal "$(" and scanning goes on.
                    out.append("$(")
                    i += 2
                    continue
                name = text[i + 2 : end]
                out.append(mapping[name] if name in mapping else f"$({name})")
                i = end + 1
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def rewrite_paths(text: str, mounts: Mapping[str, str]) -> str:
    """Replace every mountPath that appears as a path in ``text`` by its host folder.

    A mountPath matches where it begins a path (start of text or after a character that cannot
    be part of a path, such as space, ``=``, ``:`` or a quote) and ends at ``/`` or the end of
    the path. The longest mountPath wins, so nested mounts resolve to the inner volume.
    """
    targets = sorted((m.rstrip("/") for m in mounts if m.rstrip("/")), key=len, reverse=True)
    if not targets:
        return text
    by_path = {m.rstrip("/"): host for m, host in mounts.items()}
    pattern = re.compile(
        r"(?<![\w.\-/~])(" + "|".join(re.escape(t) for t in targets) + r")(?=/|$|[^\w.\-])"
    )
    return pattern.sub(lambda m: by_path[m.group(1)], text)


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1.0,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def parse_quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity (``500m``, ``2Gi``, ``1e3``) as a number."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a resource quantity: {text!r}")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def container_log_path(root: Path, namespace: str, pod: str, container: str) -> Path:
    """Where the node writes a container's current output."""
    return Path(root) / "logs" / namespace / pod / f"{container}.log"


def read_container_log(
    root: Path, namespace: str, pod: str, container: str, *, previous: bool = False
) -> str:
    """A container's output (stdout and stderr interleaved), as ``kubectl logs`` would show it.

    Args:
        root: the node's folder (``kube_cluster.node_root``).
        namespace: the pod's namespace.
        pod: the pod's name.
        container: the container's name.
        previous: the run before the last restart, as ``kubectl logs --previous``.

    Raises:
        FileNotFoundError: the container never started on this node.
    """
    path = container_log_path(root, namespace, pod, container)
    if previous:
        path = path.with_name(f"{container}.previous.log")
    return path.read_text(errors="replace")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --------------------------------------------------------------------------------------------
# The API: a thin, dict-based layer over the official client
# --------------------------------------------------------------------------------------------


class Gone(Exception):
    """The resourceVersion a watch asked for is too old (HTTP 410): list again."""


class NotFound(Exception):
    """The object does not exist (HTTP 404)."""


class KubeApi:
    """The few calls the node makes, on plain dicts (``_preload_content=False``).

    Plain dicts keep the node independent of the client's generated models, which changed
    shape across client releases, and keep every field of a pod, known to the client or not.
    """

    def __init__(self, kubeconfig: Path) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 64
        self._client_mod = client
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        from kubernetes.client.exceptions import ApiException

        try:
            response = method(*args, _preload_content=False, **kwargs)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(f"{e.status} {e.reason}") from e
            if e.status == 410:
                raise Gone(f"{e.status} {e.reason}") from e
            raise
        data = response.data
        return json.loads(data) if data else {}

    # Pods
    def list_pods(self) -> tuple[list[Obj], str]:
        body = self._call(self.core.list_pod_for_all_namespaces, _request_timeout=60)
        return body.get("items", []), body["metadata"]["resourceVersion"]

    def watch_pods(self, resource_version: str, timeout_seconds: int = 240) -> Iterator[Obj]:
        from kubernetes.client.exceptions import ApiException

        try:
            response: Any = self.core.list_pod_for_all_namespaces(
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_seconds,
                _preload_content=False,
                _request_timeout=(10, timeout_seconds + 30),
            )
        except ApiException as e:
            if e.status == 410:
                raise Gone(str(e.reason)) from e
            raise
        try:
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            response.release_conn()

    def bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        self._call(self.core.create_namespaced_pod_binding, name, namespace, body)

    def patch_pod_status(self, namespace: str, name: str, status: Obj) -> None:
        self._call(
            self.core.patch_namespaced_pod_status,
            name,
            namespace,
            {"status": status},
            _content_type="application/strategic-merge-patch+json",
        )

    def delete_pod_now(self, namespace: str, name: str, uid: str) -> None:
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}}
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(self.core.delete_namespaced_pod, name, namespace, body=body)
        except NotFound:
            pass
        except ApiException as e:
            if e.status != 409:  # 409: the uid precondition failed, the pod is already gone
                raise

    def get_config_map(self, namespace: str, name: str) -> Obj:
        return self._call(self.core.read_namespaced_config_map, name, namespace)

    def get_secret(self, namespace: str, name: str) -> Obj:
        return self._call(self.core.read_namespaced_secret, name, namespace)

    def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audience: str | None,
        expiration_seconds: int,
        pod: tuple[str, str],
    ) -> str:
        spec: Obj = {
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod[0], "uid": pod[1]},
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        result = self._call(
            self.core.create_namespaced_service_account_token, service_account, namespace, body
        )
        return str(result["status"]["token"])

    # The node and its lease
    def ensure_node(self, node: Obj) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(self.core.create_node, node)
        except ApiException as e:
            if e.status != 409:
                raise

    def patch_node_status(self, name: str, status: Obj) -> None:
        self._call(
            self.core.patch_node_status,
            name,
            {"status": status},
            _content_type="application/strategic-merge-patch+json",
        )

    def renew_lease(self, name: str, duration_seconds: int) -> None:
        namespace = "kube-node-lease"
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": _now_micro(),
        }
        try:
            self._call(
                self.coordination.patch_namespaced_lease,
                name,
                namespace,
                {"spec": spec},
                _content_type="application/merge-patch+json",
            )
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            }
            self._call(self.coordination.create_namespaced_lease, namespace, body)


# --------------------------------------------------------------------------------------------
# List-then-watch with relist on 410 Gone
# --------------------------------------------------------------------------------------------


class PodWatcher:
    """List pods, then watch from the list's resourceVersion; list again on 410 Gone.

    ``on_sync`` gets the full list after every (re)list, ``on_event`` each ADDED, MODIFIED or
    DELETED event. A watch that ends normally (server timeout) resumes from the last
    resourceVersion seen, bookmarks included; one that fails otherwise is retried after a
    short pause from the same resourceVersion.
    """

    def __init__(
        self,
        list_pods: Callable[[], tuple[list[Obj], str]],
        watch_pods: Callable[[str], Iterable[Obj]],
        on_sync: Callable[[list[Obj]], None],
        on_event: Callable[[str, Obj], None],
        *,
        retry_delay: float = 1.0,
    ) -> None:
        self._list = list_pods
        self._watch = watch_pods
        self._on_sync = on_sync
        self._on_event = on_event
        self._retry_delay = retry_delay
        self.resource_version: str | None = None
        self.relists = 0

    def relist(self) -> None:
        items, self.resource_version = self._list()
        self.relists += 1
        self._on_sync(items)

    def watch_once(self) -> None:
        """One watch request from the current resourceVersion, listing first if there is none.

        Raises:
            Gone: the resourceVersion expired; the caller lists again.
        """
        if self.resource_version is None:
            self.relist()
        assert self.resource_version is not None
        for event in self._watch(self.resource_version):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise Gone(obj.get("message", "resourceVersion too old"))
                raise RuntimeError(f"watch error {code}: {obj.get('message')}")
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = rv
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self._on_event(kind, obj)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.watch_once()
            except Gone:
                log.info(
                    "watch: resourceVersion %s expired (410); listing again", self.resource_version
                )
                self.resource_version = None
            except Exception as e:  # noqa: BLE001 - the node keeps going, as a kubelet would
                if stop.is_set():
                    return
                log.warning("watch failed (%s); retrying", e)
                stop.wait(self._retry_delay)


# --------------------------------------------------------------------------------------------
# One pod's life on the node
# --------------------------------------------------------------------------------------------


class PodStartError(Exception):
    """A pod's volumes or a container's configuration cannot be made (yet)."""


class UnsupportedByNode(PodStartError):
    """The pod asks for something the process node cannot do; waiting will not help."""


@dataclass
class _Container:
    """One container's process and the status the node reports for it."""

    spec: Obj
    init: bool
    sidecar: bool = False
    process: subprocess.Popen[bytes] | None = None
    ever_started: bool = False
    restart_count: int = 0
    state: Obj = field(default_factory=dict)
    last_terminated: Obj | None = None
    last_state: Obj = field(default_factory=dict)
    next_start: float = 0.0
    backoff: float = 0.0
    done: bool = False  # terminated and will not run again

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _exit_code(returncode: int) -> int:
    # A container killed by a signal reports 128 + signal number, as container runtimes do.
    return 128 - returncode if returncode < 0 else returncode


class PodWorker(threading.Thread):
    """Runs one pod's containers as processes and reports its status until it ends.

    One thread per pod. The node calls :meth:`request_stop` when the pod is deleted; the
    worker then kills its processes, writes a terminal phase and deletes the pod object.
    """

    def __init__(self, node: ProcessNode, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.node = node
        self.pod = pod
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.spec: Obj = pod["spec"]
        self.restart_policy: str = self.spec.get("restartPolicy", "Always")
        self.pod_dir = node.root / "pods" / self.uid
        self.log_dir = node.root / "logs" / self.namespace / self.pod_name
        self._stop_requested = threading.Event()
        self._grace: float = float(self.spec.get("terminationGracePeriodSeconds", 30))
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._conditions: dict[str, Obj] = {}
        self.start_time = _now()
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        self.volumes_ready = False
        self.initialized = False
        self.mounts: dict[str, dict[str, str]] = {}  # container → mountPath → host folder
        self.volumes: dict[str, Path] = {}
        init_specs = self.spec.get("initContainers") or []
        # Native sidecars are init containers with restartPolicy Always: started in order,
        # not waited for, restarted when they exit, stopped when the main containers end.
        self.init_containers = [
            _Container(c, init=True, sidecar=c.get("restartPolicy") == "Always") for c in init_specs
        ]
        self.sidecars = [c for c in self.init_containers if c.sidecar]
        self.mains = [_Container(c, init=False) for c in self.spec.get("containers") or []]
        self.all_containers = [*self.init_containers, *self.mains]

    def request_stop(self, grace_seconds: float | None) -> None:
        """Stop the pod: it was deleted (grace from deletionGracePeriodSeconds) or vanished."""
        with self._lock:
            if grace_seconds is not None:
                self._grace = min(self._grace, max(0.0, float(grace_seconds)))
        self._stop_requested.set()

    @property
    def grace(self) -> float:
        with self._lock:
            return self._grace

    # -- the pod's life ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - report the failure on the pod, not a traceback
            log.exception("pod %s/%s: node error", self.namespace, self.pod_name)
            self._kill(self.all_containers, 0)
            self.phase, self.reason, self.message = "Failed", "ProcessNodeError", str(e)
            self._report()
        finally:
            if self._stop_requested.is_set():
                self._finish_deletion()
            self.node.worker_done(self)

    def _run(self) -> None:
        self._report()
        if not self._prepare_volumes():
            return
        deadline = self.spec.get("activeDeadlineSeconds")
        self._deadline = time.monotonic() + float(deadline) if deadline else None
        for container in self.init_containers:
            if container.sidecar:
                self._start_or_fail(container)
                self._report()
            elif not self._run_init(container):
                return
        self.initialized = True
        for container in self.mains:
            self._start_or_fail(container)
        self.phase = "Running"
        self._report()
        self._supervise()

    def _prepare_volumes(self) -> bool:
        reported = False
        while True:
            try:
                self.volumes = self.node.volumes.prepare(self)
                self.mounts = {
                    c.name: self.node.volumes.mounts_for(self, c.spec) for c in self.all_containers
                }
                self.volumes_ready = True
                return True
            except UnsupportedByNode as e:
                self.phase, self.reason, self.message = "Failed", "UnsupportedByProcessNode", str(e)
                self._report()
                return False
            except PodStartError as e:
                # A kubelet keeps the pod in ContainerCreating until its volumes can be made.
                if not reported:
                    reported = True
                    for c in self.all_containers:
                        c.state = {"waiting": {"reason": "ContainerCreating", "message": str(e)}}
                    self._report()
                if self._stop_requested.wait(1.0):
                    return False

    def _run_init(self, container: _Container) -> bool:
        """Run one init container to success, restarting it unless restartPolicy is Never."""
        while True:
            if self._start_or_fail(container):
                self._report()
                while container.running:
                    if self._stop_requested.wait(0.1) or self._deadline_passed():
                        return False
                    if self._restart_sidecars():
                        self._report()
                code = self._reap(container)
            else:
                code = container.state["terminated"]["exitCode"]
            if code == 0:
                container.done = True
                self._report()
                return True
            if self.restart_policy == "Never":
                container.done = True
                self._kill(self.sidecars, self.grace)
                self.phase = "Failed"
                self._report()
                return False
            self._schedule_restart(container, code)
            self._report()
            if self._stop_requested.wait(max(0.0, container.next_start - time.monotonic())):
                return False

    def _supervise(self) -> None:
        while not self._stop_requested.is_set():
            if self._deadline_passed():
                return
            changed = self._restart_sidecars()
            for c in self.mains:
                if c.done or c.running:
                    continue
                changed = True
                if c.process is not None:
                    code = self._reap(c)
                    if self._should_restart(code):
                        self._schedule_restart(c, code)
                    else:
                        c.done = True
                elif time.monotonic() >= c.next_start:
                    self._start_or_fail(c)
            if all(c.done for c in self.mains):
                # Sidecars end with the pod; their exit does not decide its phase.
                self._kill(self.sidecars, self.grace)
                failed = any(c.state["terminated"]["exitCode"] != 0 for c in self.mains)
                self.phase = "Failed" if failed else "Succeeded"
                self._report()
                return
            if changed:
                self._report()
            self._stop_requested.wait(0.1)

    def _should_restart(self, code: int) -> bool:
        return self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)

    def _schedule_restart(self, c: _Container, code: int) -> None:
        """Back off before a restart, doubling the delay each time as a kubelet does."""
        base, cap = self.node.restart_backoff
        c.backoff = base if c.backoff == 0 else min(cap, c.backoff * 2)
        c.next_start = time.monotonic() + c.backoff
        c.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {c.backoff:g}s restarting container {c.name} "
                f"(exit code {code})",
            }
        }

    def _restart_sidecars(self) -> bool:
        changed = False
        for c in self.sidecars:
            if c.done or c.running:
                continue
            if c.process is not None:
                code = self._reap(c)
                self._schedule_restart(c, code)
                changed = True
            elif c.ever_started and time.monotonic() >= c.next_start:
                self._start_or_fail(c)
                changed = True
        return changed

    def _deadline_passed(self) -> bool:
        if self._deadline is None or time.monotonic() < self._deadline:
            return False
        self._kill(self.all_containers, self.grace)
        self.phase, self.reason = "Failed", "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self._report()
        return True

    # -- processes -----------------------------------------------------------------------------

    def _start_or_fail(self, c: _Container) -> bool:
        """Start a container's process; on failure record a StartError termination (128).

        For a main container that may not restart, a failed start is final (``done``).
        """
        started_at = _now()
        if c.ever_started:
            c.restart_count += 1
            if c.last_terminated:
                c.last_state = {"terminated": c.last_terminated}
        c.ever_started = True
        log_path = self.log_dir / f"{c.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if c.restart_count and log_path.exists():
            log_path.replace(log_path.with_name(f"{c.name}.previous.log"))
        argv: list[str] = []
        with open(log_path, "ab") as out:
            try:
                argv, env, cwd = self.node.commands.resolve(
                    self, c.spec, self.mounts.get(c.name, {})
                )
                c.process = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except (PodStartError, OSError) as e:
                message = str(e)
                if isinstance(e, OSError) and argv:
                    message = f"cannot start {argv[0]!r}: {e.strerror or e}"
                out.write(f"process node: {message}\n".encode())
                c.process = None
                c.state = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": message,
                        "startedAt": started_at,
                        "finishedAt": started_at,
                    }
                }
                c.last_terminated = c.state["terminated"]
                if c.init or not self._should_restart(128):
                    c.done = not c.init
                else:
                    self._schedule_restart(c, 128)
                return False
        c.state = {"running": {"startedAt": started_at}}
        log.info(
            "pod %s/%s: %s started (pid %d)", self.namespace, self.pod_name, c.name, c.process.pid
        )
        return True

    def _reap(self, c: _Container) -> int:
        assert c.process is not None
        code = _exit_code(c.process.wait())
        started = (c.state.get("running") or {}).get("startedAt", _now())
        c.state = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": _now(),
                "containerID": f"process://{c.process.pid}",
            }
        }
        c.last_terminated = c.state["terminated"]
        c.process = None
        return code

    def _kill(self, containers: list[_Container], grace: float) -> None:
        """SIGTERM each running container's process group, SIGKILL after ``grace`` seconds."""
        running = [c for c in containers if c.running]
        for c in running:
            assert c.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.process.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while any(c.running for c in running) and time.monotonic() < end:
            time.sleep(0.05)
        for c in containers:
            if c.process is not None:
                # The group too: children left behind by a container die with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.process.pid, signal.SIGKILL)
                self._reap(c)
            c.done = True

    def kill_all(self, grace: float) -> None:
        """Kill every process of the pod (the node is shutting down)."""
        self._kill(self.all_containers, grace)

    def _finish_deletion(self) -> None:
        """The pod was deleted: stop everything, write a terminal phase, remove the object."""
        self._kill(self.all_containers, self.grace)
        if self.phase not in ("Succeeded", "Failed"):
            codes = [(c.state.get("terminated") or {}).get("exitCode") for c in self.mains]
            self.phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"
            self._report()
        self.node.delete_pod_object(self.namespace, self.pod_name, self.uid)

    # -- status --------------------------------------------------------------------------------

    def _container_status(self, c: _Container) -> Obj:
        state = c.state
        if not state:
            initializing = not c.init and not self.initialized and self.init_containers
            state = {
                "waiting": {"reason": "PodInitializing" if initializing else "ContainerCreating"}
            }
        running = "running" in state
        status: Obj = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": f"process-node://{c.spec.get('image', '')}",
            "ready": running,
            "started": running,
            "restartCount": c.restart_count,
            "state": state,
            "lastState": c.last_state,
        }
        if running and c.process is not None:
            status["containerID"] = f"process://{c.process.pid}"
        elif "terminated" in state and state["terminated"].get("containerID"):
            status["containerID"] = state["terminated"]["containerID"]
        return status

    def _condition(self, kind: str, ok: bool, reason: str | None, now: str) -> Obj:
        # lastTransitionTime changes only when a condition's status does.
        status = "True" if ok else "False"
        previous = self._conditions.get(kind)
        changed_at = (
            previous["lastTransitionTime"] if previous and previous["status"] == status else now
        )
        cond: Obj = {"type": kind, "status": status, "lastTransitionTime": changed_at}
        if reason and not ok:
            cond["reason"] = reason
        self._conditions[kind] = cond
        return cond

    def _report(self) -> None:
        """Write the pod's whole status (strategic merge: conditions merge by type)."""
        terminal = self.phase in ("Succeeded", "Failed")
        ready = bool(self.mains) and all(c.running for c in self.mains) and not terminal
        not_ready = "PodCompleted" if terminal else "ContainersNotReady"
        now = _now()
        conditions = [
            self._condition("PodReadyToStartContainers", self.volumes_ready, None, now),
            self._condition(
                "Initialized",
                self.initialized or (terminal and not self.init_containers),
                "ContainersNotInitialized",
                now,
            ),
            self._condition("ContainersReady", ready, not_ready, now),
            self._condition("Ready", ready, not_ready, now),
            self._condition("PodScheduled", True, None, now),
        ]
        status: Obj = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self.start_time,
            "containerStatuses": [self._container_status(c) for c in self.mains],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [
                self._container_status(c) for c in self.init_containers
            ]
        if self.reason:
            status["reason"] = self.reason
        if self.message:
            status["message"] = self.message
        try:
            self.node.api.patch_pod_status(self.namespace, self.pod_name, status)
        except NotFound:
            self._stop_requested.set()
        except Exception as e:  # noqa: BLE001 - the next report carries the whole status again
            log.warning("pod %s/%s: status update failed: %s", self.namespace, self.pod_name, e)


# --------------------------------------------------------------------------------------------
# Volumes and commands
# --------------------------------------------------------------------------------------------


def _field_value(pod: Obj, path: str) -> str:
    meta = pod["metadata"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = (meta.get(path.split(".")[1]) or {}).items()
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName") or NODE_NAME,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path not in simple:
        raise PodStartError(f"unsupported fieldRef.fieldPath {path!r}")
    return str(simple[path] or "")


def _resource_value(pod: Obj, container: Obj | None, ref: Obj, node_allocatable: Obj) -> str:
    resource = ref["resource"]
    kind, _, name = resource.partition(".")
    if container is None:
        wanted = ref.get("containerName")
        container = next((c for c in pod["spec"]["containers"] if c["name"] == wanted), None)
        if container is None:
            raise PodStartError(f"resourceFieldRef names no container {wanted!r}")
    value = (container.get("resources") or {}).get(kind, {}).get(name)
    if value is None:
        value = node_allocatable.get(name, "0")
    divisor = parse_quantity(ref.get("divisor") or "1")
    amount = math.ceil(parse_quantity(value) / divisor)
    # As the kubelet does: a CPU value rounds up to at least 1 unit of the divisor.
    return str(max(1, amount) if name == "cpu" else amount)


class Volumes:
    """Makes a pod's volumes as folders and maps its containers' mountPaths onto them."""

    def __init__(self, node: ProcessNode) -> None:
        self.node = node

    def prepare(self, worker: PodWorker) -> dict[str, Path]:
        result: dict[str, Path] = {}
        for volume in worker.spec.get("volumes") or []:
            name = volume["name"]
            folder = worker.pod_dir / "volumes" / name
            if "emptyDir" in volume:
                folder.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in volume:
                folder = Path(volume["hostPath"]["path"])
                if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                    folder.mkdir(parents=True, exist_ok=True)
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                folder = self.node.root / "claims" / worker.namespace / claim
                folder.mkdir(parents=True, exist_ok=True)
            elif "configMap" in volume or "secret" in volume or "downwardAPI" in volume:
                self._write_files(folder, self._source_files(worker, volume))
            elif "projected" in volume:
                files: dict[str, bytes] = {}
                for source in volume["projected"].get("sources") or []:
                    files.update(self._source_files(worker, source))
                self._write_files(folder, files)
            else:
                kinds = sorted(k for k in volume if k != "name")
                raise UnsupportedByNode(
                    f"volume {name!r}: {', '.join(kinds)} volumes are not supported by the "
                    "process node"
                )
            result[name] = folder
        return result

    def _source_files(self, worker: PodWorker, source: Obj) -> dict[str, bytes]:
        namespace = worker.namespace
        if "configMap" in source or "secret" in source:
            is_secret = "secret" in source
            ref = source["secret"] if is_secret else source["configMap"]
            name = ref.get("secretName") if is_secret else ref.get("name")
            name = name or ref.get("name")
            try:
                obj = (
                    self.node.api.get_secret(namespace, name)
                    if is_secret
                    else self.node.api.get_config_map(namespace, name)
                )
            except NotFound:
                if ref.get("optional"):
                    return {}
                kind = "secret" if is_secret else "configmap"
                raise PodStartError(f'{kind} "{name}" not found') from None
            data: dict[str, bytes] = {}
            if is_secret:
                for k, v in (obj.get("data") or {}).items():
                    data[k] = base64.b64decode(v)
            else:
                for k, v in (obj.get("data") or {}).items():
                    data[k] = v.encode()
                for k, v in (obj.get("binaryData") or {}).items():
                    data[k] = base64.b64decode(v)
            items = ref.get("items")
            if items:
                missing = [i["key"] for i in items if i["key"] not in data]
                if missing and not ref.get("optional"):
                    raise PodStartError(f"{name}: keys not found: {', '.join(missing)}")
                return {i["path"]: data[i["key"]] for i in items if i["key"] in data}
            return data
        if "downwardAPI" in source:
            files = {}
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" in item:
                    value = _field_value(worker.pod, item["fieldRef"]["fieldPath"])
                else:
                    value = _resource_value(
                        worker.pod, None, item["resourceFieldRef"], self.node.allocatable
                    )
                files[item["path"]] = value.encode()
            return files
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            token = self.node.api.request_token(
                namespace,
                worker.spec.get("serviceAccountName") or "default",
                audience=sat.get("audience"),
                expiration_seconds=int(sat.get("expirationSeconds", 3600)),
                pod=(worker.pod_name, worker.uid),
            )
            return {sat["path"]: token.encode()}
        if "clusterTrustBundle" in source or "podCertificate" in source:
            return {}
        raise PodStartError(f"unsupported projected volume source: {sorted(source)}")

    @staticmethod
    def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for relative, content in files.items():
            path = folder / relative
            if ".." in Path(relative).parts or Path(relative).is_absolute():
                raise PodStartError(f"volume item path {relative!r} must be relative")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(_PROJECTED_TOKEN_FILE_MODE)

    def mounts_for(self, worker: PodWorker, container: Obj) -> dict[str, str]:
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts") or []:
            folder = worker.volumes.get(mount["name"])
            if folder is None:
                raise PodStartError(f"volumeMount {mount['name']!r} names no volume")
            sub = mount.get("subPath") or ""
            host = folder / sub if sub else folder
            if sub and not host.exists():
                host.mkdir(parents=True, exist_ok=True)
            mounts[mount["mountPath"]] = str(host)
        return mounts


class Commands:
    """Turns a container spec into argv, environment and working folder for a process."""

    def __init__(self, node: ProcessNode) -> None:
        self.node = node

    def environment(self, worker: PodWorker, container: Obj) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for ref_kind in ("configMapRef", "secretRef"):
                if ref_kind not in source:
                    continue
                ref = source[ref_kind]
                try:
                    obj = (
                        self.node.api.get_secret(worker.namespace, ref["name"])
                        if ref_kind == "secretRef"
                        else self.node.api.get_config_map(worker.namespace, ref["name"])
                    )
                except NotFound:
                    if ref.get("optional"):
                        continue
                    kind = "secret" if ref_kind == "secretRef" else "configmap"
                    raise PodStartError(f'{kind} "{ref["name"]}" not found') from None
                for k, v in (obj.get("data") or {}).items():
                    env[prefix + k] = (
                        base64.b64decode(v).decode(errors="replace")
                        if ref_kind == "secretRef"
                        else v
                    )
        service_env = self.node.service_env()
        for var in container.get("env") or []:
            name = var["name"]
            if "valueFrom" in var:
                value = self._value_from(worker, container, var["valueFrom"])
                if value is None:
                    continue
                env[name] = value
            else:
                env[name] = expand(var.get("value", ""), {**service_env, **env})
        for k, v in service_env.items():
            env.setdefault(k, v)
        return env

    def _value_from(self, worker: PodWorker, container: Obj, source: Obj) -> str | None:
        if "fieldRef" in source:
            return _field_value(worker.pod, source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            return _resource_value(
                worker.pod, container, source["resourceFieldRef"], self.node.allocatable
            )
        for ref_kind in ("secretKeyRef", "configMapKeyRef"):
            if ref_kind not in source:
                continue
            ref = source[ref_kind]
            kind = "secret" if ref_kind == "secretKeyRef" else "configmap"
            try:
                obj = (
                    self.node.api.get_secret(worker.namespace, ref["name"])
                    if kind == "secret"
                    else self.node.api.get_config_map(worker.namespace, ref["name"])
                )
            except NotFound:
                if ref.get("optional"):
                    return None
                raise PodStartError(f'{kind} "{ref["name"]}" not found') from None
            data = obj.get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PodStartError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
            value = data[ref["key"]]
            return base64.b64decode(value).decode(errors="replace") if kind == "secret" else value
        raise PodStartError(f"unsupported env valueFrom: {sorted(source)}")

    def resolve(
        self, worker: PodWorker, container: Obj, mounts: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str], str]:
        if not container.get("command"):
            raise PodStartError(
                f"container {container['name']!r} has no command; the process node ignores "
                f"images, so it cannot run the entrypoint of {container.get('image')!r}"
            )
        env = self.environment(worker, container)
        argv = [expand(a, env) for a in [*container["command"], *(container.get("args") or [])]]
        argv = [rewrite_paths(a, mounts) for a in argv]
        env = {k: rewrite_paths(v, mounts) for k, v in env.items()}
        home = worker.pod_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        process_env = {
            "PATH": self.node.path,
            "HOME": str(home),
            "HOSTNAME": worker.pod_name,
            "PROCESS_NODE_POD_DIR": str(worker.pod_dir),
            "PROCESS_NODE_MOUNTS": json.dumps(dict(mounts), sort_keys=True),
            **env,
        }
        return argv, process_env, self._working_dir(worker, container, mounts)

    @staticmethod
    def _working_dir(worker: PodWorker, container: Obj, mounts: Mapping[str, str]) -> str:
        wanted = container.get("workingDir")
        if not wanted:
            folder = worker.pod_dir / "rootfs"
        else:
            rewritten = rewrite_paths(wanted, mounts)
            if rewritten != wanted or Path(wanted).is_dir():
                folder = Path(rewritten)
            else:
                # A folder of the image that the host lacks: made inside the pod's own folder.
                folder = worker.pod_dir / "rootfs" / wanted.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder)


# --------------------------------------------------------------------------------------------
# The node
# --------------------------------------------------------------------------------------------


class ProcessNode:
    """Registers the Node, binds pending pods and runs the pods bound to it."""

    def __init__(
        self,
        api: KubeApi,
        root: Path,
        *,
        name: str = NODE_NAME,
        api_port: int = 443,
        path: str = os.defpath,
        cpu: str = "2",
        memory: str = "8Gi",
        pods: str = "110",
        restart_backoff: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.api = api
        self.root = root
        self.name = name
        self.api_port = api_port
        self.path = path
        self.allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
        self.restart_backoff = restart_backoff
        self.volumes = Volumes(self)
        self.commands = Commands(self)
        self.stop = threading.Event()
        self._workers: dict[str, PodWorker] = {}
        self._seen_uids: set[str] = set()
        self._binding: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="node-api")
        self.watcher = PodWatcher(self.api.list_pods, self.api.watch_pods, self.sync, self.handle)

    def service_env(self) -> dict[str, str]:
        port = str(self.api_port)
        return {
            "KUBERNETES_SERVICE_HOST": POD_IP,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{POD_IP}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": port,
            "KUBERNETES_PORT_443_TCP_ADDR": POD_IP,
        }

    # -- registration --------------------------------------------------------------------------

    def _node_status(self) -> Obj:
        now = _now()
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        ]
        return {
            "capacity": self.allocatable,
            "allocatable": self.allocatable,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": "process node (test infrastructure)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": self._registered_at,
                }
                for kind, status, reason in conditions
            ],
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": uuid.uuid4().hex,
                "systemUUID": str(uuid.uuid4()),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": os.uname().release,
                "osImage": "process node (test infrastructure)",
                "containerRuntimeVersion": "process://1.0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register(self) -> None:
        self._registered_at = _now()
        self.api.ensure_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.name,
                    "labels": {
                        "kubernetes.io/hostname": self.name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "katib-local/process-node": "true",
                    },
                },
            }
        )
        self.api.patch_node_status(self.name, self._node_status())
        self.api.renew_lease(self.name, 40)

    def _heartbeat(self) -> None:
        ticks = 0
        while not self.stop.wait(10):
            ticks += 1
            try:
                self.api.renew_lease(self.name, 40)
                if ticks % 3 == 0:
                    self.api.patch_node_status(self.name, self._node_status())
            except Exception as e:  # noqa: BLE001 - try again at the next beat
                log.warning("heartbeat failed: %s", e)

    # -- pods ----------------------------------------------------------------------------------

    def sync(self, pods: list[Obj]) -> None:
        """After a (re)list: act on every pod, and stop workers whose pods are gone."""
        uids = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            vanished = [w for uid, w in self._workers.items() if uid not in uids]
        for worker in vanished:
            worker.request_stop(0)
        for pod in pods:
            self.handle("ADDED", pod)

    def handle(self, kind: str, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        uid = meta["uid"]
        node_name = spec.get("nodeName")
        if kind == "DELETED":
            with self._lock:
                worker = self._workers.get(uid)
            if worker:
                worker.request_stop(0)
            return
        if not node_name:
            self._maybe_bind(pod)
            return
        if node_name != self.name:
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        deleting = meta.get("deletionTimestamp") is not None
        with self._lock:
            worker = self._workers.get(uid)
            seen = uid in self._seen_uids
            if worker is None and not seen and not deleting and phase == "Pending":
                worker = PodWorker(self, pod)
                self._workers[uid] = worker
                self._seen_uids.add(uid)
                worker.start()
                return
        if deleting:
            if worker is not None:
                worker.request_stop(meta.get("deletionGracePeriodSeconds"))
            else:
                self._pool.submit(self.delete_pod_object, meta["namespace"], meta["name"], uid)

    def _maybe_bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        if (
            meta.get("deletionTimestamp")
            or spec.get("schedulingGates")
            or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
        ):
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase != "Pending":
            return
        with self._lock:
            if meta["uid"] in self._binding:
                return
            self._binding.add(meta["uid"])
        self._pool.submit(self._bind, meta["namespace"], meta["name"], meta["uid"])

    def _bind(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.api.bind(namespace, name, uid, self.name)
            log.info("bound %s/%s to %s", namespace, name, self.name)
        except Exception as e:  # noqa: BLE001 - already bound or gone; the watch tells
            log.info("binding %s/%s failed: %s", namespace, name, e)
            with self._lock:
                self._binding.discard(uid)

    def delete_pod_object(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.api.delete_pod_now(namespace, name, uid)
        except Exception as e:  # noqa: BLE001 - the next event for the pod retries
            log.warning("deleting %s/%s failed: %s", namespace, name, e)
        shutil.rmtree(self.root / "pods" / uid, ignore_errors=True)

    def worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)

    # -- main loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.register()
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("node %s registered; root %s", self.name, self.root)
        self.watcher.run(self.stop)

    def shutdown(self) -> None:
        self.stop.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.kill_all(2)


def _watch_parent(parent_pid: int, node: ProcessNode) -> None:
    # The node must not outlive the test session that started it.
    while not node.stop.wait(1):
        if os.getppid() != parent_pid:
            log.info("parent %d is gone; stopping", parent_pid)
            node.shutdown()
            os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="the node's folder")
    parser.add_argument("--name", default=NODE_NAME)
    parser.add_argument("--api-port", type=int, required=True, help="kube-apiserver's port")
    parser.add_argument("--path", default=os.environ.get("PATH", os.defpath))
    parser.add_argument("--cpu", default=str(os.cpu_count() or 2))
    parser.add_argument("--memory", default="8Gi")
    parser.add_argument("--restart-backoff", type=float, default=1.0)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    args.root.mkdir(parents=True, exist_ok=True)
    node = ProcessNode(
        KubeApi(args.kubeconfig),
        args.root,
        name=args.name,
        api_port=args.api_port,
        path=args.path,
        cpu=args.cpu,
        memory=args.memory,
        restart_backoff=(args.restart_backoff, 30.0),
    )

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping pods and exiting", signum)
        node.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.parent_pid:
        threading.Thread(
            target=_watch_parent, args=(args.parent_pid, node), name="parent", daemon=True
        ).start()
    try:
        node.run()
    except Exception as e:  # noqa: BLE001 - a clear last line in the node's log
        log.error("process node failed: %s", e)
        node.shutdown()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
