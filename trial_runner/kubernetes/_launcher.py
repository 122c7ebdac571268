"""Trials as cluster workloads: :class:`KubernetesLauncher`.

Each trial's rendered workload (any kind) is created through the dynamic client with the
trial's name, Katib's labels, owner references and the metrics collector
(:mod:`trial_runner.kubernetes._workload`). One :class:`ResourceWatcher` per kind and
namespace follows every trial workload there (one list, then a watch: no polling), and the
trial's ``successCondition`` / ``failureCondition`` are evaluated on each new version of its
object. The launcher reports ``TrialStarted`` once the object exists and one ``TrialEnded``
when a condition holds (``DeadlineExceeded`` from the failed condition's reason), when it is
killed (its workload deleted, pods through the garbage collector) or when someone else
deletes it. Finished workloads are deleted unless the template says ``retain``.

Retries are the workload's business (a Job's ``backoffLimit``), so the controller does not
retry (``retries_failures``); and workloads outlive the launcher, so a controller that stops
or dies leaves them running and the next one adopts them (:meth:`KubernetesLauncher.adopt`):
no trial runs twice.

Requests happen in a small pool of worker threads, so :meth:`launch` and :meth:`kill`
return at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from katib.errors import KatibError
from trial_runner._launch import (
    Ending,
    EventSink,
    KillReason,
    Launcher,
    TrialEnded,
    TrialLaunch,
    TrialStarted,
)
from trial_runner.kubernetes._api import KubeApi, KubeApiError, UnknownKindError
from trial_runner.kubernetes._conditions import ConditionSyntaxError, condition_met
from trial_runner.kubernetes._watch import ResourceWatcher
from trial_runner.kubernetes._workload import (
    TRIAL_LABEL,
    SidecarSettings,
    WorkloadError,
    prepare_workload,
)

__all__ = ["KubernetesLauncher", "LaunchHooks"]

log = logging.getLogger("katib.kubernetes")

#: Katib's conditions for a batch Job, used when a template gives none.
_JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
#: How long a launch waits for the watch of its kind to list once before creating anyway.
_SYNC_WAIT = 10.0
#: How long a trial waits for an older workload of its name to finish being deleted.
_TERMINATING_WAIT = 120.0
_CREATE_ATTEMPTS = 6


class LaunchHooks:
    """What a driver adds around each trial's workload; the default adds nothing.

    The operator creates the Trial resource that owns the workload, and has the Experiment
    own the push Secret, so that deleting an Experiment removes everything through the
    garbage collector. Both methods are called in a worker thread, before the workload is
    created; an exception makes the trial end NotStarted.
    """

    def owner_references(self, launch: TrialLaunch) -> list[dict[str, Any]]:
        """``metadata.ownerReferences`` of the trial's workload."""
        return []

    def secret_owner_references(self, launch: TrialLaunch) -> list[dict[str, Any]]:
        """Owner references of the experiment's push Secret (none: it stays)."""
        return []


@dataclass
class _Trial:
    launch: TrialLaunch
    sink: EventSink
    api_version: str
    kind: str
    uid: str = ""
    #: creating → running → ended
    state: str = "creating"
    running_since: float = 0.0
    #: The last watch event (type, object) seen while the trial was being created.
    pending: tuple[str, dict[str, Any]] | None = None
    kill_reason: KillReason | None = None
    kill_message: str = ""
    deadline: threading.Timer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def namespace(self) -> str:
        return self.launch.namespace

    @property
    def name(self) -> str:
        return self.launch.trial


class KubernetesLauncher(Launcher):
    """Runs trials as workloads on a Kubernetes cluster.

    Args:
        api: The connection (kubeconfig or in-cluster).
        sidecar: How the metrics-collector sidecar runs (its image).
        hooks: Owner references and Trial resources (the operator's).
        workers: Threads doing create and delete requests.
    """

    retries_failures = True
    workloads_outlive_controller = True

    def __init__(
        self,
        api: KubeApi,
        *,
        sidecar: SidecarSettings | None = None,
        hooks: LaunchHooks | None = None,
        workers: int = 4,
    ) -> None:
        self.api = api
        self.sidecar = sidecar or SidecarSettings()
        self.hooks = hooks or LaunchHooks()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="katib-k8s")
        self._lock = threading.Lock()
        self._trials: dict[str, _Trial] = {}
        self._watchers: dict[tuple[str, str, str], ResourceWatcher] = {}
        self._secrets: dict[tuple[str, str], str] = {}  # (namespace, name) → token written
        self._secret_locks: dict[tuple[str, str], threading.Lock] = {}
        self._closed = False

    # The launcher interface ------------------------------------------------------------------

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        api_version = str(launch.manifest.get("apiVersion") or "")
        kind = str(launch.manifest.get("kind") or "")
        trial = _Trial(launch, sink, api_version, kind)
        with self._lock:
            self._trials[launch.trial] = trial
        self._pool.submit(self._guarded, self._create, trial)

    def adopt(self, launch: TrialLaunch, sink: EventSink) -> bool:
        api_version = str(launch.manifest.get("apiVersion") or "")
        kind = str(launch.manifest.get("kind") or "")
        try:
            obj = self.api.get(api_version, kind, launch.namespace, launch.trial)
        except (KubeApiError, UnknownKindError) as e:
            log.warning("cannot adopt trial %s/%s: %s", launch.namespace, launch.trial, e)
            return False
        if obj is None or not _ours(obj, launch.trial) or _terminating(obj):
            return False
        trial = _Trial(launch, sink, api_version, kind)
        trial.uid = str(obj["metadata"].get("uid", ""))
        trial.state = "running"
        trial.running_since = time.monotonic()
        with self._lock:
            self._trials[launch.trial] = trial
        self._arm_deadline(trial, obj)
        self._ensure_watcher(api_version, kind, launch.namespace)
        log.info("adopted the %s of trial %s/%s", kind, launch.namespace, launch.trial)
        self._evaluate(trial, obj)
        return True

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        with self._lock:
            found = self._trials.get(trial)
        if found is None:
            return
        with found.lock:
            if found.state == "ended":
                return
            if found.kill_reason is None:
                found.kill_reason, found.kill_message = reason, message
            creating = found.state == "creating"
        if not creating:  # a trial being created is deleted as soon as it exists
            self._pool.submit(self._guarded, self._delete_killed, found)

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        with self._lock:
            trials = list(self._trials.values())
        for trial in trials:
            self.kill(trial.name, reason)
        deadline = time.monotonic() + wait
        for trial in trials:
            trial.ended.wait(max(0.0, deadline - time.monotonic()))

    def read_config_map(self, namespace: str, name: str, key: str) -> str:
        try:
            obj = self.api.get("v1", "ConfigMap", namespace, name)
        except KubeApiError as e:
            raise KatibError(f"cannot read ConfigMap {namespace}/{name}: {e}") from e
        if obj is None:
            raise KatibError(
                f"spec.trialTemplate.configMap: ConfigMap {namespace}/{name} does not exist"
            )
        data = obj.get("data") or {}
        if key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise KatibError(
                f"spec.trialTemplate.configMap.templatePath: ConfigMap {namespace}/{name}"
                f" has no key {key!r} (keys: {keys})"
            )
        return str(data[key])

    def close(self) -> None:
        """Stop watching; workloads keep running (another launcher may adopt them)."""
        self._closed = True
        with self._lock:
            watchers = list(self._watchers.values())
            trials = list(self._trials.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        for trial in trials:
            if trial.deadline is not None:
                trial.deadline.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def active(self) -> list[str]:
        """Names of the trials this launcher follows."""
        with self._lock:
            return list(self._trials)

    # Creating --------------------------------------------------------------------------------

    def _create(self, trial: _Trial) -> None:
        launch = trial.launch
        if trial.kill_reason is not None:
            self._end(trial, _killed(trial))
            return
        try:
            self.api.resource(trial.api_version, trial.kind)
            self._ensure_watcher(trial.api_version, trial.kind, trial.namespace)
            owners = self.hooks.owner_references(launch)
            secret = self._push_secret(launch)
            body = prepare_workload(
                launch, sidecar=self.sidecar, owner_references=owners, push_secret=secret
            )
        except UnknownKindError as e:
            self._not_started(trial, "UnknownKind", str(e))
            return
        except WorkloadError as e:
            self._not_started(trial, "MetricsCollectorError", str(e))
            return
        except KubeApiError as e:
            self._not_started(trial, e.reason or "ApiError", f"cannot prepare the trial: {e}")
            return
        except KatibError as e:
            self._not_started(trial, "InvalidTrialTemplate", str(e))
            return
        created = self._create_object(trial, body)
        if created is None:
            return
        with trial.lock:
            if not trial.uid:
                trial.uid = str(created["metadata"].get("uid", ""))
            trial.state = "running"
            trial.running_since = time.monotonic()
            pending, trial.pending = trial.pending, None
            killed = trial.kill_reason is not None
        trial.sink(TrialStarted(launch.trial, _created_at(created)))
        self._arm_deadline(trial, created)
        if killed:
            self._delete_killed(trial)
            return
        if pending is not None and pending[1]["metadata"].get("uid") == trial.uid:
            if pending[0] == "DELETED":  # deleted before the create call returned
                self._deleted(trial)
            else:
                self._evaluate(trial, pending[1])

    def _create_object(self, trial: _Trial, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create the workload; on a name already taken by this trial's own workload (a
        controller died after creating it), take that one. None: the trial has ended."""
        delay = 0.5
        waited_since: float | None = None
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                return self.api.create(body, trial.namespace)
            except KubeApiError as e:
                if e.status == 409:
                    existing = self._existing(trial)
                    if existing is None:
                        continue  # gone meanwhile: create again
                    if _terminating(existing):
                        waited_since = waited_since or time.monotonic()
                        if time.monotonic() - waited_since < _TERMINATING_WAIT:
                            time.sleep(1.0)
                            continue
                    if _ours(existing, trial.name) and not _terminating(existing):
                        log.info("trial %s/%s: its %s exists already; following it",
                                 trial.namespace, trial.name, trial.kind)
                        return existing
                    self._not_started(
                        trial, "AlreadyExists",
                        f"a {trial.kind} named {trial.name} exists and is not this trial's",
                    )
                    return None
                if e.temporary and attempt + 1 < _CREATE_ATTEMPTS:
                    time.sleep(delay)
                    delay *= 2
                    continue
                self._not_started(
                    trial, e.reason or "ApiError", f"cannot create the {trial.kind}: {e}"
                )
                return None
        self._not_started(trial, "ApiError", f"cannot create the {trial.kind}")
        return None

    def _existing(self, trial: _Trial) -> dict[str, Any] | None:
        return self.api.get(trial.api_version, trial.kind, trial.namespace, trial.name)

    def _push_secret(self, launch: TrialLaunch) -> str | None:
        """The Secret that holds the experiment's push token (created or updated once)."""
        token = launch.push_env.get("KATIB_API_TOKEN")
        if not token or not launch.push_env.get("KATIB_API_URL"):
            return None
        name = f"katib-push-{launch.experiment}"
        key = (launch.namespace, name)
        with self._lock:
            if self._secrets.get(key) == token:
                return name
            lock = self._secret_locks.setdefault(key, threading.Lock())
        with lock:  # the first trials of an experiment start together: one writes it
            with self._lock:
                if self._secrets.get(key) == token:
                    return name
            self._write_secret(launch, name, token)
            with self._lock:
                self._secrets[key] = token
        return name

    def _write_secret(self, launch: TrialLaunch, name: str, token: str) -> None:
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": {"katib.kubeflow.org/experiment": launch.experiment},
            },
            "type": "Opaque",
            "stringData": {"token": token},
        }
        owners = self.hooks.secret_owner_references(launch)
        if owners:
            body["metadata"]["ownerReferences"] = owners
        try:
            self.api.create(body, launch.namespace)
        except KubeApiError as e:
            if e.status != 409:
                raise
            self.api.patch("v1", "Secret", launch.namespace, name, {"stringData": {"token": token}})

    # Watching --------------------------------------------------------------------------------

    def _ensure_watcher(self, api_version: str, kind: str, namespace: str) -> None:
        """Start following the kind in the namespace, and wait (bounded) for the first list:
        a workload created after it is seen by the watch from its birth to its deletion."""
        key = (api_version, kind, namespace)
        started = False
        with self._lock:
            watcher = self._watchers.get(key)
            if watcher is None:
                if self._closed:
                    return
                watcher = ResourceWatcher(
                    self.api,
                    api_version,
                    kind,
                    namespace,
                    label_selector=TRIAL_LABEL,
                    on_event=self._on_event,
                    on_relist=lambda present, at: self._on_relist(key, present, at),
                )
                self._watchers[key] = watcher
                started = True
        if started:
            watcher.start()
        watcher.wait_synced(_SYNC_WAIT)  # outside the lock: the watcher's callbacks take it

    def watcher(self, api_version: str, kind: str, namespace: str) -> ResourceWatcher | None:
        with self._lock:
            return self._watchers.get((api_version, kind, namespace))

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = (meta.get("labels") or {}).get(TRIAL_LABEL) or meta.get("name")
        with self._lock:
            trial = self._trials.get(str(name))
        if trial is None or meta.get("namespace") != trial.namespace or (
            obj.get("kind") not in (None, trial.kind)
        ):
            return
        uid = meta.get("uid")
        with trial.lock:
            if trial.state == "ended":
                return
            if trial.state == "creating":
                trial.pending = (kind, obj)
                return
            if trial.uid and uid != trial.uid:
                return  # an older object of the same name
        if kind == "DELETED":
            self._deleted(trial)
            return
        self._evaluate(trial, obj)

    def _on_relist(
        self, key: tuple[str, str, str], present: set[tuple[str, str]], listed_at: float
    ) -> None:
        """Trials whose workload vanished while the watch was away."""
        with self._lock:
            trials = [
                t for t in self._trials.values()
                if (t.api_version, t.kind, t.namespace) == key and t.state == "running"
                and t.running_since < listed_at and (t.namespace, t.name) not in present
            ]
        for trial in trials:
            self._deleted(trial)

    def _deleted(self, trial: _Trial) -> None:
        if trial.kill_reason is not None:
            self._end(trial, _killed(trial))
            return
        self._end(
            trial,
            TrialEnded(
                trial.name,
                Ending.FAILED,
                f"the {trial.kind} {trial.namespace}/{trial.name} was deleted before it"
                " finished",
            ),
        )

    def _evaluate(self, trial: _Trial, obj: dict[str, Any]) -> None:
        launch = trial.launch
        success = launch.success_condition or _JOB_SUCCESS
        failure = launch.failure_condition or _JOB_FAILURE
        try:
            failed = condition_met(obj, failure)
            succeeded = None if failed else condition_met(obj, success)
        except ConditionSyntaxError as e:
            self._finish(trial, TrialEnded(trial.name, Ending.FAILED, str(e)))
            return
        if failed is not None:
            ending = Ending.DEADLINE_EXCEEDED if failed.reason == "DeadlineExceeded" else (
                Ending.FAILED
            )
            what = ": ".join(p for p in (failed.reason, failed.message) if p)
            message = f"{trial.kind} {trial.name} failed" + (f": {what}" if what else "")
            self._finish(trial, TrialEnded(trial.name, ending, message))
        elif succeeded is not None:
            what = ": ".join(p for p in (succeeded.reason, succeeded.message) if p)
            message = f"{trial.kind} {trial.name} succeeded" + (f": {what}" if what else "")
            self._finish(trial, TrialEnded(trial.name, Ending.COMPLETED, message, exit_code=0))

    def _finish(self, trial: _Trial, event: TrialEnded) -> None:
        """The workload ended by itself: report it, then remove it unless retained."""
        if trial.kill_reason is not None:
            event = _killed(trial)
        if not self._end(trial, event):
            return
        if not trial.launch.retain:
            self._pool.submit(self._guarded, self._delete, trial)

    # Ending ----------------------------------------------------------------------------------

    def _end(self, trial: _Trial, event: TrialEnded) -> bool:
        """Report the trial's one TrialEnded; False if it had ended already."""
        with trial.lock:
            if trial.state == "ended":
                return False
            trial.state = "ended"
        if trial.deadline is not None:
            trial.deadline.cancel()
        with self._lock:
            if self._trials.get(trial.name) is trial:
                del self._trials[trial.name]
        trial.ended.set()
        trial.sink(event)
        return True

    def _not_started(self, trial: _Trial, reason: str, message: str) -> None:
        log.warning("trial %s/%s did not start: %s", trial.namespace, trial.name, message)
        self._end(trial, TrialEnded(trial.name, Ending.NOT_STARTED, message, reason=reason))

    def _delete(self, trial: _Trial) -> bool:
        return self.api.delete(
            trial.api_version, trial.kind, trial.namespace, trial.name, uid=trial.uid or None
        )

    def _delete_killed(self, trial: _Trial) -> None:
        try:
            self._delete(trial)
        finally:
            self._end(trial, _killed(trial))

    def _arm_deadline(self, trial: _Trial, obj: Mapping[str, Any]) -> None:
        """``spec.activeDeadlineSeconds`` of kinds whose controller does not enforce it.

        A batch Job's controller does (and says ``DeadlineExceeded``); Kubeflow's training
        jobs enforce ``spec.runPolicy.activeDeadlineSeconds``; for any other kind with a
        ``spec.activeDeadlineSeconds`` the launcher deletes the workload when it expires.
        """
        if trial.kind == "Job" and trial.api_version == "batch/v1":
            return
        spec = obj.get("spec")
        seconds = spec.get("activeDeadlineSeconds") if isinstance(spec, Mapping) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            return
        started = _created_at(obj)
        left = max(0.0, started + float(seconds) - time.time())
        timer = threading.Timer(left, self._expire, args=(trial, float(seconds)))
        timer.daemon = True
        trial.deadline = timer
        timer.start()

    def _expire(self, trial: _Trial, seconds: float) -> None:
        with trial.lock:
            if trial.state != "running" or trial.kill_reason is not None:
                return
        try:
            self._delete(trial)
        finally:
            self._end(
                trial,
                TrialEnded(
                    trial.name,
                    Ending.DEADLINE_EXCEEDED,
                    f"{trial.kind} {trial.name} ran longer than activeDeadlineSeconds"
                    f" ({seconds:g}s) and was deleted",
                ),
            )

    def _guarded(self, func: Callable[[_Trial], Any], trial: _Trial) -> None:
        try:
            func(trial)
        except Exception as e:  # noqa: BLE001 - a worker must never die silently
            log.exception("trial %s/%s: %s failed", trial.namespace, trial.name, func.__name__)
            if trial.state == "creating":
                self._not_started(trial, "LauncherError", f"{type(e).__name__}: {e}")


def _killed(trial: _Trial) -> TrialEnded:
    reason = trial.kill_reason or KillReason.USER
    return TrialEnded(
        trial.name,
        Ending.KILLED,
        trial.kill_message or f"{trial.kind} {trial.name} was deleted: {reason.value}",
        kill_reason=reason,
    )


def _ours(obj: Mapping[str, Any], trial: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(TRIAL_LABEL) == trial)


def _terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _created_at(obj: Mapping[str, Any]) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
