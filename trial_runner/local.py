"""Trials as local processes.

Each trial runs in its own session (process group), so that stopping it stops everything it
started and a Ctrl-C in the user's terminal reaches the controller, which then stops the
trials itself. One reader thread per trial copies the output to the trial's log file and
parses metrics from it as it comes, so the controller never waits on a pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trial_runner._events import EventSink, Launcher, MetricsReported, TrialExited

#: Longest line the metrics parser examines; the rest of a longer line goes to the log only.
MAX_PARSED_LINE = 64 * 1024
_READ_SIZE = 64 * 1024
#: How often a running trial's new observations are handed to the controller.
REPORT_INTERVAL = 1.0
#: After the process has exited, how long to wait for the pipe to close (grandchildren that
#: inherited it may keep it open forever).
_DRAIN_AFTER_EXIT = 1.0
#: How often collectors other than stdout are polled while a trial runs.
_POLL_INTERVAL = 0.25


LineParser = Callable[[bytes], Sequence[Any]]


@dataclass(frozen=True)
class ProcessSpec:
    """Everything needed to run one trial as a process."""

    argv: Sequence[str]
    cwd: str
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    parse_line: LineParser | None = None
    deadline_seconds: float | None = None
    #: Append to the log instead of starting it afresh (a retry of the same trial).
    append_log: bool = False
    #: Collectors polled while the trial runs (files, tfevents, Prometheus, a custom command).
    collectors: Sequence[Any] = ()


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    killed_reason: str | None = None
    timer: threading.Timer | None = None


class LocalProcessLauncher(Launcher):
    """Runs trials as child processes of this one."""

    def __init__(self, *, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def launch(self, trial: str, spec: Any, sink: EventSink) -> int | None:
        assert isinstance(spec, ProcessSpec)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(spec.env)
        log = open(spec.log_path, "ab" if spec.append_log else "wb")  # noqa: SIM115 - closed by the reader thread
        try:
            proc = subprocess.Popen(
                list(spec.argv),
                cwd=spec.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, ValueError) as e:
            message = f"cannot start {spec.argv[0] if spec.argv else '(empty command)'}: {e}"
            log.write((message + "\n").encode())
            log.close()
            sink(TrialExited(trial, None, error=message))
            return None
        running = _Running(trial, proc)
        with self._lock:
            self._running[trial] = running
        if spec.deadline_seconds is not None:
            running.timer = threading.Timer(
                spec.deadline_seconds,
                self.kill,
                args=(trial, f"DeadlineExceeded: ran longer than {spec.deadline_seconds:g} s"),
            )
            running.timer.daemon = True
            running.timer.start()
        thread = threading.Thread(
            target=self._pump, args=(running, spec, log, sink), name=f"trial-{trial}", daemon=True
        )
        thread.start()
        return proc.pid

    def _pump(self, running: _Running, spec: ProcessSpec, log: Any, sink: EventSink) -> None:
        proc = running.proc
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        pending: list[Any] = []
        partial = bytearray()
        skipping = False  # inside a line longer than MAX_PARSED_LINE
        last_report = time.monotonic()
        exited_at: float | None = None
        parse = spec.parse_line
        collectors = list(spec.collectors)
        last_poll = 0.0
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.25)
                if collectors and time.monotonic() - last_poll >= _POLL_INTERVAL:
                    last_poll = time.monotonic()
                    for collector in collectors:
                        pending.extend(collector.poll())
                # Checked on every pass, not only when idle: a grandchild that keeps writing
                # to the inherited pipe must not hold the trial open after its process ended.
                if proc.poll() is not None:
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > _DRAIN_AFTER_EXIT:
                        break
                if not ready:
                    # A trial that reports and then computes silently is still reported.
                    if pending and time.monotonic() - last_report >= REPORT_INTERVAL:
                        sink(MetricsReported(running.name, pending))
                        pending = []
                        last_report = time.monotonic()
                    continue
                chunk = os.read(fd, _READ_SIZE)
                if not chunk:
                    break
                log.write(chunk)
                log.flush()  # the log is read live (``katib logs --follow``)
                if parse is None:
                    continue
                partial += chunk
                start = 0
                while True:
                    nl = partial.find(b"\n", start)
                    if nl < 0:
                        break
                    if not skipping:
                        pending.extend(
                            parse(bytes(partial[start : min(nl, start + MAX_PARSED_LINE)]))
                        )
                    skipping = False
                    start = nl + 1
                del partial[:start]
                if len(partial) > MAX_PARSED_LINE:
                    if not skipping:
                        pending.extend(parse(bytes(partial[:MAX_PARSED_LINE])))
                    skipping = True
                    partial.clear()
                now = time.monotonic()
                if pending and now - last_report >= REPORT_INTERVAL:
                    log.flush()
                    sink(MetricsReported(running.name, pending))
                    pending = []
                    last_report = now
            if parse is not None and partial and not skipping:
                pending.extend(parse(bytes(partial[:MAX_PARSED_LINE])))
        except Exception as e:  # noqa: BLE001 - a reader failure must still end the trial
            with contextlib.suppress(OSError):
                log.write(f"\n[katib] reading trial output failed: {e}\n".encode())
        finally:
            log.close()
            proc.stdout.close()
        code = proc.wait()
        for collector in collectors:
            # A collector must never keep the trial from ending, whatever it runs into.
            with contextlib.suppress(Exception):
                pending.extend(collector.finish())
            with contextlib.suppress(Exception):
                collector.close()
        # As when a pod's container ends: whatever the trial left behind in its process
        # group (background helpers, data loaders) ends with it.
        _signal_group(proc, signal.SIGKILL)
        if running.timer is not None:
            running.timer.cancel()
        with self._lock:
            self._running.pop(running.name, None)
        sink(TrialExited(running.name, code, pending, killed_reason=running.killed_reason))

    def kill(self, trial: str, reason: str) -> None:
        with self._lock:
            running = self._running.get(trial)
        if running is None:
            return
        if running.killed_reason is None:
            running.killed_reason = reason
        _signal_group(running.proc, signal.SIGTERM)
        timer = threading.Timer(self.grace_seconds, _signal_group, (running.proc, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def kill_all(self, reason: str, *, wait: float = 5.0) -> None:
        with self._lock:
            running = list(self._running.values())
        for r in running:
            if r.killed_reason is None:
                r.killed_reason = reason
            _signal_group(r.proc, signal.SIGTERM)
        deadline = time.monotonic() + wait
        for r in running:
            remaining = deadline - time.monotonic()
            try:
                r.proc.wait(timeout=max(remaining, 0.01))
            except subprocess.TimeoutExpired:
                pass
            # SIGKILL the group even after the leader exited: its children may live on.
            _signal_group(r.proc, signal.SIGKILL)

    def active(self) -> list[str]:
        with self._lock:
            return list(self._running)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill_leftover(pid: int, started_at: float | None) -> bool:
    """Kill the process group of a trial left running by a controller that crashed.

    Only a process that started within a few seconds of the trial is killed, so that a pid
    reused by an unrelated process is left alone. Returns whether something was killed.
    """
    import psutil

    try:
        proc = psutil.Process(pid)
        if started_at is not None and abs(proc.create_time() - started_at) > 5.0:
            return False
        pgid = os.getpgid(pid)
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
        return True
    return False
