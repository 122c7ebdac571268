"""Katib's Custom collector: a command of the user's that prints the trial's metrics.

In Katib the custom collector is a container that runs next to the trial and prints metrics;
locally the command runs now and then while the trial runs, on a background thread, and once
more after it has ended. Its output is read as the StdOut collector reads a trial's.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

from trial_runner.metrics._collector import (
    Collector,
    InvalidCollectorError,
    LineAssembler,
    logger,
)
from trial_runner.metrics._stdout import MetricsParser, Observation, RejectCallback

__all__ = ["CustomCollector"]

_READ_SIZE = 64 * 1024
#: After the command has exited, how long its output pipe may stay open (a background child
#: that inherited it) before reading stops.
_DRAIN_AFTER_EXIT = 0.5
#: How long ``finish`` and ``close`` wait for a run of the background thread to stop.
_STOP_WAIT = 5.0

_Key = tuple[str, float, int | None]


class CustomCollector(Collector):
    """Runs a command every ``interval`` seconds and parses the metrics it prints.

    * The first :meth:`poll` starts a background thread that runs the command at once, then
      ``interval`` seconds after each run ends; :meth:`finish` stops it (killing a run in
      progress) and runs the command one last time, waiting for it.
    * Standard output is parsed line by line with ``metrics_format`` (Katib's default
      ``name=value`` when None); standard error only shows in the log when the command
      fails. A command that fails (non-zero exit, not found, over ``timeout``) is logged;
      what it printed before is still used.
    * Points already reported are not reported again: a point is its (name, value, step),
      and a run reports only the occurrences beyond the most any earlier run printed. So a
      command that prints the whole history each time adds only the new lines, and a value
      that legitimately repeats (``loss=0.5`` in two epochs) still counts twice once the
      command prints it twice.
    * The command runs in its own process group, which is killed when it exits, is stopped,
      or runs over ``timeout``.

    Args:
        argv: the command and its arguments (no shell; use ``["sh", "-c", ...]`` for one).
        metric_names: the metrics to keep.
        env: variables added to this process's environment for the command.
        cwd: the command's working directory (the trial's, usually).
        interval: seconds between the end of one run and the start of the next.
        metrics_format: regexes with two top-level groups (name, value).
        timeout: seconds a run may take before it is killed.
        on_reject: told about dropped values of tracked metrics.

    Raises:
        InvalidCollectorError: an empty command, or an interval or timeout that isn't positive.
        InvalidMetricsFormatError: a ``metrics_format`` regex is unusable.
    """

    def __init__(
        self,
        argv: Sequence[str],
        metric_names: Iterable[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        interval: float = 5.0,
        metrics_format: Sequence[str] | None = None,
        timeout: float = 60.0,
        on_reject: RejectCallback | None = None,
    ) -> None:
        super().__init__(metric_names, on_reject=on_reject)
        if isinstance(argv, str | bytes) or not argv:
            raise InvalidCollectorError("the custom collector's command must be a non-empty list")
        if not interval > 0 or not timeout > 0:
            raise InvalidCollectorError(
                f"interval and timeout must be positive, not {interval!r} and {timeout!r}"
            )
        self.argv = [os.fspath(arg) for arg in argv]
        self.env = dict(env or {})
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.interval = float(interval)
        self.timeout = float(timeout)
        self._parser = MetricsParser(self.metric_names, metrics_format, on_reject=self._reject)
        self._needles = [name.encode() for name in self.metric_names]
        self._lock = threading.Lock()
        self._pending: list[Observation] = []
        self._seen: Counter[_Key] = Counter()  # most occurrences of a point in any run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self.runs = 0
        """Runs that completed (for tests and diagnostics)."""

    def poll(self) -> list[Observation]:
        if self._finished:
            return []
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"collector {self.argv[0]}", daemon=True
            )
            self._thread.start()
        with self._lock:
            out, self._pending = self._pending, []
        return out

    def finish(self) -> list[Observation]:
        if self._finished:
            return []
        self._stop_thread()
        found = self._run(cancel=None)
        with self._lock:
            self._finished = True
            out, self._pending = self._pending, []
            if found is not None:
                out.extend(self._new(found))
        return out

    def close(self) -> None:
        self._stop_thread()
        with self._lock:
            self._finished = True
            self._pending = []

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=_STOP_WAIT)

    def _loop(self) -> None:
        while not self._stop.is_set():
            found = self._run(cancel=self._stop)
            if found is not None:
                with self._lock:
                    if not self._finished:
                        self._pending.extend(self._new(found))
            if self._stop.wait(self.interval):
                break

    def _new(self, found: list[Observation]) -> list[Observation]:
        """The points of one run that earlier runs didn't print as often; call with the lock."""
        counts: Counter[_Key] = Counter()
        fresh: list[Observation] = []
        for observation in found:
            key = (observation.name, observation.value, observation.step)
            counts[key] += 1
            if counts[key] > self._seen[key]:
                self._seen[key] = counts[key]
                fresh.append(observation)
        return fresh

    def _run(self, cancel: threading.Event | None) -> list[Observation] | None:
        """Run the command once; what it printed, or None if ``cancel`` stopped it."""
        env = dict(os.environ)
        env.update(self.env)
        with tempfile.TemporaryFile() as errors:
            try:
                proc = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    start_new_session=True,
                    close_fds=True,
                )
            except (OSError, ValueError) as e:
                self._note(f"cannot run {self.argv[0]}: {e}", key=(self.argv[0], "start"))
                return []
            assert proc.stdout is not None
            try:
                found, why = self._read(proc, proc.stdout, cancel)
            finally:
                proc.stdout.close()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                code = proc.wait()
            if why == "cancelled":
                return None
            self.runs += 1
            if why is not None or code != 0:
                reason = why or f"exited with status {code}"
                self._note(
                    f"{' '.join(self.argv)[:200]}: {reason}{_tail(errors)}",
                    key=(self.argv[0], "run"),
                )
            return found

    def _read(
        self, proc: subprocess.Popen[bytes], stdout: IO[bytes], cancel: threading.Event | None
    ) -> tuple[list[Observation], str | None]:
        """Parse the command's output until it ends; also why it was cut short, if it was."""
        lines = LineAssembler(self._needles)
        parse = self._parser.parse_line
        found: list[Observation] = []
        fd = stdout.fileno()
        deadline = time.monotonic() + self.timeout
        exited_at: float | None = None
        while True:
            if cancel is not None and cancel.is_set():
                return found, "cancelled"
            now = time.monotonic()
            if now >= deadline:
                return found, f"ran longer than {self.timeout:g} s; killed"
            if proc.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > _DRAIN_AFTER_EXIT:
                    break
            ready, _, _ = select.select([fd], [], [], min(0.1, deadline - now))
            if not ready:
                continue
            chunk = os.read(fd, _READ_SIZE)
            if not chunk:
                break
            for line in lines.feed(chunk):
                found.extend(parse(line))
        last = lines.end()
        if last is not None:
            found.extend(parse(last))
        return found, None


def _tail(errors: IO[bytes]) -> str:
    """The end of what the command wrote to standard error, for the log."""
    try:
        size = errors.seek(0, os.SEEK_END)
        errors.seek(max(0, size - 500))
        text = errors.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    if not text:
        return ""
    logger.debug("stderr of the custom collector's command: %s", text)
    return f": {text.splitlines()[-1][:200]}"
