"""Pytest fixtures for the test control plane (a pytest plugin; see README.md).

``kube_cluster`` (session): a real etcd + kube-apiserver + kube-controller-manager and a
process node, started once per session from the binaries that ``build.sh`` made. Without
them a test is skipped with the reason, or fails when ``CI`` is 1/true/yes.
``kube_namespace`` (function): a fresh namespace, deleted after the test.
``katib_installed`` (session): ``crds/`` applied with kubectl (CRDs, RBAC, katib-system).

Register for the whole suite with ``pytest_plugins = ["tests.cluster.fixture"]`` in
``tests/conftest.py``; ``tests/cluster/conftest.py`` registers it for this folder otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.cluster.control_plane import (
    ControlPlane,
    ControlPlaneError,
    find_bin_dir,
    start_control_plane,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
KEEP = os.environ.get("KATIB_CLUSTER_KEEP", "").lower() in ("1", "true", "yes")
_running: list[ControlPlane] = []


def _wait_for_background_builds() -> None:
    """.ci/run builds the Go components in the background while the other tests run
    (``KATIB_CI_BUILDS`` names the folder of its log and exit status): wait for it here."""
    folder = os.environ.get("KATIB_CI_BUILDS")
    if not folder:
        return
    status = Path(folder) / "status"
    deadline = time.monotonic() + 3600
    while not status.exists():
        if time.monotonic() > deadline:
            pytest.fail("the background builds of .ci/run did not finish in an hour",
                        pytrace=False)
        time.sleep(2)
    if status.read_text().strip() != "0":
        log = (Path(folder) / "log").read_text(errors="replace")[-4000:]
        pytest.fail(f"the background builds of .ci/run failed:\n{log}", pytrace=False)


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A running test control plane with a process node, shared by the whole session.

    Its folder (certificates, etcd data, logs, the node's pods) is removed at the end unless a
    test failed or ``KATIB_CLUSTER_KEEP`` is 1/true/yes; then its path is printed.
    """
    _wait_for_background_builds()
    try:
        bin_dir = find_bin_dir()
    except ControlPlaneError as e:
        if IN_CI:
            pytest.fail(f"CI=true requires the test control plane: {e}", pytrace=False)
        pytest.skip(str(e))
    # Not pytest's tmp_path: pytest prunes old base folders, also other users' runs as root.
    workdir = Path(tempfile.mkdtemp(prefix="katib-cluster-"))
    started = time.monotonic()
    try:
        plane = start_control_plane(bin_dir, workdir=workdir)
    except ControlPlaneError as e:
        pytest.fail(f"the test control plane did not start: {e}", pytrace=False)
    print(f"\ntest control plane ready in {time.monotonic() - started:.1f}s: {plane.server}")
    _running.append(plane)
    failed_before = request.session.testsfailed
    try:
        yield plane
    finally:
        _running.remove(plane)
        plane.stop()
        if request.session.testsfailed > failed_before or KEEP:
            print(f"\ntest control plane folder kept: {workdir} (logs in {workdir / 'logs'})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def katib_installed(kube_cluster: ControlPlane) -> ControlPlane:
    """``kubectl apply -k crds/`` (CRDs, namespace katib-system, ServiceAccounts, RBAC), as a
    cluster admin installs katib-local; the CRDs established."""
    crds = Path(__file__).resolve().parents[2] / "crds"
    kube_cluster.kubectl("apply", "-k", str(crds))
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/experiments.kubeflow.org", "crd/trials.kubeflow.org", "crd/suggestions.kubeflow.org",
    )
    return kube_cluster


@pytest.fixture
def kube_namespace(kube_cluster: ControlPlane) -> Iterator[str]:
    """A new namespace for one test; deleted afterwards (without waiting for it to go)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    status, body = kube_cluster.request(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    if status != 201:
        pytest.fail(f"cannot create namespace {name}: {status} {body}", pytrace=False)
    yield name
    kube_cluster.request("DELETE", f"/api/v1/namespaces/{name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    """On a failed test that used the cluster, show where each component's log is."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _running and "kube_cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("test control plane", _running[-1].describe()))
