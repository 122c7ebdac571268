"""The one controller loop that drives experiments, whoever started them.

``katib run``, the SDK's embedded mode and ``katib server`` all run experiments through a
:class:`ControllerLoop`; they differ only in where experiments come from (an
:class:`ExperimentSource`: a fixed list, or every unfinished experiment of the database) and
where trials push metrics (a :class:`PushEndpoint`: a loopback endpoint of this process, or
the server's API with a token per experiment).

One thread runs the loop and is the only one to touch the experiments' state: launcher
events, pushed metrics, kill requests and budget refreshes all arrive through one queue, so
nothing above storage needs a lock. Other threads talk to the loop through :meth:`push`,
:meth:`kill_trial`, :meth:`refresh` and :meth:`stop`.

Failures are contained per experiment: a database that is briefly unavailable is retried at
the next heartbeat; any other error in one experiment's handling ends that experiment as
Failed (reason ``ControllerError``) and the others go on.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

from katib._time import now
from katib.controller._owner import (
    HEARTBEAT_INTERVAL,
    new_owner_id,
    owner_alive,
    register_owner,
    unregister_owner,
)
from katib.controller._push_server import PushServer, observation_points
from katib.controller._run import ExperimentRun, RunObserver
from katib.controller._submit import NotRunnableError, check_runnable
from katib.errors import ConflictError, TemporaryError
from katib.records import Condition, ExperimentCondition, ExperimentRecord, TrialState
from katib.storage import Storage, StorageError
from trial_runner import (
    KillReason,
    Launcher,
    MetricsReported,
    Observation,
    TrialEnded,
    TrialStarted,
)

log = logging.getLogger("katib.controller")

#: Names of the tokens made for trials' pushes: ``controller:<owner>:<namespace>/<experiment>``.
TOKEN_PREFIX = "controller:"
#: How long a stopping loop waits for killed trials to report their end.
DRAIN_SECONDS = 3.0


class Interrupted(Exception):  # noqa: N818 - mirrors KeyboardInterrupt
    """The run was interrupted (Ctrl-C or SIGTERM); trials were stopped."""


# What reaches the loop's queue from other threads --------------------------------------------


@dataclass(frozen=True)
class _Push:
    """Observations that a trial pushed (through the API or the loopback endpoint)."""

    namespace: str
    trial: str
    observations: Sequence[Observation]


@dataclass(frozen=True)
class _Kill:
    namespace: str
    trial: str


@dataclass(frozen=True)
class _Refresh:
    """Read the stored budget and stop request now, not at the next heartbeat."""

    experiment_id: int


_Item = TrialStarted | MetricsReported | TrialEnded | _Push | _Kill | _Refresh


# Where experiments come from --------------------------------------------------------------


class ExperimentSource(ABC):
    """Where a loop finds experiments to drive."""

    #: A finite source's loop ends once every experiment it gave has ended.
    finite: ClassVar[bool]

    @abstractmethod
    def take(self, loop: ControllerLoop) -> list[ExperimentRecord]:
        """Experiments the loop should start driving now (called on every scan)."""


class FixedExperiments(ExperimentSource):
    """The experiments of one ``katib run`` or one SDK call, given once."""

    finite = True

    def __init__(self, records: Sequence[ExperimentRecord]) -> None:
        self._records = list(records)

    def take(self, loop: ControllerLoop) -> list[ExperimentRecord]:
        records, self._records = self._records, []
        return records


class UnfinishedExperiments(ExperimentSource):
    """Every unfinished experiment of the database that no live controller drives.

    One that the loop itself owns but does not drive (its start failed and the claim could
    not be released) is taken again.
    """

    finite = False

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def take(self, loop: ControllerLoop) -> list[ExperimentRecord]:
        out = []
        for experiment_id, owner, heartbeat in self.storage.unfinished_experiments():
            if loop.drives(experiment_id):
                continue
            if owner != loop.owner and owner_alive(owner, heartbeat):
                continue
            out.append(self.storage.get_experiment_by_id(experiment_id))
        return out


# Where trials push metrics ----------------------------------------------------------------


class PushEndpoint(ABC):
    """How trials reach the controller with pushed metrics (``katib.report_metrics``)."""

    def open(self, deliver: Callable[[str, str, list[Observation]], bool]) -> None:  # noqa: B027
        """Start accepting pushes; ``deliver`` hands them to the loop."""

    @abstractmethod
    def env_for(self, record: ExperimentRecord) -> dict[str, str]:
        """The environment a trial of ``record`` pushes with."""

    def release(self, record: ExperimentRecord) -> None:  # noqa: B027
        """The experiment is no longer driven here."""

    def close(self) -> None:  # noqa: B027
        """Stop accepting pushes."""


class LoopbackPush(PushEndpoint):
    """An endpoint of this process on 127.0.0.1, with one token (``katib run``, the SDK)."""

    def __init__(self) -> None:
        self._server: PushServer | None = None

    def open(self, deliver: Callable[[str, str, list[Observation]], bool]) -> None:
        self._server = PushServer(deliver)
        self._server.start()

    def env_for(self, record: ExperimentRecord) -> dict[str, str]:
        assert self._server is not None
        return {"KATIB_API_URL": self._server.url, "KATIB_API_TOKEN": self._server.token}

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


class ServerPush(PushEndpoint):
    """The server's own API, with an editor token per experiment, revoked when it ends."""

    def __init__(self, storage: Storage, api_url: str, owner: str) -> None:
        self.storage = storage
        self.api_url = api_url
        self.owner = owner
        self._tokens: dict[int, int] = {}  # experiment id → token id

    def open(self, deliver: Callable[[str, str, list[Observation]], bool]) -> None:
        self._revoke_stale()

    def env_for(self, record: ExperimentRecord) -> dict[str, str]:
        where = f"{record.namespace}/{record.name}"
        token, secret = self.storage.create_token(
            f"{TOKEN_PREFIX}{self.owner}:{where}", record.namespace, "editor"
        )
        self._tokens[record.id] = token.id
        return {"KATIB_API_URL": self.api_url, "KATIB_API_TOKEN": secret}

    def release(self, record: ExperimentRecord) -> None:
        token_id = self._tokens.pop(record.id, None)
        if token_id is not None:
            self.storage.revoke_token(token_id)

    def close(self) -> None:
        for token_id in self._tokens.values():
            self.storage.revoke_token(token_id)
        self._tokens.clear()

    def _revoke_stale(self) -> None:
        """Revoke push tokens left by controllers of this host that ended without cleaning up."""
        for token in self.storage.list_tokens():
            if not token.name.startswith(TOKEN_PREFIX):
                continue
            owner = token.name[len(TOKEN_PREFIX) :].rpartition(":")[0]
            if owner.count(":") >= 2 and not owner_alive(owner, None) and _this_host(owner):
                self.storage.revoke_token(token.id)


def _this_host(owner: str) -> bool:
    import socket

    return owner.partition(":")[0] == socket.gethostname()


# The loop ---------------------------------------------------------------------------------


class ControllerLoop:
    """Drives the experiments of one source with one launcher, in one thread.

    Args:
        storage: The database.
        launcher: Runs the trials.
        logs_root: Where trial logs go (``$KATIB_HOME/logs``).
        source: Where experiments come from.
        push: Where trials push metrics (None: they cannot push).
        observer: Progress callbacks (a live table, log records).
        interrupted_message: What an interrupted experiment's status says (how to resume).
        scan_interval: Seconds between looks at an infinite source.
    """

    def __init__(
        self,
        storage: Storage,
        launcher: Launcher,
        *,
        logs_root: Path,
        source: ExperimentSource,
        push: PushEndpoint | None = None,
        observer: RunObserver | None = None,
        interrupted_message: str = "Interrupted: run the same file again to resume",
        scan_interval: float = 1.0,
    ) -> None:
        self.storage = storage
        self.launcher = launcher
        self.logs_root = logs_root
        self.source = source
        self.push_endpoint = push
        self.observer = observer
        self.interrupted_message = interrupted_message
        self.scan_interval = scan_interval
        self.owner = new_owner_id()
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._runs: dict[int, ExperimentRun] = {}  # the loop thread's own
        self._snapshot: tuple[ExperimentRun, ...] = ()  # what other threads may look at
        self._finished: list[ExperimentRun] = []
        self._halt = threading.Event()
        self._next_scan = 0.0
        self._push_open = False
        #: Items the database could not take yet, in arrival order, and their trials.
        self._retry: list[_Item] = []
        self._waiting: dict[str, int] = {}
        self._next_retry = 0.0
        self.retry_interval = 1.0
        # Fair sharing: admins' limits of running trials per namespace, and how many trials
        # of those namespaces other controllers run (read every second).
        self._limits: dict[str, int] = {}
        self._others_running: dict[str, int] = {}
        self._next_limits = 0.0
        register_owner(self.owner)

    # Other threads ---------------------------------------------------------------------------

    def drives(self, experiment_id: int) -> bool:
        return any(run.record.id == experiment_id for run in self._snapshot)

    def experiments(self) -> int:
        """How many experiments this loop is driving."""
        return len(self._snapshot)

    def runs(self) -> tuple[ExperimentRun, ...]:
        return self._snapshot

    def push(self, namespace: str, trial: str, observations: Sequence[Observation]) -> bool:
        """Hand pushed observations to the run of the trial; False if no run here has it."""
        if _run_of(namespace, trial, self._snapshot) is None:
            return False
        self._queue.put(_Push(namespace, trial, list(observations)))
        return True

    def kill_trial(self, namespace: str, trial: str) -> bool:
        """Kill a trial this loop started; False if it has none running by that name."""
        run = _run_of(namespace, trial, self._snapshot)
        record = None if run is None else run.trials.get(trial)
        if record is None or record.state != TrialState.RUNNING:
            return False
        self._queue.put(_Kill(namespace, trial))
        return True

    def refresh(self, experiment_id: int) -> None:
        """Have the run of an experiment pick up a budget edit or a stop request at once."""
        if self.drives(experiment_id):
            self._queue.put(_Refresh(experiment_id))

    def stop(self) -> None:
        """Ask the loop to stop: trials are killed and experiments left resumable."""
        self._halt.set()
        self._queue.put(_Refresh(-1))  # wake it up

    # The loop thread -------------------------------------------------------------------------

    def start_experiments(self) -> list[ExperimentRun]:
        """Start driving what the source has now. For a finite source, errors are raised
        (another controller drives one: ConflictError) after releasing what was claimed."""
        self._open_push()
        self._guard(self._refresh_limits)
        started: list[ExperimentRun] = []
        for record in self.source.take(self):
            try:
                run = self._start(record)
            except Exception:
                if self.source.finite:
                    for run in started:
                        run.interrupt(self.interrupted_message)
                        self._forget(run)
                    raise
                continue
            if run is not None:
                started.append(run)
        return started

    def run(self, *, handle_signals: bool = True) -> list[ExperimentRun]:
        """Drive experiments until a finite source's are all done, or :meth:`stop`.

        Returns every experiment driven to its end. Raises Interrupted on Ctrl-C (and on
        SIGTERM, when ``handle_signals`` in the main thread) after stopping the trials.
        """
        try:
            with _sigterm_as_interrupt(handle_signals):
                if self.source.finite:
                    self.start_experiments()
                self._loop()
        except KeyboardInterrupt as e:
            self._shutdown()
            raise Interrupted() from e
        finally:
            if self.push_endpoint is not None and self._push_open:
                self._guard(self.push_endpoint.close)
                self._push_open = False
            unregister_owner(self.owner)
        return self._finished

    def _open_push(self) -> None:
        if self.push_endpoint is not None and not self._push_open:
            self.push_endpoint.open(self._deliver)
            self._push_open = True

    def _loop(self) -> None:
        self._open_push()
        for run in list(self._runs.values()):
            self._guard_run(run, run.step)
        while True:
            if self._halt.is_set():
                self._shutdown()
                return
            moment = time.monotonic()
            if not self.source.finite and moment >= self._next_scan:
                self._guard(self.start_experiments)
                self._next_scan = time.monotonic() + self.scan_interval
            elif self.source.finite and not self._runs:
                return
            try:
                item: _Item | None = self._queue.get(timeout=0.2 if self._runs else 0.5)
            except queue.Empty:
                item = None
            if item is not None:
                self._dispatch(item)
            self._retry_waiting()
            moment = time.monotonic()
            if moment >= self._next_limits:
                self._guard(self._refresh_limits)
                self._next_limits = moment + 1.0
            for run in list(self._runs.values()):
                if not run.done and moment - run.last_heartbeat >= HEARTBEAT_INTERVAL:
                    self._guard_run(run, run.heartbeat)
                    self._guard_run(run, run.step)
            self._reap()

    def _start(self, record: ExperimentRecord) -> ExperimentRun | None:
        where = f"{record.namespace}/{record.name}"
        try:
            check_runnable(record.spec)
        except NotRunnableError as e:
            if self.source.finite:
                raise
            self._fail_unstarted(record, "ExperimentNotRunnable", str(e))
            return None
        run = ExperimentRun(
            self.storage,
            record,
            self.launcher,
            sink=self._queue.put,
            logs_root=self.logs_root,
            owner=self.owner,
            observer=self.observer,
            capacity=self.capacity,
        )
        try:
            run.start()
        except ConflictError:
            if self.source.finite:
                raise
            return None  # another controller got there first
        except (StorageError, TemporaryError) as e:
            if self.source.finite:
                raise
            log.warning("cannot start %s yet: %s", where, e)
            self._guard(self.storage.release, record.id, self.owner)
            return None
        except Exception as e:
            if self.source.finite:
                raise
            log.exception("experiment %s cannot start", where)
            self._guard(self.storage.release, record.id, self.owner)
            self._fail_unstarted(
                record, "ExperimentStartFailed", f"cannot start: {type(e).__name__}: {e}"
            )
            return None
        if self.push_endpoint is not None:
            run.push_env = self.push_endpoint.env_for(record)
        log.info("running experiment %s", where)
        self._runs[record.id] = run
        self._publish()
        if self.observer is not None:
            self.observer.experiment_started(run)
        self._guard_run(run, run.step)
        return run

    def _dispatch(self, item: _Item) -> None:
        trial = None if isinstance(item, _Refresh) else item.trial
        if trial is not None and trial in self._waiting:
            self._later(item)  # keep a trial's events in order behind one that waits
            return
        if isinstance(item, _Push):
            pushed = _run_of(item.namespace, item.trial, self._runs.values())
            if pushed is None:
                self._guard(self._store, item)
                return
            event = MetricsReported(item.trial, item.observations)
            if not self._guard_run(pushed, pushed.handle, event):
                self._later(item)
                return
            run: ExperimentRun | None = pushed
        elif isinstance(item, _Kill):
            killed = _run_of(item.namespace, item.trial, self._runs.values())
            if killed is not None:
                self._guard_run(killed, killed.kill_trial, item.trial)
            return
        elif isinstance(item, _Refresh):
            run = self._runs.get(item.experiment_id)
            if run is None or run.done:
                return
            self._guard_run(run, run.heartbeat)
        else:
            run = self._run_with(item.trial)
            if run is None:
                return
            if not self._guard_run(run, run.handle, item):
                self._later(item)
                return
            if isinstance(item, TrialEnded) and run.record.namespace in self._limits:
                # A slot of a limited namespace is free: its other experiments may use it.
                for other in list(self._runs.values()):
                    if other is not run and other.record.namespace == run.record.namespace:
                        self._guard_run(other, other.step)
        if run is not None and not run.done:
            self._guard_run(run, run.step)

    def _own_running(self, namespace: str) -> int:
        return sum(
            run.counts[TrialState.RUNNING]
            for run in self._runs.values()
            if run.record.namespace == namespace
        )

    def _refresh_limits(self) -> None:
        limits, running = self.storage.namespace_limits()
        self._limits = limits
        self._others_running = {
            ns: max(0, running.get(ns, 0) - self._own_running(ns)) for ns in limits
        }

    def capacity(self, namespace: str) -> int | None:
        """How many more trials of ``namespace`` may start now (None: no limit)."""
        limit = self._limits.get(namespace)
        if limit is None:
            return None
        return limit - self._others_running.get(namespace, 0) - self._own_running(namespace)

    def _later(self, item: _Item) -> None:
        """Hand ``item`` in again once the database answers (an event must never be lost)."""
        self._retry.append(item)
        if not isinstance(item, _Refresh):
            self._waiting[item.trial] = self._waiting.get(item.trial, 0) + 1

    def _retry_waiting(self) -> None:
        if not self._retry or time.monotonic() < self._next_retry:
            return
        self._next_retry = time.monotonic() + self.retry_interval
        items, self._retry = self._retry, []
        self._waiting.clear()
        for item in items:
            self._dispatch(item)

    def _deliver(self, namespace: str, trial: str, observations: list[Observation]) -> bool:
        return self.push(namespace, trial, observations)

    def _store(self, push: _Push) -> None:
        """Points for a trial no run here has (any more): straight to the database."""
        try:
            trial = self.storage.get_trial(push.namespace, push.trial)
        except Exception:  # noqa: BLE001 - the trial was deleted meanwhile: nothing to keep
            return
        self.storage.add_observations(trial.id, observation_points(push.observations))

    def _reap(self) -> None:
        done = [run for run in self._runs.values() if run.done]
        for run in done:
            log.info(
                "experiment %s/%s ended: %s",
                run.record.namespace,
                run.record.name,
                run.record.condition.value,
            )
            self._forget(run)
            self._finished.append(run)

    def _forget(self, run: ExperimentRun) -> None:
        self._runs.pop(run.record.id, None)
        if self.push_endpoint is not None:
            self._guard(self.push_endpoint.release, run.record)
        self._publish()

    def _shutdown(self) -> None:
        """Kill running trials, record them as interrupted, and leave every run resumable."""
        runs = list(self._runs.values())
        # A second Ctrl-C while we clean up must not leave trials behind.
        previous = (
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if threading.current_thread() is threading.main_thread()
            else None
        )
        try:
            # Workloads that outlive the controller keep running; the next one adopts them.
            keep = self.launcher.workloads_outlive_controller
            if runs and not keep:
                log.info("stopping: killing the trials of %d experiment(s)", len(runs))
            if not keep:
                self.launcher.kill_all(KillReason.INTERRUPTED, wait=5.0)
            deadline = time.monotonic() + (0.0 if keep else DRAIN_SECONDS)
            while time.monotonic() < deadline and any(
                t.state == TrialState.RUNNING for run in runs for t in run.trials.values()
            ):
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(item, _Push):
                    self._guard(self._store, item)
                elif isinstance(item, TrialStarted | MetricsReported | TrialEnded):
                    owner = self._run_with(item.trial)
                    if owner is not None:
                        self._guard(owner.handle, item)
            for run in runs:
                self._guard(run.interrupt, self.interrupted_message)
                self._forget(run)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    # Helpers ---------------------------------------------------------------------------------

    def _publish(self) -> None:
        self._snapshot = tuple(self._runs.values())

    def _run_with(self, trial: str) -> ExperimentRun | None:
        for run in self._runs.values():
            if trial in run.trials:
                return run
        return None

    def _guard(self, func: Callable[..., Any], *args: Any) -> None:
        try:
            func(*args)
        except Exception:  # noqa: BLE001 - logged; the loop must go on for the other runs
            log.exception("controller error in %s", getattr(func, "__name__", func))

    def _guard_run(self, run: ExperimentRun, func: Callable[..., Any], *args: Any) -> bool:
        """Call ``func``; a failure ends that experiment. False when the database did not
        answer: the caller tries again later."""
        try:
            func(*args)
            return True
        except (StorageError, TemporaryError) as e:
            log.warning(
                "experiment %s/%s: %s (retrying)", run.record.namespace, run.record.name, e
            )
            return False
        except Exception as e:  # noqa: BLE001 - contained to the one experiment
            log.exception(
                "experiment %s/%s: controller error", run.record.namespace, run.record.name
            )
            try:
                run.fail("ControllerError", f"the controller failed: {type(e).__name__}: {e}")
            except Exception:  # noqa: BLE001 - cannot even record it: stop driving it
                log.exception("cannot fail experiment %s", run.record.name)
                run.done = True
            return True

    def _fail_unstarted(self, record: ExperimentRecord, reason: str, message: str) -> None:
        t = now()
        conditions = [*record.conditions, Condition("Failed", "True", reason, message, t)]
        self._guard(
            lambda: self.storage.update_experiment(
                record.id,
                condition=ExperimentCondition.FAILED,
                conditions=conditions,
                completed_at=t,
                message=message,
            )
        )


def _run_of(namespace: str, trial: str, runs: Any) -> ExperimentRun | None:
    for run in tuple(runs):
        if run.record.namespace == namespace and trial in run.trials:
            return run  # type: ignore[no-any-return]
    return None


@contextmanager
def _sigterm_as_interrupt(enabled: bool) -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so that `kill` also stops trials and leaves a resumable run."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
