"""The collector interface: reading a trial's metrics from wherever it reports them, while it runs.

Katib runs a metrics collector as a sidecar next to each trial; locally the launcher's reader
thread polls a :class:`Collector` instead. This module also holds what the collectors share:
rejection logging and the cutting of a byte stream into bounded lines.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

from katib.errors import KatibError
from trial_runner.metrics._stdout import MAX_LINE_CHARS, Observation, RejectCallback

__all__ = [
    "Collector",
    "InvalidCollectorError",
    "LineAssembler",
    "MissingDependencyError",
    "logger",
]

logger = logging.getLogger("katib.metrics")


class InvalidCollectorError(KatibError, ValueError):
    """A collector's settings can't be used (an unknown file format, a filter with JSON...)."""


class MissingDependencyError(KatibError, ImportError):
    """The collector needs an optional package that isn't installed; the message says which."""


class Collector(ABC):
    """Reads the metrics a running trial reports, a little at a time.

    Call order: :meth:`poll` any number of times while the trial runs, then :meth:`finish`
    once after its process has exited, then :meth:`close` (also usable as a context manager;
    ``close`` alone, without ``finish``, abandons what wasn't read yet). After ``finish``,
    ``poll`` returns nothing.

    Contract for implementations:

    * ``poll`` is called by the launcher's reader thread at least every 0.25 s. It returns the
      observations that appeared since the previous call, and must be cheap: it never waits
      on the trial, a server or a command for more than a few milliseconds. Work that can
      take longer happens on a background thread, or is left for the next call.
    * ``finish`` reads whatever is left; it may take longer, but stays bounded.
    * Bad data never raises: a malformed line, an unreadable file or a server that doesn't
      answer is skipped and logged on the ``katib.metrics`` logger. A tracked metric's value
      that isn't a finite number is reported to ``on_reject(name, raw, reason)`` as well.
      Only a collector's own settings raise, when it is built.
    * One thread at a time calls ``poll`` / ``finish`` / ``close``; any background thread is
      the collector's own business.

    Args:
        metric_names: the metrics to keep (Katib's objective and additional metrics).
        on_reject: told about each dropped value of a tracked metric, as in
            :class:`~trial_runner.metrics.MetricsParser`.
    """

    def __init__(
        self, metric_names: Iterable[str], *, on_reject: RejectCallback | None = None
    ) -> None:
        if isinstance(metric_names, str | bytes):
            raise TypeError("metric_names must be a collection of names, not one string")
        self.metric_names: tuple[str, ...] = tuple(
            dict.fromkeys(name for name in metric_names if name)
        )
        self._on_reject = on_reject
        self._warned: set[tuple[str, str]] = set()

    @abstractmethod
    def poll(self) -> list[Observation]:
        """The observations reported since the last call; quick, never blocking."""

    @abstractmethod
    def finish(self) -> list[Observation]:
        """Everything not returned yet, read once the trial's process has exited."""

    def close(self) -> None:  # noqa: B027 - collectors without resources need nothing here
        """Release files, threads and processes; safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _reject(self, name: str, raw: str, reason: str) -> None:
        """Log a dropped value (loudly once per metric and reason) and tell ``on_reject``."""
        self._note(f"{name}: dropped value {raw[:80]!r}: {reason}", key=(name, reason))
        if self._on_reject is not None:
            self._on_reject(name, raw, reason)

    def _note(self, message: str, *, key: tuple[str, str]) -> None:
        """Log a problem with the trial's data: a warning the first time, then at debug level.

        A trial that prints NaN every step, or a file that stays corrupt, would otherwise
        fill the log with the same line.
        """
        if key in self._warned:
            logger.debug("%s", message)
        else:
            self._warned.add(key)
            logger.warning("%s", message)


class LineAssembler:
    """Cuts a byte stream, fed in chunks, into lines of at most :data:`MAX_LINE_CHARS` bytes.

    Memory stays within one line limit plus one chunk whatever the stream holds: of a longer
    line only the first :data:`MAX_LINE_CHARS` bytes are kept (as the stdout reader does).

    Args:
        needles: when given, lines are only returned from a stretch of the stream that
            contains one of these byte strings; a stretch of complete lines without any is
            skipped whole, without being split. A line can only hold a metric whose name it
            contains, so this makes megabytes of other output nearly free.
    """

    __slots__ = ("_buffer", "_skipping", "_needles")

    def __init__(self, needles: Sequence[bytes] | None = None) -> None:
        self._buffer = bytearray()
        self._skipping = False  # inside a line longer than MAX_LINE_CHARS
        self._needles = tuple(needles) if needles is not None else None

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines that ``chunk`` completes, without their newline."""
        buffer = self._buffer
        start = 0
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return []
            self._skipping = False
            start = nl + 1
        buffer += memoryview(chunk)[start:]
        last_nl = buffer.rfind(b"\n")
        lines: list[bytes] = []
        if last_nl >= 0:
            if self._wanted(buffer, last_nl):
                begin = 0
                while begin <= last_nl:
                    nl = buffer.find(b"\n", begin, last_nl + 1)
                    lines.append(bytes(buffer[begin : min(nl, begin + MAX_LINE_CHARS)]))
                    begin = nl + 1
            del buffer[: last_nl + 1]
        if len(buffer) > MAX_LINE_CHARS:
            # The line is already too long: keep its head, drop the rest up to its newline.
            if self._wanted(buffer, MAX_LINE_CHARS):
                lines.append(bytes(buffer[:MAX_LINE_CHARS]))
            buffer.clear()
            self._skipping = True
        return lines

    def end(self) -> bytes | None:
        """The unfinished last line, if any (the stream has ended), and forget it."""
        line = None
        if self._buffer and not self._skipping:
            line = bytes(self._buffer[:MAX_LINE_CHARS])
        self.reset()
        return line

    def reset(self) -> None:
        """Forget the unfinished line (the stream it belonged to is gone)."""
        self._buffer.clear()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held for an unfinished line."""
        return len(self._buffer)

    def _wanted(self, buffer: bytearray, end: int) -> bool:
        if self._needles is None:
            return True
        return any(buffer.find(needle, 0, end) >= 0 for needle in self._needles)
