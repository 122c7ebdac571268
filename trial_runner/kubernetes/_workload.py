"""The workload object a trial creates: its identity, and the metrics collector Katib adds.

:func:`prepare_workload` turns a rendered :class:`~trial_runner.TrialLaunch` manifest (any
kind: batch Job, TFJob, PyTorchJob, XGBoostJob, MPIJob, TrainJob, a custom kind) into the
object to create:

* name and namespace of the trial, Katib's labels (``katib.kubeflow.org/experiment``,
  ``katib.kubeflow.org/trial``) on the workload and on every pod template, owner references;
* the trial's environment in the primary container (``KATIB_TRIAL_NAME``,
  ``KATIB_EXPERIMENT_NAME``, ``KATIB_NAMESPACE``, ``KATIB_API_URL`` and ``KATIB_API_TOKEN``
  from a Secret), so that ``katib.report_metrics`` (the Push collector) works as is;
* the metrics collector, as Katib's mutating webhook injects it into the primary pod: the
  primary container's command is wrapped by ``sh`` so that its output is also written to
  ``/var/log/katib/metrics.log`` on a shared ``emptyDir`` and its exit status to a marker
  file; a sidecar container ``katib-metrics-collector`` (``python -m trial_runner
  --sidecar ...`` from this project's image) reads that file (StdOut), the configured file
  (File), the event directory (TensorFlowEvent) or the Prometheus endpoint
  (PrometheusMetric), pushes the values to the API and exits once the marker appears. For
  Custom, the experiment's own collector container is injected instead, with the same
  environment and volume. The training image needs nothing from this project.

Katib injects at pod admission (a webhook) into pods that carry the primary pod labels;
here the pod *template* holding the primary container is changed before the workload is
created. Where replicas share that template (a TFJob's workers), each pod gets the sidecar
and only the one whose labels match ``primaryPodLabels`` reports (the sidecar reads its own
pod's labels through the downward API).
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from katib.errors import KatibError
from katib.spec import CollectorKind
from trial_runner._launch import TrialLaunch
from trial_runner.pipelines import PrimaryStep, primary_step

__all__ = [
    "DONE_FILE",
    "EXPERIMENT_LABEL",
    "METRICS_DIR",
    "METRICS_VOLUME",
    "SIDECAR_NAME",
    "STDOUT_FILE",
    "TRIAL_LABEL",
    "SidecarSettings",
    "WorkloadError",
    "prepare_workload",
    "pod_templates",
]

TRIAL_LABEL = "katib.kubeflow.org/trial"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
METRICS_VOLUME = "katib-metrics"
METRICS_DIR = "/var/log/katib"
STDOUT_FILE = f"{METRICS_DIR}/metrics.log"
DONE_FILE = f"{METRICS_DIR}/.katib-exit"
SIDECAR_NAME = "katib-metrics-collector"
#: Replica types whose pod is the primary one when several templates hold the container.
PRIMARY_REPLICAS = ("Master", "Chief", "Launcher", "Driver", "Scheduler")
#: Collectors that read something next to the training process: the sidecar, or Custom.
SIDECAR_KINDS = (
    CollectorKind.STDOUT.value,
    CollectorKind.FILE.value,
    CollectorKind.TENSORFLOW_EVENT.value,
    CollectorKind.PROMETHEUS.value,
)


class WorkloadError(KatibError):
    """The workload cannot be made from this template (a clear reason for the user)."""


@dataclass(frozen=True)
class SidecarSettings:
    """How the metrics-collector sidecar is run.

    ``image`` is this project's image (the Dockerfile at the repository root); ``command``
    starts ``python -m trial_runner`` in it.
    """

    image: str = "katib-local:latest"
    command: tuple[str, ...] = ("python", "-m", "trial_runner")
    image_pull_policy: str = "IfNotPresent"
    #: Resources of the sidecar container (Katib's defaults are small).
    resources: Mapping[str, Any] | None = None


def pod_templates(manifest: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every pod template of a workload with the keys leading to it
    (``("spec", "template")``, ``("spec", "pytorchReplicaSpecs", "Master", "template")``)."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), manifest)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            if path and path[-1] == "template":
                spec = item.get("spec")
                if isinstance(spec, dict) and isinstance(spec.get("containers"), list):
                    yield path, item
                    continue
            stack.extend((path + (str(k),), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((path + (str(i),), v) for i, v in reversed(list(enumerate(item))))


def prepare_workload(
    launch: TrialLaunch,
    *,
    sidecar: SidecarSettings,
    owner_references: Sequence[Mapping[str, Any]] = (),
    push_secret: str | None = None,
) -> dict[str, Any]:
    """The object to create for ``launch``.

    Args:
        launch: The trial, with its rendered manifest.
        sidecar: How to run the metrics collector.
        owner_references: ``metadata.ownerReferences`` of the workload (its Trial, in
            operator mode).
        push_secret: The Secret holding ``token`` for ``KATIB_API_TOKEN`` (None: no push).

    Raises:
        WorkloadError: no pod template holds the primary container when the collector
            needs one, or it has no command to wrap.
    """
    obj = copy.deepcopy(dict(launch.manifest))
    meta = obj.setdefault("metadata", {})
    meta["name"] = launch.trial
    meta["namespace"] = launch.namespace
    labels = meta.setdefault("labels", {})
    identity = {EXPERIMENT_LABEL: launch.experiment, TRIAL_LABEL: launch.trial}
    labels.update({**dict(launch.labels), **identity})
    if owner_references:
        meta["ownerReferences"] = [dict(o) for o in owner_references]
    templates = list(pod_templates(obj))
    for _, template in templates:
        template.setdefault("metadata", {}).setdefault("labels", {}).update(identity)
    env = _trial_env(launch, push_secret)
    kind = _collector_kind(launch)
    primary = _primary_template(templates, launch.primary_container)
    steps = primary_step(obj, launch.primary_container, launch.primary_pod_labels)
    if primary is None and steps is not None:
        _prepare_pipeline(launch, obj, steps, kind, sidecar, env, identity)
        return obj
    if primary is None:
        if kind in SIDECAR_KINDS or kind == CollectorKind.CUSTOM.value:
            raise WorkloadError(
                f"metrics collector {kind} needs the primary container"
                f" {launch.primary_container!r} in a pod template of the {obj.get('kind')},"
                " to run the collector beside it; none has it (a TrainJob's pods come from"
                " its runtime: use the Push collector, katib.report_metrics)"
            )
        _add_env_to_trainer(obj, env)
        return obj
    pod_spec = primary["spec"]
    container = _container(pod_spec, launch.primary_container)
    _add_env(container, env)
    if kind in SIDECAR_KINDS:
        _inject_sidecar(launch, kind, pod_spec, container, sidecar, env)
    elif kind == CollectorKind.CUSTOM.value:
        _inject_custom(launch, pod_spec, container, env)
    return obj


def _prepare_pipeline(
    launch: TrialLaunch,
    obj: dict[str, Any],
    steps: Sequence[PrimaryStep],
    kind: str,
    sidecar: SidecarSettings,
    env: Sequence[Mapping[str, Any]],
    identity: Mapping[str, str],
) -> None:
    """An Argo Workflow or Tekton run: the collector joins its primary step's pod as one of
    the step's sidecars (:mod:`trial_runner.pipelines`), as Katib's webhook adds it to the
    pod with the primary pod labels."""
    if obj.get("kind") == "Workflow":  # Argo puts podMetadata on every pod it makes
        pod_meta = obj["spec"].setdefault("podMetadata", {})
        pod_meta.setdefault("labels", {}).update(identity)
    needs_pod = kind in SIDECAR_KINDS or kind == CollectorKind.CUSTOM.value
    if not steps:
        if not needs_pod:
            return
        labels = ", ".join(f"{k}={v}" for k, v in sorted(launch.primary_pod_labels.items()))
        raise WorkloadError(
            f"metrics collector {kind} needs the primary step of the {obj.get('kind')}: no"
            f" inline step has container {launch.primary_container!r}"
            + (f" and the primary pod labels {labels}" if labels else "")
            + " (an Argo template with those metadata.labels, a Tekton task named by"
            " tekton.dev/pipelineTask; a pipelineRef/templateRef cannot be changed: use the"
            " Push collector, katib.report_metrics)"
        )
    for step in steps:
        _add_env(step.container, env)
        if not needs_pod:
            continue
        view: dict[str, Any] = {"containers": [step.container], "volumes": step.volumes}
        if kind in SIDECAR_KINDS:
            _inject_sidecar(launch, kind, view, step.container, sidecar, env)
        else:
            _inject_custom(launch, view, step.container, env)
        step.sidecars.extend(view["containers"][1:])


# Identity and environment ------------------------------------------------------------------


def _trial_env(launch: TrialLaunch, push_secret: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "KATIB_TRIAL_NAME", "value": launch.trial},
        {"name": "KATIB_EXPERIMENT_NAME", "value": launch.experiment},
        {"name": "KATIB_NAMESPACE", "value": launch.namespace},
    ]
    url = launch.push_env.get("KATIB_API_URL")
    if url and push_secret:
        env.append({"name": "KATIB_API_URL", "value": url})
        env.append(
            {
                "name": "KATIB_API_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": push_secret, "key": "token"}},
            }
        )
    return env


def _add_env(container: dict[str, Any], env: Sequence[Mapping[str, Any]]) -> None:
    """Add variables the container does not set itself (the user's own value wins)."""
    items = container.setdefault("env", [])
    present = {e.get("name") for e in items if isinstance(e, Mapping)}
    items.extend(dict(e) for e in env if e["name"] not in present)


def _add_env_to_trainer(obj: dict[str, Any], env: Sequence[Mapping[str, Any]]) -> None:
    """A TrainJob has no pod template: its trainer takes an ``env`` list."""
    spec = obj.get("spec")
    trainer = spec.get("trainer") if isinstance(spec, dict) else None
    if obj.get("kind") == "TrainJob" and isinstance(spec, dict):
        if not isinstance(trainer, dict):
            trainer = spec["trainer"] = {}
        _add_env(trainer, env)


def _collector_kind(launch: TrialLaunch) -> str:
    spec = launch.collection.spec
    if spec is None or spec.collector is None or not spec.collector.kind:
        return CollectorKind.STDOUT.value
    return spec.collector.kind


def _primary_template(
    templates: Sequence[tuple[tuple[str, ...], dict[str, Any]]], container: str
) -> dict[str, Any] | None:
    holding = [
        (path, t)
        for path, t in templates
        if any(isinstance(c, Mapping) and c.get("name") == container
               for c in t["spec"]["containers"])
    ]
    if not holding:
        return None
    for replica in PRIMARY_REPLICAS:
        for path, template in holding:
            if len(path) >= 2 and path[-2] == replica:
                return template
    return holding[0][1]


def _container(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    for c in pod_spec["containers"]:
        if isinstance(c, dict) and c.get("name") == name:
            return c
    raise WorkloadError(f"container {name!r} not found")  # pragma: no cover - checked before


# The sidecar --------------------------------------------------------------------------------


def _inject_sidecar(
    launch: TrialLaunch,
    kind: str,
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    settings: SidecarSettings,
    env: Sequence[Mapping[str, Any]],
) -> None:
    spec = launch.collection.spec
    source = spec.source if spec is not None else None
    mounts: list[dict[str, Any]] = [{"name": METRICS_VOLUME, "mountPath": METRICS_DIR}]
    args = ["--sidecar", f"--done-file={DONE_FILE}", f"--collector={kind}"]
    args.append("--metric-names=" + ",".join(launch.collection.metric_names))
    if launch.collection.text_metrics:
        args.append("--text-metrics=" + ",".join(launch.collection.text_metrics))
    formats = list(launch.collection.metrics_format or ())
    stdout = kind == CollectorKind.STDOUT.value
    if stdout:
        args.append(f"--path={STDOUT_FILE}")
    elif kind in (CollectorKind.FILE.value, CollectorKind.TENSORFLOW_EVENT.value):
        fs = source.file_system_path if source is not None else None
        path = (fs.path if fs is not None else None) or ""
        args.append(f"--path={path}")
        if kind == CollectorKind.FILE.value:
            fmt = (fs.format if fs is not None else None) or "TEXT"
            args.append(f"--format={fmt}")
        folder = path.rstrip("/") if kind == CollectorKind.TENSORFLOW_EVENT.value else (
            posixpath.dirname(path)
        )
        mounts.extend(_share_folder(pod_spec, container, folder))
    else:  # PrometheusMetric: the trial's endpoint, from inside its pod
        http = source.http_get if source is not None else None
        port = http.port if http is not None and http.port else 8080
        path = (http.path if http is not None else None) or "/metrics"
        scheme = ((http.scheme if http is not None else None) or "HTTP").lower()
        host = (http.host if http is not None else None) or "127.0.0.1"
        args.append(f"--url={scheme}://{host}:{port}{path}")
    if kind in (CollectorKind.STDOUT.value, CollectorKind.FILE.value):
        args.extend(f"--metrics-format={f}" for f in formats)
    env = [*env]
    selector = dict(launch.primary_pod_labels) if _replicated(launch.manifest) else {}
    for i, (key, value) in enumerate(sorted(selector.items())):
        name = f"KATIB_POD_LABEL_{i}"
        env.append(
            {"name": name, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{key}']"}}}
        )
        args.append(f"--only-if={name}={value}")
    _wrap_command(container, launch.primary_container, stdout=stdout)
    _add_volume(pod_spec, METRICS_VOLUME)
    _add_mount(container, METRICS_VOLUME, METRICS_DIR)
    sidecar: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [*settings.command],
        "args": [_escape(a) for a in args],
        "env": [dict(e) for e in env],
        "volumeMounts": mounts,
    }
    if settings.resources:
        sidecar["resources"] = dict(settings.resources)
    pod_spec["containers"].append(sidecar)


def _inject_custom(
    launch: TrialLaunch,
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    env: Sequence[Mapping[str, Any]],
) -> None:
    """Katib's Custom collector: the experiment's own container runs beside the trial."""
    spec = launch.collection.spec
    assert spec is not None and spec.collector is not None
    custom = copy.deepcopy(dict(spec.collector.custom_collector or {}))
    custom.setdefault("name", "custom-metrics-collector")
    _add_env(custom, env)
    source = spec.source
    fs = source.file_system_path if source is not None else None
    if fs is not None and fs.path:
        folder = fs.path.rstrip("/") if fs.kind == "Directory" else posixpath.dirname(fs.path)
        custom.setdefault("volumeMounts", []).extend(_share_folder(pod_spec, container, folder))
    pod_spec["containers"].append(custom)


def _replicated(manifest: Mapping[str, Any]) -> bool:
    """Whether several pods share the primary template (training jobs' replicas)."""
    return manifest.get("kind") not in ("Job", "Pod", None) and (
        str(manifest.get("apiVersion", "")) != "batch/v1"
    )


def _share_folder(
    pod_spec: dict[str, Any], container: dict[str, Any], folder: str
) -> list[dict[str, Any]]:
    """Mounts that give the sidecar the primary container's ``folder``.

    The user's own volume there is shared as it is; otherwise an emptyDir is mounted in
    both, as Katib does (``/var/log/katib`` is already shared).
    """
    if not folder or folder == "/" or folder == METRICS_DIR or folder.startswith(METRICS_DIR + "/"):
        return []
    for mount in container.get("volumeMounts") or []:
        mount_path = str(mount.get("mountPath", "")).rstrip("/")
        if mount_path and (folder == mount_path or folder.startswith(mount_path + "/")):
            shared = {"name": mount["name"], "mountPath": mount["mountPath"]}
            if mount.get("subPath"):
                shared["subPath"] = mount["subPath"]
            return [shared]
    name = "katib-metrics-source"
    _add_volume(pod_spec, name)
    _add_mount(container, name, folder)
    return [{"name": name, "mountPath": folder}]


def _add_volume(pod_spec: dict[str, Any], name: str) -> None:
    volumes = pod_spec.setdefault("volumes", [])
    if not any(v.get("name") == name for v in volumes):
        volumes.append({"name": name, "emptyDir": {}})


def _add_mount(container: dict[str, Any], name: str, path: str) -> None:
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("mountPath", "").rstrip("/") == path for m in mounts):
        mounts.append({"name": name, "mountPath": path})


def _wrap_command(container: dict[str, Any], name: str, *, stdout: bool) -> None:
    """Run the container's command under ``sh`` so that its exit is marked for the sidecar
    (and, for StdOut, its output is also written to the shared file).

    The original argv is passed to ``sh`` as positional parameters, so nothing of it is
    re-parsed by the shell; Kubernetes still expands its ``$(VAR)`` references.
    """
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    if not command:
        raise WorkloadError(
            f"the metrics collector needs the command of container {name!r}: without one"
            " the image's entrypoint runs, which katib-local cannot read (Katib looks it up"
            " in the registry); set command (and args) in the trial template"
        )
    if stdout:
        script = (
            f"rm -f {DONE_FILE}; "
            f'{{ "$@"; echo $? > {DONE_FILE}; }} 2>&1 | tee -a {STDOUT_FILE}; '
            f"exit $(cat {DONE_FILE})"
        )
    else:
        script = f'rm -f {DONE_FILE}; "$@"; code=$?; echo $code > {DONE_FILE}; exit $code'
    container["command"] = ["sh", "-c", _escape(script), "katib-trial", *command]
    container["args"] = args


def _escape(text: str) -> str:
    """Protect ``$`` from Kubernetes' ``$(VAR)`` expansion of command and args."""
    return text.replace("$", "$$")
