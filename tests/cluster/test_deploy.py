"""crds/deploy/: PostgreSQL, `katib operator` and `katib server` as Deployments. No image can
be built on these machines, so they are checked, not run: kubernetes-validate --strict, and
a server-side dry run of the whole kustomization on the real apiserver."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.cluster.control_plane import ControlPlane

DEPLOY = Path(__file__).resolve().parents[2] / "crds" / "deploy"
FILES = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_deploy_manifests_pass_kubernetes_validate_strict(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in FILES]


@pytest.mark.k8s
def test_the_whole_install_passes_a_server_side_dry_run(katib_installed: ControlPlane) -> None:
    result = katib_installed.kubectl("apply", "-k", str(DEPLOY), "--dry-run=server")
    out = result.stdout
    for made in ("deployment.apps/katib-operator", "deployment.apps/katib-server",
                 "statefulset.apps/katib-postgres", "service/katib-operator"):
        assert made in out, out
