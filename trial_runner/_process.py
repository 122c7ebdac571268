"""Running commands as process groups while collecting their metrics.

This is the machinery under the local launcher and the ``python -m trial_runner`` wrapper:
each command runs in its own session (process group), so that stopping it stops everything it
started and a Ctrl-C in the user's terminal reaches the controller, which then stops the
trials itself. One thread (the pump) watches every process's output, copies it to its log
file and parses metrics from it as it comes, so the controller never waits on a pipe.

A group is signalled only while its leader is not yet reaped: until then the leader's pid,
which is the group's id, cannot be given to another process (another trial, started in a
session of its own, would otherwise be stopped in its place). Exits are noticed without
reaping (a pidfd, or ``waitid`` with ``WNOWAIT``); the leader is reaped last, once the group
has been stopped.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import selectors
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
    #: Called once the process has ended, before its TrialEnded is sent.
    on_exit: Callable[[], None] | None = None
    #: Held to signal the group and to reap the leader: never one after the other.
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(eq=False)
class _Stream:
    """One running process as the pump sees it: its pipe, its log and what it reported."""

    running: _Running
    spec: ProcessSpec
    log: Any
    sink: EventSink
    fd: int
    pidfd: int | None
    pending: list[Any] = field(default_factory=list)
    lines: LineFeed | None = None  # None: no line parser
    last_report: float = 0.0
    report_due: bool = False  # a report is scheduled
    exited_at: float | None = None
    eof: bool = False
    done: bool = False
    code: int | None = None


class _Pump:
    """One thread for the output of every process of a :class:`ProcessRunner`.

    A ``selectors`` loop over every trial's pipe (copied to its log, parsed for metrics as it
    comes) and, where the kernel has them, a pidfd per process (readable when it exits), with
    a heap of timers: deadlines, SIGKILL after the grace period, metric reports, collector
    polls and the drain after exit. No thread is started per trial.
    """

    def __init__(self, runner: ProcessRunner) -> None:
        self.runner = runner
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._inbox: list[Callable[[], None]] = []
        self._inbox_lock = threading.Lock()
        self._timers: list[tuple[float, int, str, _Stream | _Running]] = []
        self._seq = itertools.count()
        self._polled: set[_Stream] = set()  # streams with collectors, or without a pidfd
        self._thread = threading.Thread(target=self._run, name="trial-output", daemon=True)
        self._thread.start()

    # Other threads ---------------------------------------------------------------------------

    def call(self, func: Callable[[], None]) -> None:
        """Run ``func`` on the pump's thread, soon."""
        with self._inbox_lock:
            self._inbox.append(func)
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    # The pump's thread -----------------------------------------------------------------------

    def add(self, stream: _Stream, deadline: float | None) -> None:
        now = time.monotonic()
        stream.last_report = now
        self.selector.register(stream.fd, selectors.EVENT_READ, ("out", stream))
        if stream.pidfd is not None:
            self.selector.register(stream.pidfd, selectors.EVENT_READ, ("exit", stream))
        if stream.pidfd is None or stream.spec.collectors:
            self._polled.add(stream)
            self.schedule(now + _POLL_INTERVAL, "poll", stream)
        if deadline is not None:
            self.schedule(now + deadline, "deadline", stream)

    def schedule(self, at: float, kind: str, target: _Stream | _Running) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, target))

    def _run(self) -> None:
        while True:
            try:
                self._turn()
            except Exception:  # noqa: BLE001 - the pump must outlive any one failure
                logging.getLogger("katib.trial_runner").exception("trial output pump")
                time.sleep(0.05)

    def _turn(self) -> None:
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._drain_inbox()
                    continue
                kind, stream = key.data
                if stream.done:
                    continue
                try:
                    if kind == "out":
                        self._read(stream)
                    else:
                        self._exited(stream)
                except Exception as e:  # noqa: BLE001 - a reader failure must still end the trial
                    self._fail(stream, e)
            self._fire_timers()

    def _drain_inbox(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._inbox_lock:
            calls, self._inbox = self._inbox, []
        for func in calls:
            try:
                func()
            except Exception:  # noqa: BLE001 - one trial's trouble must not stop the pump
                logging.getLogger("katib.trial_runner").exception("trial output pump")

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, target = heapq.heappop(self._timers)
            try:
                self._timer(kind, target, now)
            except Exception as e:  # noqa: BLE001 - as for reads
                if isinstance(target, _Stream):
                    self._fail(target, e)

    def _timer(self, kind: str, target: _Stream | _Running, now: float) -> None:
        if kind == "sigkill":
            assert isinstance(target, _Running)
            _signal_group(target, signal.SIGKILL)  # nothing once the trial has ended
            return
        assert isinstance(target, _Stream)
        stream = target
        if stream.done:
            return
        if kind == "report":
            stream.report_due = False
            self._report(stream, now)
        elif kind == "deadline":
            self.runner._expire(stream.running)
        elif kind == "poll":
            for collector in stream.spec.collectors:
                stream.pending.extend(collector.poll())
            self._report(stream, now)
            if stream.pidfd is None and _has_exited(stream.running.proc):
                self._exited(stream)
            if not stream.done:
                self.schedule(now + _POLL_INTERVAL, "poll", stream)
        elif kind == "drain":
            self._end(stream)

    def _report(self, stream: _Stream, now: float) -> None:
        """Hand what the trial reported to the controller, at most every REPORT_INTERVAL."""
        if not stream.pending:
            return
        due = stream.last_report + REPORT_INTERVAL
        if now < due:
            if not stream.report_due:
                stream.report_due = True
                self.schedule(due, "report", stream)
            return
        stream.log.flush()
        stream.sink(MetricsReported(stream.running.name, stream.pending))
        stream.pending = []
        stream.last_report = now

    def _read(self, stream: _Stream) -> None:
        chunk = os.read(stream.fd, _READ_SIZE)
        if not chunk:
            stream.eof = True
            self.selector.unregister(stream.fd)
            if stream.exited_at is not None:
                self._end(stream)
            elif stream.pidfd is None:
                # No exit notification: look again at once, then at every poll.
                if _has_exited(stream.running.proc):
                    self._exited(stream)
            return
        stream.log.write(chunk)
        stream.log.flush()  # the log is read live (``katib logs --follow``)
        if stream.lines is None:
            return
        stream.pending.extend(stream.lines.feed(chunk))
        self._report(stream, time.monotonic())

    def _exited(self, stream: _Stream) -> None:
        """The process has ended: its output is drained until EOF, for at most a second (a
        grandchild that inherited the pipe may keep it open forever)."""
        if stream.exited_at is not None:
            return
        stream.exited_at = time.monotonic()
        if stream.pidfd is not None:
            self.selector.unregister(stream.pidfd)
        if stream.eof:
            self._end(stream)
        else:
            self.schedule(stream.exited_at + _DRAIN_AFTER_EXIT, "drain", stream)

    def _fail(self, stream: _Stream, error: Exception) -> None:
        with contextlib.suppress(Exception):
            stream.log.write(f"\n[katib] reading trial output failed: {error}\n".encode())
        # The trial ends with its process, as with a reader thread that stopped reading:
        # stop it rather than leave it unwatched.
        _signal_group(stream.running, signal.SIGKILL)
        self._end(stream)

    def _end(self, stream: _Stream) -> None:
        if stream.done:
            return
        stream.done = True
        self._polled.discard(stream)
        for fd in (stream.fd, stream.pidfd):
            if fd is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(fd)
        spec = stream.spec
        if stream.lines is not None:
            with contextlib.suppress(Exception):
                stream.pending.extend(stream.lines.finish())
        with contextlib.suppress(Exception):
            stream.log.close()
        with contextlib.suppress(Exception):
            stream.running.proc.stdout.close()  # type: ignore[union-attr]
        if stream.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(stream.pidfd)
        if spec.collectors:
            # finish() may take a while (a last scrape, a last run of a command): not here.
            threading.Thread(
                target=self.runner._finish, args=(stream,), name="trial-collectors", daemon=True
            ).start()
        else:
            self.runner._finish(stream)


class ProcessRunner:
    """Runs commands as child process groups of this one, one per name.

    Events follow the :class:`~trial_runner.Launcher` contract: :class:`TrialStarted`
    when the process is started, :class:`MetricsReported` while it runs, and one
    :class:`TrialEnded`. One thread (:class:`_Pump`) watches every process's output.
    """

    def __init__(self, *, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._pump: _Pump | None = None

    def _the_pump(self) -> _Pump:
        with self._lock:
            if self._pump is None:
                self._pump = _Pump(self)
            return self._pump

    def start(
        self,
        trial: str,
        spec: ProcessSpec,
        sink: EventSink,
        *,
        on_exit: Callable[[], None] | None = None,
    ) -> int | None:
        """Start ``spec`` as the process of ``trial``; its pid, or None if it cannot start."""
        pump = self._the_pump()
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(spec.env)
        log = open(spec.log_path, "ab" if spec.append_log else "wb")  # noqa: SIM115 - closed by the pump
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
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        stream = _Stream(running, spec, log, sink, fd, _pidfd(proc.pid),
                         lines=None if spec.parse_line is None else LineFeed(spec.parse_line))
        sink(TrialStarted(trial, time.time(), proc.pid))
        pump.call(lambda: pump.add(stream, spec.deadline_seconds))
        return proc.pid

    def _finish(self, stream: _Stream) -> None:
        """The process ended and its output is read: report its end (any thread)."""
        running = stream.running
        _wait_exited(running.proc, None)
        pending = stream.pending
        for collector in stream.spec.collectors:
            # A collector must never keep the trial from ending, whatever it runs into.
            with contextlib.suppress(Exception):
                pending.extend(collector.finish())
            with contextlib.suppress(Exception):
                collector.close()
        # As when a pod's container ends: whatever the trial left behind in its process
        # group (background helpers, data loaders) ends with it.
        _signal_group(running, signal.SIGKILL)
        with running.lock:
            code = running.proc.wait()
        with self._lock:
            self._running.pop(running.name, None)
        if running.on_exit is not None:
            running.on_exit()
        stream.sink(_ended(running, code, pending, stream.spec))

    def _expire(self, running: _Running) -> None:
        """The deadline passed: stop the process, unless it is being stopped already."""
        if running.kill_reason is None and not running.deadline_exceeded:
            running.deadline_exceeded = True
            self._terminate(running)

    def _terminate(self, running: _Running) -> None:
        _signal_group(running, signal.SIGTERM)
        pump = self._the_pump()
        at = time.monotonic() + self.grace_seconds
        pump.call(lambda: pump.schedule(at, "sigkill", running))

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
            _signal_group(r, signal.SIGTERM)
        deadline = time.monotonic() + wait
        for r in running:
            _wait_exited(r.proc, deadline)
            # SIGKILL the group even after the leader exited: its children may live on. (The
            # pump reaps the leader; until then the group's id stays this trial's.)
            _signal_group(r, signal.SIGKILL)

    def active(self) -> list[str]:
        with self._lock:
            return list(self._running)


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when ``pid`` exits (Linux 5.3+), or None."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


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


def _signal_group(running: _Running, sig: signal.Signals) -> None:
    """Signal the trial's process group, unless its leader was reaped (the trial has ended:
    its pid, the group's id, may belong to another process by now)."""
    with running.lock:
        if running.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(running.proc.pid, sig)


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has ended, without reaping it."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # reaped already


def _wait_exited(proc: subprocess.Popen[bytes], deadline: float | None) -> None:
    """Wait until the process has ended (or ``deadline``, a monotonic time), without
    reaping it."""
    if deadline is None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        return
    while not _has_exited(proc) and time.monotonic() < deadline:
        time.sleep(0.02)


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
