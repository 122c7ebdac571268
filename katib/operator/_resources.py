"""The operator's custom resources: Trial resources that own trial workloads, and Events.

Ownership follows Katib: an Experiment owns its Trials (and the Secret its trials push
with), a Trial owns its workload, the workload owns its pods. Deleting an Experiment thus
removes everything through the cluster's garbage collector, whether or not the operator runs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from trial_runner import TrialLaunch
from trial_runner.kubernetes import KubeApi, KubeApiError, LaunchHooks

log = logging.getLogger("katib.operator")

API_VERSION = "kubeflow.org/v1beta1"
COMPONENT = "katib-operator"


def owner_reference(obj: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
    }


class TrialResources(LaunchHooks):
    """Creates each trial's Trial resource before its workload, which the Trial then owns.

    Args:
        api: The connection.
        experiment_of: The Experiment resource of ``(namespace, name)`` (the watch's
            cache), or None if it is gone.
    """

    def __init__(
        self,
        api: KubeApi,
        experiment_of: Callable[[str, str], Mapping[str, Any] | None],
    ) -> None:
        self.api = api
        self.experiment_of = experiment_of

    def owner_references(self, launch: TrialLaunch) -> list[dict[str, Any]]:
        experiment = self.experiment_of(launch.namespace, launch.experiment)
        if experiment is None:
            raise KubeApiError(
                404, "NotFound", f"experiment {launch.namespace}/{launch.experiment} is gone"
            )
        body = trial_resource(launch, experiment)
        try:
            trial = self.api.create(body, launch.namespace)
        except KubeApiError as e:
            if e.status != 409:
                raise
            found = self.api.get(API_VERSION, "Trial", launch.namespace, launch.trial)
            if found is None:
                raise
            trial = found
        return [owner_reference(trial)]

    def secret_owner_references(self, launch: TrialLaunch) -> list[dict[str, Any]]:
        experiment = self.experiment_of(launch.namespace, launch.experiment)
        return [] if experiment is None else [owner_reference(experiment, controller=False)]


def trial_resource(launch: TrialLaunch, experiment: Mapping[str, Any]) -> dict[str, Any]:
    """A Katib Trial resource for ``launch``, owned by its Experiment."""
    spec = experiment.get("spec") or {}
    trial_spec: dict[str, Any] = {
        "objective": spec.get("objective") or {},
        "parameterAssignments": [
            {"name": k, "value": str(v)} for k, v in launch.assignments.items()
        ],
        "runSpec": dict(launch.manifest),
        "primaryContainerName": launch.primary_container,
        "successCondition": launch.success_condition,
        "failureCondition": launch.failure_condition,
        "retainRun": launch.retain,
        "labels": dict(launch.labels),
    }
    if launch.primary_pod_labels:
        trial_spec["primaryPodLabels"] = dict(launch.primary_pod_labels)
    if spec.get("metricsCollectorSpec"):
        trial_spec["metricsCollector"] = spec["metricsCollectorSpec"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Trial",
        "metadata": {
            "name": launch.trial,
            "namespace": launch.namespace,
            "labels": {"katib.kubeflow.org/experiment": launch.experiment, **launch.labels},
            "ownerReferences": [owner_reference(experiment)],
        },
        "spec": trial_spec,
    }


def emit_event(
    api: KubeApi, obj: Mapping[str, Any], kind: str, reason: str, message: str
) -> None:
    """A core Event about ``obj`` (what ``kubectl describe`` shows); failures are logged."""
    meta = obj.get("metadata") or {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    namespace = str(meta.get("namespace") or "default")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta.get('name')}.{uuid.uuid4().hex[:12]}",
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", API_VERSION),
            "kind": obj.get("kind", "Experiment"),
            "name": meta.get("name"),
            "namespace": namespace,
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": kind,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        api.create(body, namespace)
    except KubeApiError as e:
        log.warning("cannot record event %s on %s/%s: %s", reason, namespace, meta.get("name"), e)
