"""Katib-compatible status of Experiment and Trial resources, and the thread that writes it.

The database is the operator's state store (trials, observation logs, algorithm state, as
Katib keeps observation logs in its own database); the custom resources show that state as
Katib's controllers do: an Experiment's ``status.conditions``, trial counts (``trials``,
``trialsSucceeded``, ...), per-state trial name lists and ``currentOptimalTrial``
(``bestTrialName``, ``parameterAssignments``, ``observation.metrics`` with string values);
a Trial's conditions, start and completion times and observation. Kubeflow's Katib SDK
reads them as it reads Katib's.

:class:`StatusWriter` runs in a thread of its own so that the controller loop never waits
on the apiserver: the loop marks experiments dirty and queues trial statuses; the writer
coalesces them (an experiment at most once per ``interval``; a trial's Running and final
status into one request when both are pending) and patches the status subresource only
when it changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from katib._time import rfc3339
from katib.controller import best_trial
from katib.errors import NotFoundError
from katib.records import Condition, ExperimentRecord, MetricSummary, TrialRecord, TrialState
from katib.storage import Storage
from trial_runner.kubernetes import KubeApi, KubeApiError

log = logging.getLogger("katib.operator")

API_VERSION = "kubeflow.org/v1beta1"

#: Katib's trial condition types for each state (a finished trial's last condition).
TRIAL_CONDITION = {
    TrialState.CREATED: "Created",
    TrialState.RUNNING: "Running",
    TrialState.SUCCEEDED: "Succeeded",
    TrialState.FAILED: "Failed",
    TrialState.KILLED: "Killed",
    TrialState.EARLY_STOPPED: "EarlyStopped",
    TrialState.METRICS_UNAVAILABLE: "MetricsUnavailable",
}
#: Katib's names of the per-state trial lists in an Experiment's status.
TRIAL_LISTS = {
    TrialState.CREATED: "pendingTrialList",
    TrialState.RUNNING: "runningTrialList",
    TrialState.SUCCEEDED: "succeededTrialList",
    TrialState.FAILED: "failedTrialList",
    TrialState.KILLED: "killedTrialList",
    TrialState.EARLY_STOPPED: "earlyStoppedTrialList",
    TrialState.METRICS_UNAVAILABLE: "metricsUnavailableTrialList",
}


def _metric_json(m: MetricSummary) -> dict[str, str]:
    # Katib's Metric has string values (it keeps them as the trial printed them).
    if m.text is not None:  # Katib's UnavailableMetricValue where a text has no min or max
        return {"name": m.name, "min": "unavailable", "max": "unavailable", "latest": m.text}
    return {"name": m.name, "min": _num(m.min), "max": _num(m.max), "latest": _num(m.latest)}


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else f"{value:g}"


def _condition_json(c: Condition) -> dict[str, Any]:
    out = c.to_json()
    out["lastUpdateTime"] = out["lastTransitionTime"]
    return out


def experiment_status(
    record: ExperimentRecord, trials: list[TrialRecord], best: TrialRecord | None
) -> dict[str, Any]:
    """The ``status`` of an Experiment resource, as Katib writes it."""
    counts: dict[TrialState, int] = {}
    lists: dict[str, list[str]] = {name: [] for name in TRIAL_LISTS.values()}
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
        lists[TRIAL_LISTS[t.state]].append(t.name)
    status: dict[str, Any] = {
        "conditions": [_condition_json(c) for c in record.conditions],
        "trials": len(trials),
        "trialsPending": counts.get(TrialState.CREATED, 0),
        "trialsRunning": counts.get(TrialState.RUNNING, 0),
        "trialsSucceeded": counts.get(TrialState.SUCCEEDED, 0),
        "trialsFailed": counts.get(TrialState.FAILED, 0),
        "trialsKilled": counts.get(TrialState.KILLED, 0),
        "trialsEarlyStopped": counts.get(TrialState.EARLY_STOPPED, 0),
        "trialMetricsUnavailable": counts.get(TrialState.METRICS_UNAVAILABLE, 0),
        # Written as a JSON merge patch: null removes a list that became empty.
        **{name: sorted(names) or None for name, names in lists.items()},
        "startTime": rfc3339(record.started_at) if record.started_at is not None else None,
        "completionTime": (
            rfc3339(record.completed_at) if record.completed_at is not None else None
        ),
    }
    if best is not None:
        status["currentOptimalTrial"] = {
            "bestTrialName": best.name,
            "parameterAssignments": [
                {"name": k, "value": v} for k, v in best.assignments.items()
            ],
            "observation": {"metrics": [_metric_json(m) for m in best.metrics.values()]},
        }
    else:
        status["currentOptimalTrial"] = {
            "bestTrialName": "",
            "parameterAssignments": [],
            "observation": {"metrics": []},
        }
    return status


def trial_status(trial: TrialRecord) -> dict[str, Any]:
    """The ``status`` of a Trial resource: Created, Running, then how it ended."""
    created = trial.created_at or time.time()
    conditions = [
        {"type": "Created", "status": "True", "reason": "TrialCreated",
         "message": "Trial is created", "lastUpdateTime": rfc3339(created),
         "lastTransitionTime": rfc3339(created)},
    ]
    if trial.state != TrialState.CREATED:
        started = trial.started_at or created
        running = "True" if trial.state == TrialState.RUNNING else "False"
        conditions.append(
            {"type": "Running", "status": running, "reason": "TrialRunning",
             "message": "Trial is running", "lastUpdateTime": rfc3339(started),
             "lastTransitionTime": rfc3339(started)}
        )
    if trial.state.is_finished:
        ended = trial.completed_at or time.time()
        conditions.append(
            {"type": TRIAL_CONDITION[trial.state], "status": "True", "reason": trial.reason,
             "message": trial.message, "lastUpdateTime": rfc3339(ended),
             "lastTransitionTime": rfc3339(ended)}
        )
    status: dict[str, Any] = {"conditions": conditions}
    if trial.started_at is not None:
        status["startTime"] = rfc3339(trial.started_at)
    if trial.completed_at is not None:
        status["completionTime"] = rfc3339(trial.completed_at)
    if trial.metrics:
        status["observation"] = {"metrics": [_metric_json(m) for m in trial.metrics.values()]}
    return status


class StatusWriter:
    """Writes Experiment and Trial status in a thread of its own.

    Args:
        api: The connection.
        storage: Where experiment state is read from.
        interval: Least time between two status writes of one experiment.
    """

    def __init__(self, api: KubeApi, storage: Storage, *, interval: float = 1.0) -> None:
        self.api = api
        self.storage = storage
        self.interval = interval
        self._lock = threading.Condition()
        self._dirty: dict[tuple[str, str], int] = {}  # (ns, name) → experiment id
        self._trials: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_write: dict[tuple[str, str], float] = {}
        self._gone: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="katib-status")
        self.on_error: Callable[[str], None] = lambda message: None

    # From other threads ----------------------------------------------------------------------

    def mark(self, namespace: str, name: str, experiment_id: int) -> None:
        """The experiment's status may have changed: write it soon."""
        with self._lock:
            self._dirty[(namespace, name)] = experiment_id
            self._lock.notify()

    def trial(self, trial: TrialRecord) -> None:
        """Write a trial's status (the latest one wins if several are pending)."""
        body = trial_status(trial)
        with self._lock:
            key = (trial.namespace, trial.name)
            self._trials[key] = body
            self._trials.move_to_end(key)
            self._lock.notify()

    def forget(self, namespace: str, name: str) -> None:
        """The Experiment resource is gone: write nothing more for it."""
        with self._lock:
            self._gone.add((namespace, name))
            self._dirty.pop((namespace, name), None)
            self._written.pop((namespace, name), None)

    def revive(self, namespace: str, name: str) -> None:
        """A new Experiment resource took the name."""
        with self._lock:
            self._gone.discard((namespace, name))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="katib-status", daemon=True)
        self._thread.start()

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread, after writing what is pending when ``flush``."""
        if flush:
            self.flush(timeout)
        self._stop.set()
        with self._lock:
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def flush(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._dirty and not self._trials:
                    return
                self._lock.notify()
            time.sleep(0.05)

    # The writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._trials and not self._due():
                    self._lock.wait(timeout=self._wait_time())
                trials = list(self._trials.items())
                self._trials.clear()
                now = time.monotonic()
                due = {
                    k: v for k, v in self._dirty.items()
                    if now - self._last_write.get(k, 0.0) >= self.interval
                }
                for key in due:
                    del self._dirty[key]
                gone = set(self._gone)
            # Trial statuses of one batch go out in parallel (the apiserver's latency, not
            # our CPU, bounds a single thread); a trial's next status waits for the next batch.
            list(self._pool.map(lambda item: self._patch_trial(item[0][0], item[0][1], item[1]),
                                trials))
            for (namespace, name), experiment_id in due.items():
                if (namespace, name) not in gone:
                    self._write_experiment(namespace, name, experiment_id)

    def _due(self) -> bool:
        now = time.monotonic()
        return any(now - self._last_write.get(k, 0.0) >= self.interval for k in self._dirty)

    def _wait_time(self) -> float:
        if not self._dirty:
            return 1.0
        now = time.monotonic()
        return max(0.01, min(self.interval - (now - self._last_write.get(k, 0.0))
                             for k in self._dirty))

    def _patch_trial(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        try:
            self.api.patch(API_VERSION, "Trial", namespace, name, {"status": body},
                           subresource="status")
        except KubeApiError as e:
            if e.status != 404:  # a trial never created (not launched), or deleted
                log.warning("cannot write the status of trial %s/%s: %s", namespace, name, e)
                self.on_error(str(e))

    def _write_experiment(self, namespace: str, name: str, experiment_id: int) -> None:
        key = (namespace, name)
        self._last_write[key] = time.monotonic()
        try:
            record = self.storage.get_experiment_by_id(experiment_id)
            trials = self.storage.list_trials(experiment_id)
            best = best_trial(self.storage, record)
        except NotFoundError:
            return
        except Exception:  # noqa: BLE001 - the database may be busy: try again later
            log.exception("cannot read experiment %s/%s", namespace, name)
            self.mark(namespace, name, experiment_id)
            return
        status = experiment_status(record, trials, best)
        if self._written.get(key) == status:
            return
        try:
            self.api.patch(API_VERSION, "Experiment", namespace, name, {"status": status},
                           subresource="status")
        except KubeApiError as e:
            if e.status == 404:
                return
            log.warning("cannot write the status of experiment %s/%s: %s", namespace, name, e)
            self.on_error(str(e))
            self.mark(namespace, name, experiment_id)
            return
        self._written[key] = status


def status_summary(status: Mapping[str, Any]) -> str:
    """``Succeeded (12 trials)`` for logs."""
    conditions = status.get("conditions") or []
    last = conditions[-1]["type"] if conditions else "-"
    return f"{last} ({status.get('trials', 0)} trials)"
