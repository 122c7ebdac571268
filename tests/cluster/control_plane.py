"""Starting and stopping the test control plane: etcd, kube-apiserver, kube-controller-manager
and the process node, on loopback ports, in one temporary folder.

Owns the components' command lines, their readiness checks, their log files and their
teardown. It knows nothing of pytest: :mod:`tests.cluster.fixture` turns it into fixtures.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import process_node
from tests.cluster.pki import ClusterPki, make_cluster_pki

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_LOG_TAIL_LINES = 25


class ControlPlaneError(Exception):
    """The control plane could not be found, started or used; the message says why."""


def find_bin_dir() -> Path:
    """The folder of a complete build: ``KATIB_CLUSTER_BIN``, else the build cache.

    Raises:
        ControlPlaneError: no complete build; the message says how to make one.
    """
    override = os.environ.get("KATIB_CLUSTER_BIN")
    if override:
        folder = Path(override)
        missing = [b for b in BINARIES if not (folder / b).is_file()]
        if missing:
            raise ControlPlaneError(f"KATIB_CLUSTER_BIN={folder} lacks {', '.join(missing)}")
        return folder
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["build.sh --print failed"]
        reason = lines[-1].removeprefix("build.sh: ")
        raise ControlPlaneError(
            f"the test control plane is not built: {reason}; build it with "
            f"`bash .ci/cluster.sh` (about 20 minutes cold)"
        )
    return Path(result.stdout.strip())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM it when the test
    # process dies, so a killed pytest leaves no apiserver behind. Only a prepared C call here.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


@dataclass
class Component:
    """One running process of the control plane and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def failure(self, what: str) -> ControlPlaneError:
        code = self.process.poll()
        state = f"exited with {code}" if code is not None else "is running"
        return ControlPlaneError(
            f"{what}: {self.name} {state}; log {self.log}, last lines:\n{_tail(self.log)}"
        )


@dataclass
class ControlPlane:
    """A running test control plane. Start it with :func:`start_control_plane`.

    Attributes:
        bin_dir: the folder of the built binaries.
        workdir: the temporary folder holding certificates, etcd data, logs and the node's root.
        server: the apiserver's URL (``https://127.0.0.1:<port>``).
        kubeconfig: an admin kubeconfig (client certificate in ``system:masters``).
        node_root: the process node's folder (pod volumes and container logs).
        node_name: the Node that runs every pod.
    """

    bin_dir: Path
    workdir: Path
    pki: ClusterPki
    server: str
    api_port: int
    kubeconfig: Path
    node_root: Path
    node_name: str = process_node.NODE_NAME
    components: list[Component] = field(default_factory=list)

    @property
    def log_files(self) -> dict[str, Path]:
        return {c.name: c.log for c in self.components}

    @property
    def ca_file(self) -> Path:
        return self.pki.ca.cert

    def describe(self) -> str:
        """One line per component: its state and log file (printed when something fails)."""
        lines = [f"control plane at {self.server}, kubeconfig {self.kubeconfig}"]
        for c in self.components:
            state = "running" if c.alive() else f"exited {c.process.returncode}"
            lines.append(f"  {c.name} ({state}): {c.log}")
        return "\n".join(lines)

    def check_alive(self) -> None:
        """Raise if a component has died since start-up."""
        for c in self.components:
            if not c.alive():
                raise c.failure("the control plane lost a component")

    # -- HTTP to the apiserver as admin ---------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(self.pki.admin.cert), str(self.pki.admin.key))
        return context

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """One admin request; returns the status code and the decoded JSON (or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def service_account_token(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> str:
        """A token for a ServiceAccount, from the TokenRequest API."""
        status, body = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if status != 201:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} failed: {status} {body}")
        return str(body["status"]["token"])

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, path: Path | None = None, expiration_seconds: int = 3600
    ) -> Path:
        """Write a kubeconfig that acts as the ServiceAccount ``namespace/name``.

        The token comes from the TokenRequest API, so the ServiceAccount must exist; what it may
        do is decided by RBAC, exactly as for a pod running under it.
        """
        token = self.service_account_token(namespace, name, expiration_seconds=expiration_seconds)
        path = path or self.workdir / "kubeconfigs" / f"sa-{namespace}-{name}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        user = {"token": token}
        _write_kubeconfig(path, self.server, self.pki.ca.cert, f"{namespace}:{name}", user)
        return path

    def kubectl(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl (as admin unless ``kubeconfig`` says otherwise)."""
        command = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            *args,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def read_container_log(
        self, namespace: str, pod: str, container: str, *, previous: bool = False
    ) -> str:
        """A container's output as the process node wrote it (the apiserver serves no logs)."""
        return process_node.read_container_log(
            self.node_root, namespace, pod, container, previous=previous
        )

    def stop(self) -> None:
        """Stop the node first (it kills its pods), then the controllers, apiserver, etcd."""
        for component in reversed(self.components):
            component.stop()


def _write_kubeconfig(path: Path, server: str, ca: Path, user: str, auth: dict[str, str]) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "katib-test",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "katib-test", "context": {"cluster": "katib-test", "user": user}}],
        "current-context": "katib-test",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _cert_kubeconfig(path: Path, server: str, pki: ClusterPki, user: str, cert: Any) -> Path:
    _write_kubeconfig(
        path,
        server,
        pki.ca.cert,
        user,
        {"client-certificate": str(cert.cert), "client-key": str(cert.key)},
    )
    return path


def _wait(what: str, check: Callable[[], bool], component: Component, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not component.alive():
            raise component.failure(f"waiting for {what}")
        try:
            if check():
                return
        except (OSError, ssl.SSLError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise component.failure(f"{what} did not happen within {timeout:g}s")


def _spawn(name: str, argv: list[str], logs: Path, **kwargs: Any) -> Component:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl call, see _die_with_parent
            **kwargs,
        )
    return Component(name, process, log)


def start_control_plane(
    bin_dir: Path, *, workdir: Path | None = None, timeout: float = 60.0
) -> ControlPlane:
    """Start etcd, kube-apiserver, kube-controller-manager and the process node.

    Every component listens on 127.0.0.1 only, on ports free at start. Returns once the
    apiserver is ready, the controllers have made the ``default`` ServiceAccount and the
    node is Ready.

    Raises:
        ControlPlaneError: a component exited or did not become ready; the message names its
            log file and shows its last lines. Components already started are stopped.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="katib-cluster-"))
    certs, logs, data = workdir / "pki", workdir / "logs", workdir / "etcd"
    for folder in (certs, logs):
        folder.mkdir(parents=True, exist_ok=True)
    certs.chmod(0o700)
    pki = make_cluster_pki(certs)
    api_port = free_port()
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        bin_dir=bin_dir,
        workdir=workdir,
        pki=pki,
        server=server,
        api_port=api_port,
        kubeconfig=_cert_kubeconfig(workdir / "admin.kubeconfig", server, pki, "admin", pki.admin),
        node_root=workdir / "node",
    )
    try:
        _start_all(plane, logs, data, timeout)
    except BaseException:
        plane.stop()
        raise
    return plane


def _start_all(plane: ControlPlane, logs: Path, data: Path, timeout: float) -> None:
    bin_dir, pki = plane.bin_dir, plane.pki
    etcd_port, etcd_peer = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    etcd = _spawn(
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--name=katib-test",
            f"--data-dir={data}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=katib-test=http://127.0.0.1:{etcd_peer}",
            # Test data need not survive a power cut; skipping fsync makes writes fast.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ],
        logs,
    )
    plane.components.append(etcd)

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")

    _wait("etcd /health", etcd_healthy, etcd, timeout)

    apiserver = _spawn(
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={plane.api_port}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No kube-proxy or real network: the `kubernetes` Service needs no endpoints.
            "--endpoint-reconciler-type=none",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            f"--cert-dir={plane.workdir / 'pki'}",
        ],
        logs,
    )
    plane.components.append(apiserver)

    def apiserver_ready() -> bool:
        status, _ = plane.request("GET", "/readyz", timeout=2)
        return status == 200

    _wait("kube-apiserver /readyz", apiserver_ready, apiserver, timeout)

    cm_kubeconfig = _cert_kubeconfig(
        plane.workdir / "controller-manager.kubeconfig",
        plane.server,
        pki,
        "system:kube-controller-manager",
        pki.controller_manager,
    )
    controller_manager = _spawn(
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={cm_kubeconfig}",
            f"--authentication-kubeconfig={cm_kubeconfig}",
            f"--authorization-kubeconfig={cm_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--leader-elect=false",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--cluster-name=katib-test",
        ],
        logs,
    )
    plane.components.append(controller_manager)

    # The node needs no controller to register, so it starts while the controllers do.
    # The pods' PATH: this interpreter's folder first, so `python3` in a pod is the
    # interpreter (and virtualenv) running the tests.
    pod_path = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]
    )
    plane.node_root.mkdir(parents=True, exist_ok=True)
    node = _spawn(
        "process-node",
        [
            sys.executable,
            str(HERE / "process_node.py"),
            f"--kubeconfig={plane.kubeconfig}",
            f"--root={plane.node_root}",
            f"--name={plane.node_name}",
            f"--api-port={plane.api_port}",
            f"--path={pod_path}",
            f"--parent-pid={os.getpid()}",
        ],
        logs,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    plane.components.append(node)

    def default_service_account() -> bool:
        status, _ = plane.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200

    _wait(
        "the default ServiceAccount (serviceaccount controller)",
        default_service_account,
        controller_manager,
        timeout,
    )

    def node_ready() -> bool:
        status, body = plane.request("GET", f"/api/v1/nodes/{plane.node_name}")
        if status != 200:
            return False
        conditions = (body.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    _wait("the process node to be Ready", node_ready, node, timeout)


def remove_workdir(plane: ControlPlane) -> None:
    """Delete the control plane's temporary folder (after :meth:`ControlPlane.stop`)."""
    shutil.rmtree(plane.workdir, ignore_errors=True)
