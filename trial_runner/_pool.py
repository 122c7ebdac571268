"""Function trials in a pool of reusable worker processes (``tune(executor="pool")``).

A trial of ``python -u objective.py ARGS`` costs an interpreter start and the script's imports
each time. The pool keeps long-lived workers (:mod:`trial_runner._worker`) that import the
script once and then run its trials one at a time, each still with its own log file, metrics,
deadline and kill, and with the events a process trial has: :class:`TrialStarted` (the
worker's pid), :class:`MetricsReported` while it runs, one :class:`TrialEnded`.

Isolation is per worker, not per trial: a worker is its own process group, so a trial that
is killed, runs past its deadline, crashes the interpreter (``os._exit``, a segfault) or
leaves the worker unusable fails alone; the worker is stopped and a fresh one takes the next
trial. What a trial changes inside the worker (module globals, threads it leaves running) is
seen by the next trial of the same worker: the pool is for trusted code, and a server keeps
one process per trial.

Which trials qualify is :func:`pool_script`'s business: the trial template opts in with the
:data:`EXECUTOR_ANNOTATION` annotation (written by ``tune()``), and the command must be this
Python running a script file that defines the worker's entry point.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
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
from trial_runner._process import REPORT_INTERVAL, LineFeed, ProcessSpec, describe_exit
from trial_runner.metrics import Observation

#: The pod-template annotation by which a trial template asks for a worker pool locally.
EXECUTOR_ANNOTATION = "katib-local/executor"
POOL = "pool"
#: Interpreter options a pooled command may have (the worker is started with them).
_FLAGS = frozenset({"-u", "-B", "-E", "-s", "-O", "-OO"})
_WORKER = str(Path(__file__).with_name("_worker.py"))
#: An idle worker unused for this long is stopped (its experiment has probably ended).
IDLE_SECONDS = 60.0
_TICK = 0.25


@dataclass(frozen=True)
class PoolKey:
    """Trials with the same key can share a worker: the same interpreter, options and
    script, unchanged since the worker imported it."""

    interpreter: str
    flags: tuple[str, ...]
    script: str
    stamp: tuple[int, int, int]


def pool_script(manifest: Mapping[str, Any], spec: ProcessSpec) -> tuple[PoolKey, list[str]] | None:
    """The pool key and the script's arguments of a trial that may run in a worker, or None.

    A trial qualifies when its rendered template's pod carries
    ``katib-local/executor: pool``, its command is this Python (options among ``-u -B -E -s
    -O -OO``) running a ``.py`` file, and its metrics are read from its output or pushed
    (no collector polls files or ports).
    """
    if spec.collectors or _annotation(manifest) != POOL:
        return None
    argv = list(spec.argv)
    if len(argv) < 2 or argv[0] != sys.executable:
        return None
    i = 1
    while i < len(argv) and argv[i] in _FLAGS:
        i += 1
    if i >= len(argv) or not argv[i].endswith(".py"):
        return None
    script = os.path.join(spec.cwd, argv[i])
    try:
        st = os.stat(script)
    except OSError:
        return None
    key = PoolKey(argv[0], tuple(argv[1:i]), os.path.abspath(script),
                  (st.st_mtime_ns, st.st_size, st.st_ino))
    return key, argv[i + 1 :]


def _annotation(manifest: Mapping[str, Any]) -> Any:
    template = (manifest.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(EXECUTOR_ANNOTATION)


class _Worker:
    """One worker process and its end of the channel."""

    def __init__(self, key: PoolKey, env: Mapping[str, str]) -> None:
        self.key = key
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [key.interpreter, *key.flags, _WORKER, str(theirs.fileno()), key.script,
                 str(os.getpid())],
                # Not the first trial's name: a search for a trial's leftovers by its
                # environment (kill_by_environment) must not find the worker.
                env={k: v for k, v in {**os.environ, **env}.items() if k != "KATIB_TRIAL_NAME"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.channel = ours
        self.idle_since = time.monotonic()
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, request: Mapping[str, Any]) -> None:
        self.channel.sendall(json.dumps(request).encode() + b"\n")

    def answer(self, timeout: float) -> dict[str, Any] | None:
        """The worker's answer if one came within ``timeout``; raises EOFError when the
        worker is gone."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self.channel], [], [], timeout)
            if not ready:
                if not self.alive():
                    raise EOFError  # gone, though something it started holds the channel
                return None
            try:
                chunk = self.channel.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, wait: float = 1.0) -> None:
        """End the worker: close its channel (it exits), then kill what is left."""
        with contextlib.suppress(OSError):
            self.channel.close()
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1.0)


@dataclass
class _Running:
    name: str
    worker: _Worker
    spec: ProcessSpec
    sink: EventSink
    log_offset: int
    on_exit: Callable[[], None] | None = None
    kill_reason: KillReason | None = None
    kill_message: str = ""
    deadline_exceeded: bool = False
    stopping: bool = False
    timers: list[threading.Timer] = field(default_factory=list)


class WorkerPool:
    """Runs poolable trials in reusable workers, at most ``limit`` per key at a time.

    Events follow the :class:`~trial_runner.Launcher` contract, as
    :class:`~trial_runner._process.ProcessRunner`'s do.
    """

    def __init__(self, *, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds
        self._lock = threading.Lock()
        self._idle: dict[PoolKey, list[_Worker]] = {}
        self._running: dict[str, _Running] = {}
        self._limits: dict[PoolKey, int] = {}

    def start(
        self,
        trial: str,
        spec: ProcessSpec,
        key: PoolKey,
        args: Sequence[str],
        sink: EventSink,
        *,
        limit: int = 1,
        on_exit: Callable[[], None] | None = None,
    ) -> int | None:
        """Run ``trial`` in a worker of ``key``; the worker's pid, or None if none starts."""
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "ab" if spec.append_log else "wb") as log:
            offset = log.tell()
        request = {
            "argv": list(args),
            "env": dict(spec.env),
            "cwd": spec.cwd,
            "log": str(spec.log_path),
        }
        self._stop_stale(key)
        with self._lock:
            self._limits[key] = max(1, limit)
        worker = None
        for _ in range(2):  # an idle worker may have died meanwhile: then a fresh one
            try:
                worker = self._take(key) or _Worker(key, spec.env)
                worker.send(request)
                break
            except OSError as e:
                if worker is not None:
                    worker.stop(wait=0.0)
                worker = None
                error = e
        if worker is None:
            message = f"cannot start a pool worker for {key.script}: {error}"
            with open(spec.log_path, "ab") as log:
                log.write(f"[katib] {message}\n".encode())
            if on_exit is not None:
                on_exit()
            sink(TrialEnded(trial, Ending.NOT_STARTED, message, reason="StartError"))
            return None
        running = _Running(trial, worker, spec, sink, offset, on_exit)
        with self._lock:
            self._running[trial] = running
        if spec.deadline_seconds is not None:
            timer = threading.Timer(spec.deadline_seconds, self._expire, args=(running,))
            timer.daemon = True
            running.timers.append(timer)
            timer.start()
        sink(TrialStarted(trial, time.time(), worker.pid))
        threading.Thread(
            target=self._supervise, args=(running,), name=f"trial-{trial}", daemon=True
        ).start()
        return worker.pid

    # Stopping --------------------------------------------------------------------------------

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
                r.stopping = True
        for r in running:
            r.worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + wait
        for r in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.worker.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            r.worker.signal(signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Stop the idle workers (running trials go on; their workers stop afterwards)."""
        with self._lock:
            idle = [w for workers in self._idle.values() for w in workers]
            self._idle.clear()
        for worker in idle:
            worker.stop()

    def active(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def _expire(self, running: _Running) -> None:
        with self._lock:
            if running.kill_reason is not None or running.deadline_exceeded:
                return
            running.deadline_exceeded = True
        self._terminate(running)

    def _terminate(self, running: _Running) -> None:
        with self._lock:
            running.stopping = True
        running.worker.signal(signal.SIGTERM)
        timer = threading.Timer(self.grace_seconds, running.worker.signal, (signal.SIGKILL,))
        timer.daemon = True
        running.timers.append(timer)
        timer.start()

    # Workers ---------------------------------------------------------------------------------

    def _take(self, key: PoolKey) -> _Worker | None:
        while True:
            with self._lock:
                workers = self._idle.get(key)
                if not workers:
                    return None
                worker = workers.pop()
            if worker.alive():
                return worker
            worker.stop(wait=0.0)

    def _give_back(self, worker: _Worker) -> None:
        worker.idle_since = time.monotonic()
        with self._lock:
            workers = self._idle.setdefault(worker.key, [])
            busy = sum(1 for r in self._running.values() if r.worker.key == worker.key)
            if len(workers) + busy < self._limits.get(worker.key, 1):
                workers.append(worker)
                return
        worker.stop(wait=0.0)  # more workers than trials at a time (parallelism shrank)

    def _stop_stale(self, key: PoolKey) -> None:
        """Stop idle workers of a script that changed or was not used for a while."""
        now = time.monotonic()
        stale: list[_Worker] = []
        with self._lock:
            for other, workers in list(self._idle.items()):
                replaced = other.script == key.script and other != key
                for worker in list(workers):
                    if replaced or now - worker.idle_since > IDLE_SECONDS:
                        workers.remove(worker)
                        stale.append(worker)
                if not workers:
                    del self._idle[other]
        for worker in stale:
            worker.stop(wait=0.0)

    # One trial -------------------------------------------------------------------------------

    def _supervise(self, running: _Running) -> None:
        try:
            code, crashed, pending = self._follow(running)
        except Exception as e:  # noqa: BLE001 - a supervisor failure must still end the trial
            running.worker.signal(signal.SIGKILL)
            code, crashed, pending = None, True, []
            with contextlib.suppress(OSError), open(running.spec.log_path, "ab") as out:
                out.write(f"\n[katib] following the trial failed: {e!r}\n".encode())
        worker, spec = running.worker, running.spec
        for timer in running.timers:
            timer.cancel()
        with self._lock:
            self._running.pop(running.name, None)
            reuse = not crashed and not running.stopping
        if reuse:
            # Back before the end is reported: the controller's next launch finds it idle.
            self._give_back(worker)
        else:
            worker.stop(wait=0.0)
        if crashed and running.kill_reason is None and not running.deadline_exceeded:
            with contextlib.suppress(OSError), open(spec.log_path, "ab") as out:
                out.write(
                    f"\n[katib] the pool worker running this trial (pid {worker.pid}) "
                    f"{_ended_how(code)}; it is replaced\n".encode()
                )
        if running.on_exit is not None:
            running.on_exit()
        running.sink(_ended(running, code, crashed, pending))

    def _follow(self, running: _Running) -> tuple[int | None, bool, list[Any]]:
        """Wait for the trial's end, reading metrics from its log as they come; (exit
        status, whether the worker died, observations not reported yet)."""
        spec, worker = running.spec, running.worker
        lines = None if spec.parse_line is None else LineFeed(spec.parse_line)
        pending: list[Any] = []
        code: int | None = None
        returned: dict[str, float] = {}
        crashed = False
        last_report = time.monotonic()
        with open(spec.log_path, "rb") as log:
            log.seek(running.log_offset)
            while True:
                try:
                    answer = worker.answer(_TICK)
                except (EOFError, ValueError):
                    crashed = True
                    break
                if lines is not None:
                    chunk = log.read()
                    if chunk:
                        pending.extend(lines.feed(chunk))
                if answer is not None:
                    code = int(answer.get("exit", 1))
                    returned = answer.get("metrics") or {}
                    break
                if pending and time.monotonic() - last_report >= REPORT_INTERVAL:
                    running.sink(MetricsReported(running.name, pending))
                    pending = []
                    last_report = time.monotonic()
            if crashed:
                worker.signal(signal.SIGKILL)  # what it started goes with it
                code = worker.proc.wait()
            if lines is not None:
                pending.extend(lines.feed(log.read()))
                pending.extend(lines.finish())
        # What the function returned, as the trial would have pushed it, after its output.
        now = time.time()
        pending.extend(Observation(name, value, None, now) for name, value in returned.items())
        return code, crashed, pending


def _ended_how(code: int | None) -> str:
    text = describe_exit(code)
    return text.replace("exited", "exited without finishing the trial", 1)


def _ended(
    running: _Running, code: int | None, crashed: bool, observations: list[Any]
) -> TrialEnded:
    """The end of a pooled trial, as the launch boundary reports a process's."""
    name = running.name
    if running.kill_reason is not None:
        return TrialEnded(
            name, Ending.KILLED, running.kill_message or f"killed: {running.kill_reason.value}",
            exit_code=code, kill_reason=running.kill_reason, observations=observations,
        )
    if running.deadline_exceeded:
        return TrialEnded(
            name, Ending.DEADLINE_EXCEEDED,
            f"ran longer than {running.spec.deadline_seconds:g} s (activeDeadlineSeconds)",
            exit_code=code, observations=observations,
        )
    if crashed:
        return TrialEnded(
            name, Ending.FAILED,
            f"the pool worker running the trial {_ended_how(code)} (it is replaced)",
            exit_code=code if code != 0 else None, observations=observations,
        )
    if code == 0:
        return TrialEnded(name, Ending.COMPLETED, "exited with code 0", 0,
                          observations=observations)
    return TrialEnded(name, Ending.FAILED, describe_exit(code), code, observations=observations)
