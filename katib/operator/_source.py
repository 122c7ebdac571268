"""Experiment custom resources as a source of experiments for the controller loop.

:class:`ExperimentCache` follows the Experiment resources (one list, then a watch, in its own
thread) and notes which ones have a new ``metadata.generation`` (a spec change: status
writes do not bump it) or were deleted. :class:`CustomResourceExperiments` is the
:class:`~katib.controller.ExperimentSource` of the loop: at each scan it brings the database
(the operator's state store) in line with the resources, in the loop's own thread:

* a new Experiment is validated with Katib's admission rules; an invalid one gets a
  ``Failed`` condition (reason ``InvalidSpec``) and a Warning Event that name every bad
  field, and is looked at again when its spec changes; a valid one is stored and run;
* an edit of ``maxTrialCount``, ``parallelTrialCount`` or ``maxFailedTrialCount`` (``kubectl
  edit/patch``) is applied at once (a larger ``maxTrialCount`` restarts a finished
  experiment whose ``resumePolicy`` allows it); other edits are refused with an Event, as
  Katib's webhook refuses them;
* a deleted Experiment is stopped and removed from the database; its trials and workloads
  are removed by the garbage collector (owner references).

It hands the loop every unfinished experiment of a live resource that the loop does not
drive yet. The operator holds the leader Lease, so a previous owner recorded in the
database is gone (killed or no longer leader) and its experiments are taken over; their
running trials are adopted, not run again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from katib.controller import ControllerLoop, ExperimentSource
from katib.errors import ConflictError, InvalidExperimentError, KatibError, NotFoundError
from katib.operator._resources import API_VERSION, emit_event
from katib.operator._status import StatusWriter
from katib.records import Condition, ExperimentRecord
from katib.service import apply_budget, delete_experiment, restart_experiment
from katib.spec import Experiment, parse_experiment, validate_restart
from katib.storage import Storage
from trial_runner.kubernetes import KubeApi, KubeApiError, ResourceWatcher

log = logging.getLogger("katib.operator")

Key = tuple[str, str]
#: How often every experiment's status is compared with the database again.
RESYNC_SECONDS = 10.0


class ExperimentCache:
    """The Experiment resources of a namespace (None: all), kept current by a watch."""

    def __init__(self, api: KubeApi, namespace: str | None) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Key, dict[str, Any]] = {}
        self._changed: set[Key] = set()
        self._deleted: dict[Key, str] = {}
        self.watcher = ResourceWatcher(
            api, API_VERSION, "Experiment", namespace, label_selector=None,
            on_event=self._on_event, on_relist=self._on_relist,
        )

    def start(self) -> None:
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def synced(self, timeout: float = 0.0) -> bool:
        return self.watcher.wait_synced(timeout)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._objects)

    def touch(self, key: Key) -> None:
        """Report ``key`` as changed at the next :meth:`take_changes` (if it exists)."""
        with self._lock:
            if key in self._objects:
                self._changed.add(key)

    def take_changes(self) -> tuple[set[Key], dict[Key, str]]:
        """Keys whose spec changed (or that appeared), and deleted keys with their uid."""
        with self._lock:
            changed, deleted = self._changed, self._deleted
            self._changed, self._deleted = set(), {}
            return changed, deleted

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        with self._lock:
            if kind == "DELETED":
                old = self._objects.pop(key, None)
                if old is not None:
                    self._deleted[key] = str(meta.get("uid"))
                    self._changed.discard(key)
                return
            old = self._objects.get(key)
            self._objects[key] = obj
            if old is not None and (old["metadata"].get("uid") != meta.get("uid")):
                self._deleted[key] = str(old["metadata"].get("uid"))
            if old is None or old["metadata"].get("generation") != meta.get("generation") or (
                old["metadata"].get("uid") != meta.get("uid")
            ):
                self._changed.add(key)

    def _on_relist(self, present: set[Key], listed_at: float) -> None:
        """Experiments deleted while the watch was away (after a 410)."""
        with self._lock:
            for key in set(self._objects) - present:
                obj = self._objects.pop(key)
                self._deleted[key] = str(obj["metadata"].get("uid"))


def resource_uid(record: ExperimentRecord) -> str | None:
    """The uid of the Experiment resource a stored experiment came from, if any."""
    extra = record.spec.metadata.model_extra or {}
    uid = extra.get("uid")
    return str(uid) if uid else None


class CustomResourceExperiments(ExperimentSource):
    """The loop's experiments: the Experiment resources, kept in the database.

    Args:
        storage: The operator's database.
        cache: The watched Experiment resources.
        status: Writes their status.
        api: For Events and status of invalid resources.
    """

    finite = False

    def __init__(
        self, storage: Storage, cache: ExperimentCache, status: StatusWriter, api: KubeApi
    ) -> None:
        self.storage = storage
        self.cache = cache
        self.status = status
        self.api = api
        self._seen: dict[Key, tuple[str, Any]] = {}  # (uid, generation) handled
        self._ids: dict[Key, int] = {}  # experiment id of each live resource
        self._removing: dict[int, Key] = {}  # stopped runs to delete once they ended
        self._started = False
        self._next_resync = 0.0
        self._rescan = True  # look for experiments to drive at the next scan

    def take(self, loop: ControllerLoop) -> list[ExperimentRecord]:
        if not self.cache.synced():
            return []
        if not self._started:
            self._started = True
            self._forget_vanished(loop)
        changed, deleted = self.cache.take_changes()
        for key, uid in deleted.items():
            self._deleted(loop, key, uid)
        for key in sorted(changed):
            try:
                self._changed(loop, key)
            except Exception:  # noqa: BLE001 - one bad resource must not stop the others
                log.exception("experiment %s/%s: cannot be handled", *key)
        self._remove_stopped(loop)
        if time.monotonic() >= self._next_resync:
            self._next_resync = time.monotonic() + RESYNC_SECONDS
            self._rescan = True
            for key, experiment_id in self._ids.items():
                self.status.mark(*key, experiment_id)
        if not self._rescan:
            return []  # the database is read when something changed, not every second
        self._rescan = False
        return self._to_drive(loop)

    def mark(self, record: ExperimentRecord) -> None:
        self.status.mark(record.namespace, record.name, record.id)

    # Changes ---------------------------------------------------------------------------------

    def _changed(self, loop: ControllerLoop, key: Key) -> None:
        obj = self.cache.get(*key)
        if obj is None:
            return
        meta = obj["metadata"]
        handled = (str(meta.get("uid")), meta.get("generation"))
        if self._seen.get(key) == handled:
            return
        try:
            exp = parse_resource(obj)
        except InvalidExperimentError as e:
            self._seen[key] = handled
            self._invalid(obj, e)
            return
        try:
            record: ExperimentRecord | None = self.storage.get_experiment(*key)
        except NotFoundError:
            record = None
        if record is not None and resource_uid(record) != handled[0]:
            # The database holds an older Experiment of this name, deleted meanwhile.
            if loop.drives(record.id):
                self._stop(loop, record, key)
                return  # handled again once that run has ended
            delete_experiment(self.storage, record)
            record = None
        if record is None:
            record = self.storage.create_experiment(exp)
            log.info("experiment %s/%s: stored, to run", *key)
            self.status.revive(*key)
        else:
            self._edited(loop, obj, record, exp)
        self._seen[key] = handled
        self._ids[key] = record.id
        self._rescan = True
        self.status.mark(*key, record.id)

    def _edited(
        self, loop: ControllerLoop, obj: Mapping[str, Any], record: ExperimentRecord,
        exp: Experiment,
    ) -> None:
        """``kubectl edit/patch`` of a stored experiment: counts apply, the rest is refused."""
        problems = [
            e for e in validate_restart(record.spec, exp, 0) if e.path != "spec.maxTrialCount"
        ]
        if problems:
            # Katib's webhook would refuse the whole edit; here the resource has it already,
            # so the counts still apply and the rest is ignored, with an Event saying so.
            message = "; ".join(str(p) for p in problems)
            emit_event(self.api, obj, "Warning", "SpecChangeRefused",
                       f"only the trial counts may change; ignored: {message}")
            log.warning("experiment %s/%s: edit ignored: %s", record.namespace, record.name,
                        message)
        new, old = exp.spec, record.spec.spec
        counts = {
            "max_trial_count": new.max_trial_count,
            "parallel_trial_count": new.parallel_trial_count,
            "max_failed_trial_count": new.max_failed_trial_count,
        }
        if counts == {
            "max_trial_count": old.max_trial_count,
            "parallel_trial_count": old.parallel_trial_count,
            "max_failed_trial_count": old.max_failed_trial_count,
        }:
            return
        try:
            if record.condition.is_finished:
                grew = (new.max_trial_count or 0) > (old.max_trial_count or 0)
                if not grew:
                    apply_budget(self.storage, record, **counts)
                    return
                restart_experiment(self.storage, record, **counts)
                emit_event(self.api, obj, "Normal", "ExperimentRestarting",
                           f"maxTrialCount raised to {new.max_trial_count}: restarting")
            else:
                apply_budget(self.storage, record, **counts)
                loop.refresh(record.id)
                emit_event(self.api, obj, "Normal", "BudgetChanged",
                           f"maxTrialCount={new.max_trial_count}, parallelTrialCount="
                           f"{new.parallel_trial_count}, maxFailedTrialCount="
                           f"{new.max_failed_trial_count}")
        except (ConflictError, InvalidExperimentError) as e:
            emit_event(self.api, obj, "Warning", "SpecChangeRefused", str(e))

    def _invalid(self, obj: Mapping[str, Any], error: InvalidExperimentError) -> None:
        lines = [str(e) for e in error.errors]
        message = "invalid Experiment: " + "; ".join(lines)
        meta = obj["metadata"]
        log.warning("experiment %s/%s: %s", meta.get("namespace"), meta.get("name"), message)
        emit_event(self.api, obj, "Warning", "InvalidSpec", message)
        try:
            stored = self.storage.get_experiment(str(meta.get("namespace")), str(meta.get("name")))
        except NotFoundError:
            stored = None
        if stored is not None and resource_uid(stored) == str(meta.get("uid")):
            return  # a running experiment keeps its last valid spec; the Event says why
        now = time.time()
        conditions = [
            Condition("Created", "True", "ExperimentCreated", "Experiment is created", now),
            Condition("Failed", "True", "InvalidSpec", message, now),
        ]
        status = {
            "conditions": [
                {**c.to_json(), "lastUpdateTime": c.to_json()["lastTransitionTime"]}
                for c in conditions
            ],
        }
        try:
            self.api.patch(API_VERSION, "Experiment", str(meta.get("namespace")),
                           str(meta.get("name")), {"status": status}, subresource="status")
        except KubeApiError as e:
            log.warning("cannot write the status of an invalid experiment: %s", e)

    # Deletions -------------------------------------------------------------------------------

    def _deleted(self, loop: ControllerLoop, key: Key, uid: str) -> None:
        self._seen.pop(key, None)
        self._ids.pop(key, None)
        self.status.forget(*key)
        try:
            record = self.storage.get_experiment(*key)
        except NotFoundError:
            return
        if resource_uid(record) != uid:
            return
        log.info("experiment %s/%s was deleted: stopping it", *key)
        if loop.drives(record.id):
            self._stop(loop, record, key)
        else:
            delete_experiment(self.storage, record)

    def _stop(self, loop: ControllerLoop, record: ExperimentRecord, key: Key) -> None:
        self.storage.update_experiment(record.id, stop_requested=True)
        loop.refresh(record.id)
        self._removing[record.id] = key

    def _remove_stopped(self, loop: ControllerLoop) -> None:
        for experiment_id, key in list(self._removing.items()):
            if loop.drives(experiment_id):
                continue
            del self._removing[experiment_id]
            try:
                record = self.storage.get_experiment_by_id(experiment_id)
            except NotFoundError:
                continue
            delete_experiment(self.storage, record)
            self.cache_changed(key)
            self._rescan = True

    def cache_changed(self, key: Key) -> None:
        """Look at a resource again at the next scan (a new one may have taken the name)."""
        self._seen.pop(key, None)
        self.cache.touch(key)

    def _forget_vanished(self, loop: ControllerLoop) -> None:
        """Experiments stored from resources deleted while no operator ran."""
        live = {
            key: str((obj or {}).get("metadata", {}).get("uid"))
            for key in self.cache.keys()
            if (obj := self.cache.get(*key)) is not None
        }
        scope = self.cache.watcher.namespace
        for record in self.storage.list_experiments(scope):
            uid = resource_uid(record)
            if uid is None:
                continue  # not made from a resource (katib run or a server on this database)
            if live.get((record.namespace, record.name)) != uid:
                log.info("experiment %s/%s: its resource is gone; removing it",
                         record.namespace, record.name)
                delete_experiment(self.storage, record)

    # What the loop drives --------------------------------------------------------------------

    def _to_drive(self, loop: ControllerLoop) -> list[ExperimentRecord]:
        out = []
        driven_ids = set(self._ids.values())
        for experiment_id, _, _ in self.storage.unfinished_experiments():
            if experiment_id not in driven_ids or loop.drives(experiment_id):
                continue
            if experiment_id in self._removing:
                continue
            record = self.storage.get_experiment_by_id(experiment_id)
            if self.cache.get(record.namespace, record.name) is None:
                continue
            out.append(record)
        return out


def parse_resource(obj: Mapping[str, Any]) -> Experiment:
    """The experiment of an Experiment resource, defaulted and validated.

    Only identity is kept of its metadata (name, namespace, uid, labels, annotations):
    resourceVersion, managedFields and the like change without the experiment changing.

    Raises:
        InvalidExperimentError: every problem, with its field path.
    """
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "labels", "annotations")
            if meta.get(k) is not None}
    document = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": kept,
        "spec": obj.get("spec") or {},
    }
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    try:
        return parse_experiment(document, source=where)
    except InvalidExperimentError:
        raise
    except KatibError as e:  # pragma: no cover - parse_experiment raises only the above
        raise InvalidExperimentError([], str(e)) from e
