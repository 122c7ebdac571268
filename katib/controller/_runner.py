"""Runs one or more experiments to their end in this process, side by side.

Launchers report from their own threads into one queue; this loop is the only thread that
touches the experiments' state and the database, so no locking is needed above storage.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from katib.controller._push_server import PushServer
from katib.controller._resources import GpuPool
from katib.controller._run import HEARTBEAT_INTERVAL, ExperimentRun, RunObserver
from katib.records import REASON_INTERRUPTED, ExperimentRecord
from katib.storage import Storage
from trial_runner._events import Event, Launcher
from trial_runner.local import LocalProcessLauncher


class Interrupted(Exception):  # noqa: N818 - mirrors KeyboardInterrupt
    """The run was interrupted (Ctrl-C or SIGTERM); trials were stopped."""


class Runner:
    """Drives several experiments with one launcher and one event loop."""

    def __init__(
        self,
        storage: Storage,
        *,
        logs_root: Path,
        launcher: Launcher | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        self.storage = storage
        self.logs_root = logs_root
        self.launcher = launcher or LocalProcessLauncher()
        self.observer = observer
        self.events: queue.Queue[Event] = queue.Queue()
        self.runs: list[ExperimentRun] = []
        self.gpu_pool = GpuPool()

    def add(self, record: ExperimentRecord) -> ExperimentRun:
        run = ExperimentRun(
            self.storage,
            record,
            self.launcher,
            sink=self.events.put,
            logs_root=self.logs_root,
            observer=self.observer,
            gpu_pool=self.gpu_pool,
        )
        self.runs.append(run)
        return run

    def run(self) -> Sequence[ExperimentRun]:
        """Run every added experiment to its end. Raises Interrupted on Ctrl-C / SIGTERM."""
        by_trial: dict[str, ExperimentRun] = {}
        started: list[ExperimentRun] = []
        push = PushServer(self.events.put, self._is_active)
        push_url = push.start()
        for run in self.runs:
            run.push_env = {"KATIB_API_URL": push_url, "KATIB_API_TOKEN": push.token}
        try:
            with _sigterm_as_interrupt():
                for run in self.runs:
                    run.start()
                    started.append(run)
                for run in self.runs:
                    run.step()
                while not all(r.done for r in self.runs):
                    try:
                        event = self.events.get(timeout=HEARTBEAT_INTERVAL)
                    except queue.Empty:
                        event = None
                    if event is not None:
                        run_for = by_trial.get(event.trial) or self._owner_of(event.trial)
                        if run_for is not None:
                            by_trial[event.trial] = run_for
                            run_for.handle(event)
                            if not run_for.done:
                                run_for.step()
                    now = time.monotonic()
                    for run in self.runs:
                        if not run.done and now - run.last_heartbeat >= HEARTBEAT_INTERVAL:
                            run.heartbeat()
                            run.step()
        except KeyboardInterrupt as e:
            self._interrupt(started)
            raise Interrupted() from e
        finally:
            push.stop()
        return self.runs

    def _is_active(self, namespace: str, trial: str) -> bool:
        return any(run.record.namespace == namespace and trial in run.trials for run in self.runs)

    def _owner_of(self, trial: str) -> ExperimentRun | None:
        for run in self.runs:
            if trial in run.trials:
                return run
        return None

    def _interrupt(self, runs: Sequence[ExperimentRun]) -> None:
        # A second Ctrl-C while we clean up must not leave trials behind.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            self.launcher.kill_all(REASON_INTERRUPTED, wait=5.0)
            deadline = time.monotonic() + 3.0
            while any(r.trials for r in runs) and time.monotonic() < deadline:
                try:
                    event = self.events.get(timeout=0.2)
                except queue.Empty:
                    continue
                owner = self._owner_of(event.trial)
                if owner is not None:
                    owner.handle(event)
            for run in runs:
                run.interrupt()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C so that `kill` also stops trials and leaves a resumable run."""
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
