"""The primary step of an Argo Workflow or a Tekton PipelineRun / TaskRun trial.

Katib runs such trials as any other kind (their controllers make the pods) and injects its
metrics collector, by a mutating webhook, into the pod that carries the template's
``primaryPodLabels``. katib-local changes the workload before creating it instead
(:mod:`trial_runner.kubernetes`), so it needs the *template* of that pod:

* **Argo** (``argoproj.io/v1alpha1`` ``Workflow``): the templates of ``spec.templates`` with a
  ``container`` or ``script`` whose ``metadata.labels`` hold every primary pod label (Argo puts
  a template's labels on its pods). Argo names the container ``main`` in the pod, which is
  what Katib's published example gives as ``primaryContainerName``. The collector becomes one
  of the template's ``sidecars``; its volume one of the template's ``volumes``.
* **Tekton** (``tekton.dev`` ``PipelineRun`` with an inline ``pipelineSpec``, or ``TaskRun``
  with an inline ``taskSpec``): the task named by the ``tekton.dev/pipelineTask`` label (or
  whose ``taskSpec.metadata.labels`` hold the labels); Tekton names a step's container
  ``step-<name>``, so ``primaryContainerName: step-model-training`` is the step
  ``model-training``. The collector becomes one of the task's ``sidecars``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PrimaryStep", "primary_step"]

ARGO_GROUP = "argoproj.io"
TEKTON_GROUP = "tekton.dev"
PIPELINE_TASK_LABEL = "tekton.dev/pipelineTask"
#: The name Argo gives the container of a container or script template in its pod.
ARGO_MAIN = "main"


@dataclass
class PrimaryStep:
    """Where in a pipeline workload the primary container and its pod's parts are.

    The lists are the workload's own (changes go into the object to create).
    """

    #: ``argo`` or ``tekton``.
    engine: str
    #: A readable path to the step (``spec.templates[2]``), for messages.
    path: str
    #: The primary container as written in the template.
    container: dict[str, Any]
    #: The volumes of the step's pod.
    volumes: list[dict[str, Any]]
    #: Where sidecar containers of the step's pod are declared.
    sidecars: list[dict[str, Any]]


def primary_step(
    workload: dict[str, Any], container: str, primary_pod_labels: Mapping[str, str]
) -> list[PrimaryStep] | None:
    """The steps whose pods are primary, or None when ``workload`` is no pipeline kind.

    An empty list means a pipeline kind in which no step matches (the caller says why).
    """
    group = str(workload.get("apiVersion") or "").split("/")[0]
    kind = workload.get("kind")
    spec = workload.get("spec")
    if not isinstance(spec, dict):
        return None
    if group == ARGO_GROUP and kind == "Workflow":
        return list(_argo_steps(workload, spec, container, primary_pod_labels))
    if group == TEKTON_GROUP and kind == "PipelineRun":
        pipeline = spec.get("pipelineSpec")
        if not isinstance(pipeline, dict):
            return []
        return list(_tekton_pipeline_steps(pipeline, container, primary_pod_labels))
    if group == TEKTON_GROUP and kind == "TaskRun":
        task = spec.get("taskSpec")
        if not isinstance(task, dict):
            return []
        step = _tekton_step(task, container, "spec.taskSpec")
        return [step] if step is not None else []
    return None


def _argo_steps(
    workload: dict[str, Any], spec: dict[str, Any], container: str, labels: Mapping[str, str]
) -> Iterator[PrimaryStep]:
    templates = spec.get("templates")
    if not isinstance(templates, list):
        return
    for i, template in enumerate(templates):
        if not isinstance(template, dict):
            continue
        body = template.get("container") or template.get("script")
        if not isinstance(body, dict):
            continue
        own = ((template.get("metadata") or {}).get("labels") or {})
        if labels:
            if any(own.get(k) != v for k, v in labels.items()):
                continue
        elif container not in (ARGO_MAIN, body.get("name"), template.get("name")):
            continue
        yield PrimaryStep(
            engine="argo",
            path=f"spec.templates[{i}]",
            container=body,
            volumes=template.setdefault("volumes", []),
            sidecars=template.setdefault("sidecars", []),
        )


def _tekton_pipeline_steps(
    pipeline: dict[str, Any], container: str, labels: Mapping[str, str]
) -> Iterator[PrimaryStep]:
    wanted_task = labels.get(PIPELINE_TASK_LABEL)
    others = {k: v for k, v in labels.items() if k != PIPELINE_TASK_LABEL}
    for group in ("tasks", "finally"):
        tasks = pipeline.get(group)
        if not isinstance(tasks, list):
            continue
        for i, task in enumerate(tasks):
            if not isinstance(task, dict) or not isinstance(task.get("taskSpec"), dict):
                continue
            if wanted_task is not None and task.get("name") != wanted_task:
                continue
            task_spec = task["taskSpec"]
            own = ((task_spec.get("metadata") or {}).get("labels") or {})
            if any(own.get(k) != v for k, v in others.items()):
                continue
            step = _tekton_step(task_spec, container, f"spec.pipelineSpec.{group}[{i}].taskSpec")
            if step is not None:
                yield step


def _tekton_step(task: dict[str, Any], container: str, path: str) -> PrimaryStep | None:
    name = container.removeprefix("step-")
    steps = task.get("steps")
    if not isinstance(steps, list):
        return None
    for j, step in enumerate(steps):
        if isinstance(step, dict) and step.get("name") in (name, container):
            return PrimaryStep(
                engine="tekton",
                path=f"{path}.steps[{j}]",
                container=step,
                volumes=task.setdefault("volumes", []),
                sidecars=task.setdefault("sidecars", []),
            )
    return None
