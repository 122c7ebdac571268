"""Trials as Kubeflow Pipelines runs: :class:`KfpLauncher` (kubeflow/katib#1914).

A trial template of kind ``Run`` (``apiVersion: pipelines.kubeflow.org/v2beta1``) describes
one KFP run per trial::

    trialSpec:
      apiVersion: pipelines.kubeflow.org/v2beta1
      kind: Run
      spec:
        host: http://ml-pipeline.kubeflow:8888      # optional: else the launcher's (KFP_HOST)
        pipelinePackage: pipeline.yaml              # a compiled package, uploaded once
        run:                                        # the body of POST /apis/v2beta1/runs
          pipeline_version_reference: {pipeline_id: ..., pipeline_version_id: ...}
          runtime_config:
            parameters:
              learning_rate: ${trialParameters.learningRate}

``run`` is KFP's own v2beta1 ``Run`` message with KFP's field names; the launcher fills in
``display_name`` (the trial's name) and, for a ``pipelinePackage``, the
``pipeline_version_reference`` of the uploaded package. Parameter values, which Katib
substitutes as text, are converted to the types the pipeline declares
(``root.inputDefinitions.parameters``), and the trial's push environment is passed as the
parameters ``katib_trial_name``, ``katib_experiment_name``, ``katib_namespace``,
``katib_api_url`` and ``katib_api_token`` when the pipeline declares them, so that a step can
call ``katib.report_metrics``.

The launcher creates the run, follows it (``GET /runs/{id}`` every ``poll_interval`` s) and
reports its end: ``SUCCEEDED`` → Completed, with the numeric values of the run's metrics
artifacts (``system.Metrics`` outputs of its tasks, read through ``/artifacts/{id}``);
``FAILED`` → Failed with KFP's error; ``CANCELED`` by someone else → Killed by the user.
Killing a trial terminates its run (``POST /runs/{id}:terminate``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from katib.errors import KatibError
from katib.spec import CollectorKind, kfp_run_problems
from katib.spec import is_kfp_run as spec_is_kfp_run
from trial_runner._launch import (
    Ending,
    EventSink,
    KillReason,
    Launcher,
    TrialEnded,
    TrialLaunch,
    TrialStarted,
)
from trial_runner.metrics import Observation
from trial_runner.pipelines._kfp_api import KfpApi, KfpApiError

__all__ = [
    "KFP_API_VERSION",
    "KFP_KIND",
    "PUSH_PARAMETERS",
    "KfpLauncher",
    "KfpRunTemplate",
    "KfpTemplateError",
    "is_kfp_run",
]

log = logging.getLogger("katib.kfp")

KFP_API_VERSION = "pipelines.kubeflow.org/v2beta1"
KFP_KIND = "Run"
#: Run parameters the launcher fills with the trial's push environment, when declared.
PUSH_PARAMETERS = {
    "katib_trial_name": "KATIB_TRIAL_NAME",
    "katib_experiment_name": "KATIB_EXPERIMENT_NAME",
    "katib_namespace": "KATIB_NAMESPACE",
    "katib_api_url": "KATIB_API_URL",
    "katib_api_token": "KATIB_API_TOKEN",
}
_TERMINAL = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
#: A run in one of these states is still going (CANCELING is on its way to CANCELED).
_LIVE = {"PENDING", "RUNNING", "PAUSED"}
_METRICS_TYPES = {"Metric", "Metrics", "system.Metrics", "ClassificationMetric"}
#: How long a killed trial waits for its run to say CANCELED before it is reported Killed.
_CANCEL_WAIT = 30.0
#: Requests that get no answer are retried for this long before the trial gives up.
_UNAVAILABLE_FOR = 300.0


class KfpTemplateError(KatibError):
    """The trial template does not describe a KFP run this launcher can create."""


def is_kfp_run(manifest: Mapping[str, Any]) -> bool:
    """Whether a rendered trial workload is a KFP run (``pipelines.kubeflow.org`` ``Run``)."""
    return spec_is_kfp_run(manifest)


@dataclass(frozen=True)
class KfpRunTemplate:
    """A rendered ``Run`` trial template, read."""

    run: Mapping[str, Any]
    host: str | None = None
    package: Path | None = None
    namespace: str | None = None

    @classmethod
    def parse(cls, manifest: Mapping[str, Any], source_dir: str = ".") -> KfpRunTemplate:
        """Read ``spec.host``, ``spec.pipelinePackage``, ``spec.namespace`` and ``spec.run``.

        Raises:
            KfpTemplateError: a field has the wrong type, or the run names no pipeline.
        """
        problems = kfp_run_problems(manifest)
        if problems:
            raise KfpTemplateError(
                "; ".join(f"trialSpec.{field}: {message}" for field, message in problems)
            )
        spec = manifest["spec"]
        run = spec.get("run", {})
        host = spec.get("host")
        namespace = spec.get("namespace")
        package_name = spec.get("pipelinePackage")
        package: Path | None = None
        if package_name is not None:
            package = Path(package_name)
            if not package.is_absolute():
                package = Path(source_dir) / package
        return cls(
            run=run,
            host=host or None,
            package=package,
            namespace=str(namespace) if namespace else None,
        )


@dataclass
class _Trial:
    launch: TrialLaunch
    sink: EventSink
    run_id: str = ""
    kill_reason: KillReason | None = None
    kill_message: str = ""
    ended: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False


class KfpLauncher(Launcher):
    """Runs each trial as a Kubeflow Pipelines run, through KFP's REST API.

    Args:
        host: The KFP API server used when a template names none (default: ``KFP_HOST``).
        token: Bearer token for the API (default: ``KFP_TOKEN``).
        poll_interval: Seconds between two reads of a running run (default:
            ``KATIB_KFP_POLL_SECONDS``, else 5).
        api_factory: Makes the client for a host (tests inject their own).
        before_create: Called with each trial before its run is created (the operator
            creates the trial's Trial resource there); an exception does not start the trial.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        token: str | None = None,
        poll_interval: float | None = None,
        api_factory: Callable[[str, str | None], KfpApi] | None = None,
        before_create: Callable[[TrialLaunch], object] | None = None,
    ) -> None:
        import os

        self.host = host or os.environ.get("KFP_HOST") or None
        self.token = token or os.environ.get("KFP_TOKEN") or None
        self.poll_interval = (
            poll_interval if poll_interval is not None
            else float(os.environ.get("KATIB_KFP_POLL_SECONDS") or 5.0)
        )
        self._api_factory = api_factory or (lambda h, t: KfpApi(h, token=t))
        self._before_create = before_create
        self._apis: dict[str, KfpApi] = {}
        self._lock = threading.Lock()
        self._trials: dict[str, _Trial] = {}
        #: (host, namespace, digest) → (pipeline id, version id, pipeline spec)
        self._uploads: dict[tuple[str, str, str], tuple[str, str, Mapping[str, Any]]] = {}
        self._upload_lock = threading.Lock()

    # The launcher interface ------------------------------------------------------------------

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        self._start(_Trial(launch, sink))

    def adopt(self, launch: TrialLaunch, sink: EventSink) -> bool:
        """Follow the run a stopped or dead controller created for this trial (the newest run
        named after it), or report how it ended while no one watched."""
        try:
            template = KfpRunTemplate.parse(launch.manifest, launch.source_dir)
        except KfpTemplateError:
            return False
        host = template.host or self.host
        if not host:
            return False
        api = self._api(host)
        try:
            run = self._run_of(api, template, launch)
        except (KfpApiError, OSError) as e:
            log.warning("cannot adopt trial %s: listing its KFP runs failed: %s", launch.trial, e)
            return False
        if run is None:
            return False
        log.info("adopted KFP run %s of trial %s", run["run_id"], launch.trial)
        self._start(_Trial(launch, sink, run_id=str(run["run_id"])), adopted=api)
        return True

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        with self._lock:
            found = self._trials.get(trial)
        if found is None:
            return
        with found.lock:
            if found.kill_reason is None and not found.done:
                found.kill_reason, found.kill_message = reason, message

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        with self._lock:
            trials = list(self._trials.values())
        for trial in trials:
            self.kill(trial.launch.trial, reason)
        deadline = time.monotonic() + wait
        for trial in trials:
            trial.ended.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        with self._lock:
            apis = list(self._apis.values())
            self._apis.clear()
        for api in apis:
            api.close()

    def active(self) -> list[str]:
        with self._lock:
            return list(self._trials)

    # Following one run -----------------------------------------------------------------------

    def _start(self, trial: _Trial, adopted: KfpApi | None = None) -> None:
        """Follow ``trial`` in a thread of its own: create its run, or watch ``adopted``'s."""
        with self._lock:
            self._trials[trial.launch.trial] = trial
        threading.Thread(
            target=self._guarded, args=(trial, adopted), name=f"katib-kfp-{trial.launch.trial}",
            daemon=True,
        ).start()

    def _guarded(self, trial: _Trial, adopted: KfpApi | None = None) -> None:
        try:
            if adopted is not None:
                self._watch(trial, adopted)
            else:
                self._follow(trial)
        except Exception as e:  # noqa: BLE001 - a trial's thread must always report an end
            log.exception("trial %s: the KFP launcher failed", trial.launch.trial)
            if trial.run_id:
                self._end(trial, TrialEnded(trial.launch.trial, Ending.FAILED,
                                            f"following KFP run {trial.run_id}: {e}"))
            else:
                self._end(trial, TrialEnded(trial.launch.trial, Ending.NOT_STARTED,
                                            f"{type(e).__name__}: {e}", reason="LauncherError"))

    def _follow(self, trial: _Trial) -> None:
        launch = trial.launch
        name = launch.trial
        if trial.kill_reason is not None:
            self._end(trial, self._killed(trial))
            return
        kind = _collector_kind(launch)
        if kind not in (CollectorKind.STDOUT.value, CollectorKind.PUSH.value,
                        CollectorKind.NONE.value):
            self._not_started(
                trial, "MetricsCollectorError",
                f"metrics collector {kind} needs a container to read from; a KFP run's"
                " metrics come from its metrics artifacts or from katib.report_metrics"
                " (collector kind Push)",
            )
            return
        try:
            template = KfpRunTemplate.parse(launch.manifest, launch.source_dir)
        except KfpTemplateError as e:
            self._not_started(trial, "InvalidTrialTemplate", str(e))
            return
        host = template.host or self.host
        if not host:
            self._not_started(
                trial, "InvalidTrialTemplate",
                "no KFP API server: set trialSpec.spec.host, or KFP_HOST where katib runs",
            )
            return
        api = self._api(host)
        if self._before_create is not None:
            try:
                self._before_create(launch)
            except Exception as e:  # noqa: BLE001 - the hook's failure is the trial's
                self._not_started(trial, "LaunchHookError", f"before creating the run: {e}")
                return
        try:
            existing = self._run_of(api, template, launch)
        except (KfpApiError, OSError) as e:
            log.debug("trial %s: cannot look for an earlier run: %s", name, e)
            existing = None
        if existing is not None and str(existing.get("state") or "") in _LIVE:
            # A controller died after creating this trial's run: follow it, do not run twice.
            trial.run_id = str(existing["run_id"])
            log.info("trial %s: following its KFP run %s, created before", name, trial.run_id)
            trial.sink(TrialStarted(name, _time(existing.get("created_at")) or time.time()))
            self._watch(trial, api)
            return
        try:
            body = self._run_body(api, template, launch)
            run = _retrying(lambda: api.create_run(body), lambda: trial.kill_reason is not None)
        except (KfpApiError, KfpTemplateError, OSError) as e:
            if trial.kill_reason is not None:
                self._end(trial, self._killed(trial))
                return
            reason = "InvalidTrialTemplate" if isinstance(e, KfpTemplateError | OSError) else (
                "KfpApiError"
            )
            self._not_started(trial, reason, f"cannot create the KFP run: {e}")
            return
        trial.run_id = str(run.get("run_id") or "")
        if not trial.run_id:
            self._not_started(trial, "KfpApiError", "the KFP API answered without a run_id")
            return
        log.info("trial %s: KFP run %s created on %s", name, trial.run_id, host)
        trial.sink(TrialStarted(name, _time(run.get("created_at")) or time.time()))
        self._watch(trial, api)

    def _watch(self, trial: _Trial, api: KfpApi) -> None:
        name = trial.launch.trial
        unavailable_since: float | None = None
        terminated = False
        kill_seen_at: float | None = None
        while True:
            if trial.kill_reason is not None and not terminated:
                terminated = True
                kill_seen_at = time.monotonic()
                try:
                    api.terminate_run(trial.run_id)
                except KfpApiError as e:
                    log.warning("trial %s: cannot terminate KFP run %s: %s", name, trial.run_id, e)
            try:
                run = api.get_run(trial.run_id)
                unavailable_since = None
            except KfpApiError as e:
                if e.status == 404:
                    if terminated:
                        self._end(trial, self._killed(trial))
                    else:
                        self._end(trial, TrialEnded(
                            name, Ending.FAILED,
                            f"KFP run {trial.run_id} was deleted before it finished"))
                    return
                if not e.temporary:
                    self._end(trial, TrialEnded(
                        name, Ending.FAILED, f"cannot read KFP run {trial.run_id}: {e}"))
                    return
                unavailable_since = unavailable_since or time.monotonic()
                if time.monotonic() - unavailable_since > _UNAVAILABLE_FOR:
                    self._end(trial, TrialEnded(
                        name, Ending.FAILED,
                        f"the KFP API did not answer for {_UNAVAILABLE_FOR:.0f}s: {e}"))
                    return
                time.sleep(self.poll_interval)
                continue
            state = str(run.get("state") or "")
            if state in _TERMINAL:
                self._finished(trial, api, run, state, terminated)
                return
            if terminated and kill_seen_at is not None and (
                time.monotonic() - kill_seen_at > _CANCEL_WAIT
            ):
                self._end(trial, self._killed(trial))
                return
            time.sleep(self.poll_interval)

    def _finished(
        self, trial: _Trial, api: KfpApi, run: Mapping[str, Any], state: str, terminated: bool
    ) -> None:
        name = trial.launch.trial
        run_id = trial.run_id
        if terminated:
            self._end(trial, self._killed(trial))
            return
        if state in ("SUCCEEDED", "SKIPPED"):
            observations = self._artifact_metrics(api, run, trial.launch)
            self._end(trial, TrialEnded(
                name, Ending.COMPLETED, f"KFP run {run_id} succeeded", exit_code=0,
                observations=observations))
        elif state == "FAILED":
            self._end(trial, TrialEnded(
                name, Ending.FAILED, f"KFP run {run_id} failed: {_run_error(run)}"))
        else:  # CANCELED by someone else: a person stopped it in KFP, not a failure
            self._end(trial, TrialEnded(
                name, Ending.KILLED, f"KFP run {run_id} was cancelled in Kubeflow Pipelines",
                kill_reason=KillReason.USER))

    def _run_of(
        self, api: KfpApi, template: KfpRunTemplate, launch: TrialLaunch
    ) -> dict[str, Any] | None:
        """The newest run created for this trial (named after it), or None."""
        experiment_id = template.run.get("experiment_id")
        runs = api.runs_named(
            launch.trial, namespace=template.namespace,
            experiment_id=str(experiment_id) if experiment_id else None,
        )
        ours = [r for r in runs if r.get("display_name") == launch.trial and r.get("run_id")]
        return max(ours, key=lambda r: _time(r.get("created_at")) or 0.0, default=None)

    # Building the run ------------------------------------------------------------------------

    def _run_body(
        self, api: KfpApi, template: KfpRunTemplate, launch: TrialLaunch
    ) -> dict[str, Any]:
        body: dict[str, Any] = _plain(template.run)
        body.setdefault("display_name", launch.trial)
        body.setdefault("description", f"katib trial {launch.namespace}/{launch.trial}")
        pipeline_spec: Mapping[str, Any] = {}
        if template.package is not None:
            pipeline_id, version_id, pipeline_spec = self._upload(api, template, launch)
            body["pipeline_version_reference"] = {
                "pipeline_id": pipeline_id, "pipeline_version_id": version_id,
            }
        elif isinstance(body.get("pipeline_spec"), Mapping):
            pipeline_spec = body["pipeline_spec"]
        else:
            ref = body["pipeline_version_reference"]
            try:
                version = _retrying(
                    lambda: api.pipeline_version(ref["pipeline_id"], ref["pipeline_version_id"]),
                    lambda: False,
                )
                pipeline_spec = version.get("pipeline_spec") or {}
            except KfpApiError as e:
                if not e.temporary:
                    raise
                log.warning("cannot read the pipeline's parameter types: %s", e)
        runtime = body.setdefault("runtime_config", {})
        params = dict(runtime.get("parameters") or {})
        declared = _declared_parameters(pipeline_spec)
        for param, env_name in PUSH_PARAMETERS.items():
            value = {**launch.push_env, **_identity(launch)}.get(env_name)
            if param in declared and param not in params and value:
                params[param] = value
        runtime["parameters"] = {k: _typed(k, v, declared.get(k)) for k, v in params.items()}
        return body

    def _upload(
        self, api: KfpApi, template: KfpRunTemplate, launch: TrialLaunch
    ) -> tuple[str, str, Mapping[str, Any]]:
        """Upload the experiment's compiled package once (per host, namespace and content)."""
        assert template.package is not None
        try:
            package = template.package.read_bytes()
        except OSError as e:
            raise KfpTemplateError(
                f"trialSpec.spec.pipelinePackage: cannot read {template.package}"
                f" ({e.strerror or e}); compile the pipeline first, e.g."
                " kfp.compiler.Compiler().compile(pipeline, 'pipeline.yaml')"
            ) from e
        digest = hashlib.sha256(package).hexdigest()[:12]
        key = (api.host, template.namespace or "", digest)
        with self._upload_lock:
            cached = self._uploads.get(key)
            if cached is not None:
                return cached
            spec = _package_spec(package, template.package)
            name = f"katib-{launch.namespace}-{launch.experiment}-{digest}"
            try:
                pipeline = api.upload_pipeline(
                    name, package, filename=template.package.name,
                    namespace=template.namespace,
                    description=f"uploaded by katib for experiment"
                                f" {launch.namespace}/{launch.experiment}",
                )
            except KfpApiError as e:
                if e.status != 409:
                    raise
                pipeline = api.pipeline_by_name(name, namespace=template.namespace)
            pipeline_id = str(pipeline.get("pipeline_id") or "")
            version = api.latest_version(pipeline_id) if pipeline_id else None
            if not pipeline_id or version is None:
                raise KfpApiError(f"the uploaded pipeline {name} has no version")
            result = (pipeline_id, str(version["pipeline_version_id"]), spec)
            self._uploads[key] = result
            log.info("uploaded %s as KFP pipeline %s (%s)", template.package, name, pipeline_id)
            return result

    # Metrics ---------------------------------------------------------------------------------

    def _artifact_metrics(
        self, api: KfpApi, run: Mapping[str, Any], launch: TrialLaunch
    ) -> list[Observation]:
        wanted = set(launch.collection.metric_names)
        found: list[Observation] = []
        details = run.get("run_details") or {}
        for task in details.get("task_details") or []:
            if not isinstance(task, Mapping):
                continue
            when = _time(task.get("end_time"))
            for artifacts in (task.get("outputs") or {}).values():
                for artifact_id in (artifacts or {}).get("artifact_ids") or []:
                    try:
                        artifact = api.get_artifact(str(artifact_id))
                    except KfpApiError as e:
                        log.warning("trial %s: cannot read artifact %s: %s",
                                    launch.trial, artifact_id, e)
                        continue
                    for metric, value in _metric_values(artifact):
                        if not wanted or metric in wanted:
                            found.append(Observation(metric, value, None, when))
        return found

    # Ending ----------------------------------------------------------------------------------

    def _end(self, trial: _Trial, event: TrialEnded) -> None:
        with trial.lock:
            if trial.done:
                return
            trial.done = True
        with self._lock:
            if self._trials.get(trial.launch.trial) is trial:
                del self._trials[trial.launch.trial]
        trial.ended.set()
        trial.sink(event)

    def _not_started(self, trial: _Trial, reason: str, message: str) -> None:
        log.warning("trial %s did not start: %s", trial.launch.trial, message)
        self._end(trial, TrialEnded(trial.launch.trial, Ending.NOT_STARTED, message,
                                    reason=reason))

    @staticmethod
    def _killed(trial: _Trial) -> TrialEnded:
        reason = trial.kill_reason or KillReason.USER
        what = f"KFP run {trial.run_id} was terminated" if trial.run_id else "no KFP run created"
        return TrialEnded(trial.launch.trial, Ending.KILLED,
                          trial.kill_message or f"{what}: {reason.value}", kill_reason=reason)

    def _api(self, host: str) -> KfpApi:
        with self._lock:
            api = self._apis.get(host)
            if api is None:
                api = self._apis[host] = self._api_factory(host, self.token)
            return api


# Helpers ----------------------------------------------------------------------------------------


def _collector_kind(launch: TrialLaunch) -> str:
    spec = launch.collection.spec
    if spec is None or spec.collector is None or not spec.collector.kind:
        return CollectorKind.STDOUT.value
    return str(spec.collector.kind)


def _identity(launch: TrialLaunch) -> dict[str, str]:
    return {
        "KATIB_TRIAL_NAME": launch.trial,
        "KATIB_EXPERIMENT_NAME": launch.experiment,
        "KATIB_NAMESPACE": launch.namespace,
    }


def _retrying(call: Callable[[], dict[str, Any]], cancelled: Callable[[], bool]) -> dict[str, Any]:
    """``call``, again after temporary errors (no answer, 5xx), for up to a few minutes."""
    delay = 0.5
    started = time.monotonic()
    while True:
        try:
            return call()
        except KfpApiError as e:
            if not e.temporary or cancelled() or time.monotonic() - started > _UNAVAILABLE_FOR:
                raise
            log.warning("KFP API: %s (retrying in %.1fs)", e, delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _plain(value: Any) -> Any:
    """A deep copy made of dicts, lists and scalars (the manifest may hold read-only maps)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _package_spec(package: bytes, path: Path) -> Mapping[str, Any]:
    """The pipeline spec of a compiled package (the first YAML document)."""
    try:
        docs = [d for d in yaml.safe_load_all(package.decode()) if d is not None]
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise KfpTemplateError(f"trialSpec.spec.pipelinePackage: {path} is not YAML: {e}") from e
    spec = docs[0] if docs else None
    if not isinstance(spec, Mapping) or "root" not in spec:
        raise KfpTemplateError(
            f"trialSpec.spec.pipelinePackage: {path} is not a compiled KFP pipeline (no root;"
            " compile it with kfp.compiler.Compiler().compile(pipeline, 'pipeline.yaml'))"
        )
    return spec


def _declared_parameters(pipeline_spec: Mapping[str, Any]) -> dict[str, str]:
    """Input parameter name → KFP type (``NUMBER_DOUBLE``, ...) of the pipeline's root."""
    root = pipeline_spec.get("root") if isinstance(pipeline_spec, Mapping) else None
    inputs = root.get("inputDefinitions") if isinstance(root, Mapping) else None
    params = inputs.get("parameters") if isinstance(inputs, Mapping) else None
    if not isinstance(params, Mapping):
        return {}
    return {
        str(k): str((v or {}).get("parameterType") or "")
        for k, v in params.items() if isinstance(v, Mapping | type(None))
    }


def _typed(name: str, value: Any, kfp_type: str | None) -> Any:
    """A substituted parameter (text) as the type the pipeline declares for it."""
    if not isinstance(value, str) or not kfp_type:
        return value
    try:
        if kfp_type == "NUMBER_DOUBLE":
            return float(value)
        if kfp_type == "NUMBER_INTEGER":
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kfp_type == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if kfp_type in ("LIST", "STRUCT"):
            return yaml.safe_load(value)
    except (ValueError, yaml.YAMLError) as e:
        raise KfpTemplateError(
            f"run parameter {name}: {value!r} is not a {kfp_type} as the pipeline declares"
        ) from e
    return value


def _metric_values(artifact: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The numbers an artifact holds, if it is a metrics artifact.

    KFP's Artifact message: a ``Metric`` artifact has ``name`` and ``number_value``; a
    ``system.Metrics`` artifact (``Output[Metrics]``, ``metrics.log_metric(...)``) keeps its
    values in ``metadata``.
    """
    kind = str(artifact.get("type") or artifact.get("artifact_type") or "")
    if kind not in _METRICS_TYPES:
        return []
    values: list[tuple[str, float]] = []
    if artifact.get("name") and _number(artifact.get("number_value")) is not None:
        values.append((str(artifact["name"]), float(artifact["number_value"])))
    metadata = artifact.get("metadata")
    if isinstance(metadata, Mapping):
        for key, raw in metadata.items():
            number = _number(raw)
            if number is not None and key != "display_name":
                values.append((str(key), number))
    return values


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        number = float(raw)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _run_error(run: Mapping[str, Any]) -> str:
    """KFP's reason for a failed run: the run's error, else its failed tasks' errors."""
    error = run.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])
    details = run.get("run_details") or {}
    messages = [
        f"task {t.get('display_name') or t.get('task_id')}: {t['error'].get('message')}"
        for t in details.get("task_details") or []
        if isinstance(t, Mapping) and isinstance(t.get("error"), Mapping)
        and t["error"].get("message")
    ]
    return "; ".join(messages) or "no error message"


def _time(stamp: Any) -> float | None:
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
