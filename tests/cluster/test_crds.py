"""The CustomResourceDefinitions in ``crds/``: valid manifests, installable with
``kubectl apply -k crds/`` on the real apiserver, and accepting Katib's published examples."""

from __future__ import annotations

import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from katib.spec import ExperimentSpec
from tests.cluster.control_plane import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "tests" / "fixtures" / "katib_examples"
CRD_FILES = sorted(p for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml")
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_manifests_pass_kubernetes_validate_strict(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, "1.37.0", strict=True)


def test_the_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load((CRDS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in CRD_FILES]


def _schema_fields(model: type[BaseModel], schema: dict[str, Any], path: str) -> list[str]:
    """Fields of ``model`` (by their YAML names) missing from the CRD's ``schema``, walking
    nested spec models wherever the CRD types them (not where it keeps unknown fields)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if schema.get("type") == "array":
        schema = schema.get("items", {})
    properties = schema.get("properties", {})
    missing = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in properties:
            missing.append(f"{path}.{key}")
            continue
        for inner in typing.get_args(field.annotation) or (field.annotation,):
            for candidate in typing.get_args(inner) or (inner,):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    missing += _schema_fields(candidate, properties[key], f"{path}.{key}")
    return missing


def test_the_experiment_crd_types_every_field_the_spec_reads() -> None:
    """A field the spec reads (Katib's, or an extension such as warmStart) and the CRD lacks
    would be pruned by the apiserver: the operator would never see it."""
    [crd] = yaml.safe_load_all((CRDS / "experiment.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert _schema_fields(ExperimentSpec, schema, "spec") == []


@pytest.fixture(scope="module")
def katib_crds(kube_cluster: ControlPlane) -> ControlPlane:
    """The CRDs applied with the built kubectl and established; namespaces ``kubeflow`` and
    ``argo`` made."""
    kube_cluster.kubectl("apply", "-k", str(CRDS))
    kube_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/experiments.kubeflow.org",
        "crd/trials.kubeflow.org",
        "crd/suggestions.kubeflow.org",
    )
    # Katib's examples live in kubeflow, except the Argo one (namespace argo).
    for namespace in ("kubeflow", "argo"):
        kube_cluster.kubectl("create", "namespace", namespace, check=False)
    return kube_cluster


@pytest.mark.k8s
def test_katibs_random_example_applies_and_kubectl_lists_it(katib_crds: ControlPlane) -> None:
    cluster = katib_crds
    cluster.kubectl("apply", "-f", str(EXAMPLES / "hp-tuning" / "random.yaml"))
    listed = cluster.kubectl("get", "experiments", "-n", "kubeflow").stdout
    header, *rows = listed.splitlines()
    assert header.split() == ["NAME", "TYPE", "STATUS", "AGE"]
    assert any(row.split()[0] == "random" for row in rows)
    # The status subresource: an operator's conditions show in the printer columns.
    status = {
        "status": {
            "conditions": [
                {
                    "type": "Created",
                    "status": "True",
                    "reason": "ExperimentCreated",
                    "message": "Experiment is created",
                    "lastUpdateTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "trials": 0,
        }
    }
    cluster.kubectl(
        "patch",
        "experiment",
        "random",
        "-n",
        "kubeflow",
        "--subresource=status",
        "--type=merge",
        "-p",
        yaml.safe_dump(status),
    )
    row = cluster.kubectl("get", "experiment", "random", "-n", "kubeflow", "--no-headers").stdout
    assert row.split()[:3] == ["random", "Created", "True"]
    stored = yaml.safe_load(
        cluster.kubectl("get", "experiment", "random", "-n", "kubeflow", "-o", "yaml").stdout
    )
    # trialSpec keeps every field of the workload (x-kubernetes-preserve-unknown-fields).
    container = stored["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == "docker.io/kubeflowkatib/mxnet-mnist:v0.15.0"
    assert stored["spec"]["parameters"][0]["feasibleSpace"] == {"min": "0.01", "max": "0.03"}
    assert stored["spec"]["objective"]["goal"] == 0.99
    cluster.kubectl("delete", "-f", str(EXAMPLES / "hp-tuning" / "random.yaml"), "--wait=false")


@pytest.mark.k8s
def test_every_published_katib_example_is_accepted_by_the_schema(
    katib_crds: ControlPlane,
) -> None:
    """Server-side dry run with strict field validation: no example is rejected or pruned."""
    started = time.monotonic()
    result = katib_crds.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        *[f"--filename={p}" for p in EXAMPLE_FILES],
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(applied) == len(EXAMPLE_FILES), result.stdout
    assert time.monotonic() - started < 120


@pytest.mark.k8s
def test_the_schema_is_typed_where_katibs_go_api_is(
    katib_crds: ControlPlane, tmp_path: Path
) -> None:
    def dry_run(change: Callable[[dict[str, Any]], None]) -> str:
        experiment = yaml.safe_load((EXAMPLES / "hp-tuning" / "random.yaml").read_text())
        change(experiment["spec"])
        path = tmp_path / "experiment.yaml"
        path.write_text(yaml.safe_dump(experiment))
        result = katib_crds.kubectl(
            "apply", "--dry-run=server", "--validate=strict", "-f", str(path), check=False
        )
        assert result.returncode != 0, result.stdout
        return result.stderr

    def wrong_values(spec: dict[str, Any]) -> None:
        spec["parallelTrialCount"] = "three"
        spec["objective"]["type"] = "maximise"

    errors = dry_run(wrong_values)
    assert "spec.parallelTrialCount: Invalid value" in errors
    assert 'spec.objective.type: Unsupported value: "maximise"' in errors
    errors = dry_run(lambda spec: spec["algorithm"].update(algorithmSetings=[]))
    assert 'unknown field "spec.algorithm.algorithmSetings"' in errors
