"""Running commands as process groups while collecting their metrics.

This is the machinery under the local launcher and the ``python -m trial_runner`` wrapper:
each command runs in its own session (process group), so that stopping it stops everything it
started and a Ctrl-C in the user's terminal reaches the controller, which then stops the
trials itself. One reader thread per process copies the output to the log file and parses
metrics from it as it comes, so the controller never waits on a pipe.
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

from trial_runner._launch import (
    Ending,
    EventSink,
    KillReason,
    MetricsReported,
    TrialEnded,
    TrialStarted,
)

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
    """Everything needed to run one command as a process group."""

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


class LineFeed:
    """Output as it comes, cut into lines for a line parser; what each line yields.

    A line longer than :data:`MAX_PARSED_LINE` is parsed up to that length, the rest of it
    skipped; a last line without a newline is parsed by :meth:`finish`.
    """

    def __init__(self, parse: LineParser) -> None:
        self.parse = parse
        self._partial = bytearray()
        self._skipping = False  # inside a line longer than MAX_PARSED_LINE

    def feed(self, chunk: bytes) -> list[Any]:
        found: list[Any] = []
        partial = self._partial
        partial += chunk
        start = 0
        while True:
            nl = partial.find(b"\n", start)
            if nl < 0:
                break
            if not self._skipping:
                found.extend(self.parse(bytes(partial[start : min(nl, start + MAX_PARSED_LINE)])))
            self._skipping = False
            start = nl + 1
        del partial[:start]
        if len(partial) > MAX_PARSED_LINE:
            if not self._skipping:
                found.extend(self.parse(bytes(partial[:MAX_PARSED_LINE])))
            self._skipping = True
            partial.clear()
        return found

    def finish(self) -> list[Any]:
        if self._partial and not self._skipping:
            return list(self.parse(bytes(self._partial[:MAX_PARSED_LINE])))
        return []


@dataclass
class _Running:
    name: str
    proc: subprocess.Popen[bytes]
    kill_reason: KillReason | None = None
    kill_message: str = ""
    deadline_exceeded: bool = False
    timer: threading.Timer | None = None
    #: Called once the process has ended, before its TrialEnded is sent.
    on_exit: Callable[[], None] | None = None


class ProcessRunner:
    """Runs commands as child process groups of this one, one per name.

    Events follow the :class:`~trial_runner.Launcher` contract: :class:`TrialStarted`
    when the process is started, :class:`MetricsReported` while it runs, and one
    :class:`TrialEnded`.
    """

    def __init__(self, *, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()

    def start(
        self,
        trial: str,
        spec: ProcessSpec,
        sink: EventSink,
        *,
        on_exit: Callable[[], None] | None = None,
    ) -> int | None:
        """Start ``spec`` as the process of ``trial``; its pid, or None if it cannot start."""
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
            if on_exit is not None:
                on_exit()
            sink(TrialEnded(trial, Ending.NOT_STARTED, message, reason="StartError"))
            return None
        running = _Running(trial, proc, on_exit=on_exit)
        with self._lock:
            self._running[trial] = running
        if spec.deadline_seconds is not None:
            running.timer = threading.Timer(spec.deadline_seconds, self._expire, args=(running,))
            running.timer.daemon = True
            running.timer.start()
        sink(TrialStarted(trial, time.time(), proc.pid))
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
        lines = None if spec.parse_line is None else LineFeed(spec.parse_line)
        last_report = time.monotonic()
        exited_at: float | None = None
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
                if lines is None:
                    continue
                pending.extend(lines.feed(chunk))
                now = time.monotonic()
                if pending and now - last_report >= REPORT_INTERVAL:
                    log.flush()
                    sink(MetricsReported(running.name, pending))
                    pending = []
                    last_report = now
            if lines is not None:
                pending.extend(lines.finish())
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
        if running.on_exit is not None:
            running.on_exit()
        sink(_ended(running, code, pending, spec))

    def _expire(self, running: _Running) -> None:
        """The deadline passed: stop the process, unless it is being stopped already."""
        if running.kill_reason is None and not running.deadline_exceeded:
            running.deadline_exceeded = True
            self._terminate(running)

    def _terminate(self, running: _Running) -> None:
        _signal_group(running.proc, signal.SIGTERM)
        timer = threading.Timer(self.grace_seconds, _signal_group, (running.proc, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        with self._lock:
            running = self._running.get(trial)
        if running is None:
            return
        if running.kill_reason is None and not running.deadline_exceeded:
            running.kill_reason, running.kill_message = reason, message
        self._terminate(running)

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        with self._lock:
            running = list(self._running.values())
        for r in running:
            if r.kill_reason is None and not r.deadline_exceeded:
                r.kill_reason = reason
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


def _ended(running: _Running, code: int, observations: list[Any], spec: ProcessSpec) -> TrialEnded:
    """The end of a process, as the launch boundary reports it."""
    if running.kill_reason is not None:
        return TrialEnded(
            running.name,
            Ending.KILLED,
            running.kill_message or f"killed: {running.kill_reason.value}",
            exit_code=code,
            kill_reason=running.kill_reason,
            observations=observations,
        )
    if running.deadline_exceeded:
        return TrialEnded(
            running.name,
            Ending.DEADLINE_EXCEEDED,
            f"ran longer than {spec.deadline_seconds:g} s (activeDeadlineSeconds)",
            exit_code=code,
            observations=observations,
        )
    if code == 0:
        return TrialEnded(running.name, Ending.COMPLETED, "exited with code 0", 0,
                          observations=observations)
    return TrialEnded(running.name, Ending.FAILED, describe_exit(code), code,
                      observations=observations)


def describe_exit(code: int | None) -> str:
    """A process's exit status in words."""
    if code is None:
        return "the process ended without an exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exited with code {code}"


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill_by_environment(marks: dict[str, str]) -> int:
    """Kill the process groups of processes whose environment holds every ``marks`` entry.

    For trials a controller started but died before recording their pid: each trial's
    process carries ``KATIB_NAMESPACE`` and ``KATIB_TRIAL_NAME``. Returns how many groups
    were killed.
    """
    import psutil

    killed = 0
    for proc in psutil.process_iter(["pid"]):
        try:
            environ = proc.environ()
            if any(environ.get(k) != v for k, v in marks.items()):
                continue
            pgid = os.getpgid(proc.pid)
        except (psutil.Error, ProcessLookupError, PermissionError, OSError):
            continue
        if pgid == os.getpgid(0):
            continue  # never this process's own group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
    return killed


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
