"""The server's experiment controller: drives every unfinished experiment in the background.

One thread owns every :class:`~katib.controller.ExperimentRun` and is the only one to touch
their state, as in :class:`~katib.controller.Runner`: launcher events, metric pushes that
arrive through the REST API and kill requests all come in through one queue. Every second it
looks for experiments that need driving (not finished, no live controller) in every namespace
and starts them; stop requests and budget edits reach a run through its heartbeat.

Trials push metrics to the server itself, with a token (editor in the trial's namespace)
created for the run and revoked when it ends. When the server stops, trials are killed and
recorded as interrupted, and ownership is released, so that the experiments carry on when a
server starts again.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from katib._time import now
from katib.controller import ExperimentRun, NotRunnableError, check_runnable, new_owner_id
from katib.controller._resources import GpuPool
from katib.controller._run import HEARTBEAT_INTERVAL, owner_alive
from katib.errors import ConflictError, TemporaryError
from katib.records import (
    REASON_INTERRUPTED,
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    TrialState,
)
from katib.storage import ObservationPoint, Storage, StorageError
from trial_runner._events import Launcher, MetricsReported, TrialExited
from trial_runner.local import LocalProcessLauncher

log = logging.getLogger("katib.controller")

#: Reason of trials killed through the API.
REASON_KILLED_BY_USER = "KilledByUser"
#: Names of the tokens made for runs: ``controller:<owner>:<namespace>/<experiment>``.
TOKEN_PREFIX = "controller:"


@dataclass(frozen=True)
class _Push:
    """Observations that a trial pushed through the API."""

    namespace: str
    trial: str
    observations: Sequence[Any]  # with name, value, step, timestamp (as parse_observations)


@dataclass(frozen=True)
class _Kill:
    namespace: str
    trial: str


@dataclass(frozen=True)
class _Refresh:
    """Read the stored budget and stop request now, not at the next heartbeat."""

    experiment_id: int


_Item = MetricsReported | TrialExited | _Push | _Kill | _Refresh


def points_from(observations: Sequence[Any]) -> list[ObservationPoint]:
    """Observations (``name``, ``value``, ``step``, ``timestamp``) as storable points."""
    t = now()
    return [
        ObservationPoint(o.name, float(o.value), o.step, o.timestamp or t) for o in observations
    ]


class ControllerService:
    """Runs the experiments of one database while the server runs.

    Args:
        storage: The database.
        logs_root: Where trial logs go (``$KATIB_HOME/logs``).
        api_url: The server's URL as trials reach it (``KATIB_API_URL``); empty: no push.
        launcher: Starts trials (default: local processes).
        scan_interval: Seconds between looks for experiments to drive.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        logs_root: Path,
        api_url: str = "",
        launcher: Launcher | None = None,
        scan_interval: float = 1.0,
    ) -> None:
        self.storage = storage
        self.logs_root = logs_root
        self.api_url = api_url
        self.launcher = launcher or LocalProcessLauncher()
        self.scan_interval = scan_interval
        self.owner = new_owner_id()
        self.gpu_pool = GpuPool()
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._runs: dict[int, ExperimentRun] = {}  # the loop thread's own
        self._tokens: dict[int, int] = {}  # experiment id → id of its run's push token
        self._snapshot: tuple[ExperimentRun, ...] = ()  # what other threads may look at
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    # Other threads (the API) -----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._revoke_stale_tokens()
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, name="katib-controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Kill running trials, leave their experiments resumable, and end the thread."""
        thread = self._thread
        if thread is None:
            return
        self._halt.set()
        thread.join(timeout)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drives(self, experiment_id: int) -> bool:
        return any(run.record.id == experiment_id for run in self._snapshot)

    def experiments(self) -> int:
        """How many experiments this controller is driving."""
        return len(self._snapshot)

    def push(self, namespace: str, trial: str, observations: Sequence[Any]) -> bool:
        """Hand pushed observations to the run of the trial; False if no run here has it."""
        if self._run_of(namespace, trial, self._snapshot) is None:
            return False
        self._queue.put(_Push(namespace, trial, observations))
        return True

    def kill_trial(self, namespace: str, trial: str) -> bool:
        """Kill a trial this controller started; False if it has none running by that name."""
        run = self._run_of(namespace, trial, self._snapshot)
        record = None if run is None else run.trials.get(trial)
        if record is None or record.state != TrialState.RUNNING:
            return False
        self._queue.put(_Kill(namespace, trial))
        return True

    def refresh(self, experiment_id: int) -> None:
        """Have the run of an experiment pick up a budget edit or a stop request at once."""
        if self.drives(experiment_id):
            self._queue.put(_Refresh(experiment_id))

    # The loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        next_scan = 0.0
        try:
            while not self._halt.is_set():
                if time.monotonic() >= next_scan:
                    self._guard(self._scan)
                    next_scan = time.monotonic() + self.scan_interval
                try:
                    item: _Item | None = self._queue.get(timeout=0.2)
                except queue.Empty:
                    item = None
                if item is not None:
                    self._guard(self._dispatch, item)
                moment = time.monotonic()
                for run in list(self._runs.values()):
                    if not run.done and moment - run.last_heartbeat >= HEARTBEAT_INTERVAL:
                        self._guard(run.heartbeat)
                        self._guard(run.step)
                self._reap()
        finally:
            self._guard(self._shutdown)

    def _scan(self) -> None:
        for experiment_id, owner, heartbeat in self.storage.unfinished_experiments():
            if experiment_id in self._runs or self._owned_elsewhere(owner, heartbeat):
                continue
            self._start(self.storage.get_experiment_by_id(experiment_id))

    def _owned_elsewhere(self, owner: str | None, heartbeat: float | None) -> bool:
        if not owner or owner == self.owner:
            return False
        # Another holder in this very process (an API call ending an experiment) is alive,
        # which owner_alive cannot tell from a pid.
        mine = f"{socket.gethostname()}:{os.getpid()}:"
        return owner.startswith(mine) or owner_alive(owner, heartbeat)

    def _start(self, record: ExperimentRecord) -> None:
        where = f"{record.namespace}/{record.name}"
        try:
            check_runnable(record.spec)
        except NotRunnableError as e:
            self._fail(record, "ExperimentNotRunnable", str(e))
            return
        run = ExperimentRun(
            self.storage,
            record,
            self.launcher,
            sink=self._queue.put,
            logs_root=self.logs_root,
            owner=self.owner,
            gpu_pool=self.gpu_pool,
        )
        token_id = None
        if self.api_url:
            token, secret = self.storage.create_token(
                f"{TOKEN_PREFIX}{self.owner}:{where}", record.namespace, "editor"
            )
            token_id = token.id
            run.push_env = {"KATIB_API_URL": self.api_url, "KATIB_API_TOKEN": secret}
        try:
            run.start()
        except ConflictError:
            self._revoke(token_id)  # another controller got there first
            return
        except (StorageError, TemporaryError) as e:
            log.warning("cannot start %s yet: %s", where, e)
            self._release(record.id)
            self._revoke(token_id)
            return
        except Exception as e:  # noqa: BLE001 - one broken experiment must not stop the others
            log.exception("experiment %s cannot start", where)
            self._release(record.id)
            self._revoke(token_id)
            self._fail(record, "ExperimentStartFailed", f"cannot start: {type(e).__name__}: {e}")
            return
        log.info("running experiment %s", where)
        self._runs[record.id] = run
        if token_id is not None:
            self._tokens[record.id] = token_id
        self._publish()
        self._guard(run.step)

    def _dispatch(self, item: _Item) -> None:
        if isinstance(item, _Push):
            run = self._run_of(item.namespace, item.trial, self._runs.values())
            if run is None:
                self._store(item)
                return
            run.handle(MetricsReported(item.trial, item.observations))
        elif isinstance(item, _Kill):
            run = self._run_of(item.namespace, item.trial, self._runs.values())
            if run is not None:
                self.launcher.kill(item.trial, REASON_KILLED_BY_USER)
            return
        elif isinstance(item, _Refresh):
            found = self._runs.get(item.experiment_id)
            if found is None or found.done:
                return
            run = found
            run.heartbeat()
        else:
            run = self._run_with(item.trial)
            if run is None:
                return
            run.handle(item)
        if not run.done:
            run.step()

    def _store(self, push: _Push) -> None:
        """Points for a trial no run here has (any more): straight to the database."""
        try:
            trial = self.storage.get_trial(push.namespace, push.trial)
        except Exception:  # noqa: BLE001 - the trial was deleted meanwhile: nothing to keep
            return
        self.storage.add_observations(trial.id, points_from(push.observations))

    def _reap(self) -> None:
        done = [i for i, run in self._runs.items() if run.done]
        for experiment_id in done:
            run = self._runs.pop(experiment_id)
            log.info(
                "experiment %s/%s ended: %s",
                run.record.namespace,
                run.record.name,
                run.record.condition.value,
            )
            self._revoke(self._tokens.pop(experiment_id, None))
        if done:
            self._publish()

    def _shutdown(self) -> None:
        runs = list(self._runs.values())
        if runs:
            log.info("stopping: killing the trials of %d experiment(s)", len(runs))
            self.launcher.kill_all(REASON_INTERRUPTED, wait=5.0)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and any(
                t.state == TrialState.RUNNING for run in runs for t in run.trials.values()
            ):
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, _Push):
                    self._guard(self._store, item)
                elif isinstance(item, MetricsReported | TrialExited):
                    owner = self._run_with(item.trial)
                    if owner is not None:
                        self._guard(owner.handle, item)
        for run in runs:
            self._guard(run.interrupt)
            if run.completing is None:
                self._guard(
                    self.storage.update_experiment,
                    run.record.id,
                    message="Interrupted: the server stopped; it resumes when a server starts",
                )
        for token_id in self._tokens.values():
            self._revoke(token_id)
        self._runs.clear()
        self._tokens.clear()
        self._publish()

    # Helpers ---------------------------------------------------------------------------------

    def _publish(self) -> None:
        self._snapshot = tuple(self._runs.values())

    @staticmethod
    def _run_of(namespace: str, trial: str, runs: Any) -> ExperimentRun | None:
        for run in tuple(runs):
            if run.record.namespace == namespace and trial in run.trials:
                return run  # type: ignore[no-any-return]
        return None

    def _run_with(self, trial: str) -> ExperimentRun | None:
        for run in self._runs.values():
            if trial in run.trials:
                return run
        return None

    def _guard(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except Exception:  # noqa: BLE001 - logged; the loop must go on for the other runs
            log.exception("controller error in %s", getattr(func, "__name__", func))

    def _release(self, experiment_id: int) -> None:
        self._guard(self.storage.release, experiment_id, self.owner)

    def _revoke(self, token_id: int | None) -> None:
        if token_id is not None:
            self._guard(self.storage.revoke_token, token_id)

    def _fail(self, record: ExperimentRecord, reason: str, message: str) -> None:
        t = now()
        conditions = [*record.conditions, Condition("Failed", "True", reason, message, t)]
        self._guard(
            self.storage.update_experiment,
            record.id,
            condition=ExperimentCondition.FAILED,
            conditions=conditions,
            completed_at=t,
            message=message,
        )

    def _revoke_stale_tokens(self) -> None:
        """Revoke push tokens left by servers on this host that ended without cleaning up."""
        host = socket.gethostname()
        for token in self.storage.list_tokens():
            if not token.name.startswith(TOKEN_PREFIX):
                continue
            parts = token.name[len(TOKEN_PREFIX) :].split(":")
            if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or not psutil.pid_exists(pid):
                self._revoke(token.id)
