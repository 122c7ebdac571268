"""The shape of a Kubeflow Pipelines ``Run`` trial template (``pipelines.kubeflow.org``).

One rule in one place: ``katib validate`` reports these problems with their field paths, and
the KFP launcher (:class:`trial_runner.pipelines.KfpRunTemplate`) refuses the same rendered
template with the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from katib.spec._models import KFP_RUN_GROUP

__all__ = ["is_kfp_run", "kfp_run_problems"]

KFP_RUN_KIND = "Run"


def is_kfp_run(manifest: Mapping[str, Any]) -> bool:
    """Whether a trial template is a KFP run (``pipelines.kubeflow.org/*`` ``Run``)."""
    api_version = str(manifest.get("apiVersion") or "")
    return manifest.get("kind") == KFP_RUN_KIND and api_version.split("/")[0] == KFP_RUN_GROUP


def kfp_run_problems(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field path under ``trialSpec``, message) for each problem of a ``Run`` template."""
    spec = manifest.get("spec")
    if not isinstance(spec, Mapping):
        return [("spec", "a KFP Run needs a spec (with pipelinePackage or run)")]
    problems: list[tuple[str, str]] = []
    unknown = sorted(set(spec) - {"host", "namespace", "pipelinePackage", "run"})
    if unknown:
        problems.append(("spec", f"unknown field(s) {', '.join(map(str, unknown))}: a KFP Run"
                                 " takes host, namespace, pipelinePackage and run"))
    for field in ("host", "namespace"):
        if spec.get(field) is not None and not isinstance(spec.get(field), str):
            problems.append((f"spec.{field}", "must be a string"))
    run = spec.get("run", {})
    if not isinstance(run, Mapping):
        return [*problems, ("spec.run", "must be a mapping (the body of KFP's POST /runs)")]
    package = spec.get("pipelinePackage")
    if package is not None and (not isinstance(package, str) or not package):
        problems.append(("spec.pipelinePackage", "must be a file path"))
    reference = run.get("pipeline_version_reference")
    inline = run.get("pipeline_spec")
    given = [package is not None, reference is not None, inline is not None]
    if not any(given):
        problems.append(("spec", "give pipelinePackage (a compiled pipeline, uploaded once), or"
                                 " run.pipeline_version_reference {pipeline_id,"
                                 " pipeline_version_id}, or run.pipeline_spec"))
    elif sum(given) > 1:
        problems.append(("spec", "pipelinePackage, run.pipeline_version_reference and"
                                 " run.pipeline_spec exclude each other"))
    if reference is not None and not (
        isinstance(reference, Mapping) and reference.get("pipeline_id")
        and reference.get("pipeline_version_id")
    ):
        problems.append(("spec.run.pipeline_version_reference",
                         "needs pipeline_id and pipeline_version_id"))
    if inline is not None and not (isinstance(inline, Mapping) and "root" in inline):
        problems.append(("spec.run.pipeline_spec", "must be a compiled pipeline spec (with root)"))
    runtime = run.get("runtime_config")
    if runtime is not None and not isinstance(runtime, Mapping):
        problems.append(("spec.run.runtime_config", "must be a mapping"))
    elif isinstance(runtime, Mapping) and not isinstance(runtime.get("parameters", {}), Mapping):
        problems.append(("spec.run.runtime_config.parameters",
                         "must be a mapping of parameter name to value"))
    return problems
