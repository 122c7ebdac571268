"""Katib's File collector: metrics a trial writes to a file, read while it grows.

The file is tailed the way ``tail -F`` follows a log: it may appear late, and it may be
truncated, rewritten or replaced under the same name while the trial runs. Reading is
incremental, in small chunks, so neither the time of one poll nor the memory used depends on
how much the trial writes.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Sequence

from trial_runner.metrics._collector import (
    Collector,
    InvalidCollectorError,
    LineAssembler,
    logger,
)
from trial_runner.metrics._stdout import (
    MetricsParser,
    Observation,
    RejectCallback,
    parse_json_line,
)

__all__ = ["FileCollector"]

#: Bytes read at a time. Small enough that one chunk full of metric lines parses in ~1-3 ms.
CHUNK_SIZE = 16 * 1024
#: After this long in one ``poll``, the rest waits for the next one.
POLL_BUDGET = 0.005
#: How many bytes before the read position are compared to tell an in-place rewrite.
_TAIL_CHECK = 32


class FileCollector(Collector):
    """Tails the file a trial writes its metrics to (Katib's ``File`` collector).

    * The file may not exist yet; it is opened as soon as it appears (only a regular file:
      a directory or a FIFO at that path is ignored, and reported once).
    * If it shrinks, or the bytes before the read position change (truncated and rewritten
      in place), reading starts over from its beginning; an unfinished line of the old
      content is dropped, since it may have been cut in the middle of a number.
    * If another file takes its name (deleted and recreated, or renamed over), what is left
      of the old file is read to its end, its last line included, and the new file is read
      from its beginning. A deleted file is read on until a new one appears, because the
      trial may still be writing to it.
    * A line is parsed once its newline arrives, or at :meth:`finish`. Only the first
      :data:`~trial_runner.metrics.MAX_LINE_CHARS` bytes of a line are examined; bytes that
      aren't UTF-8 are replaced, so binary garbage yields nothing.

    Args:
        path: the metrics file (Katib's ``source.fileSystemPath.path``). A relative path is
            taken relative to this process's working directory.
        metric_names: the metrics to keep.
        format: ``"TEXT"`` (``metricsFormat`` regexes, as for stdout) or ``"JSON"`` (one
            object per line, optional ``timestamp``; values numbers or numeric strings).
        metrics_format: regexes for ``TEXT``; None means Katib's default.
        on_reject: told about dropped values of tracked metrics.

    Raises:
        InvalidCollectorError: an unknown format, or ``metrics_format`` with ``JSON``.
        InvalidMetricsFormatError: a ``metrics_format`` regex is unusable.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        metric_names: Iterable[str],
        *,
        format: str = "TEXT",
        metrics_format: Sequence[str] | None = None,
        on_reject: RejectCallback | None = None,
        text_metrics: Iterable[str] = (),
    ) -> None:
        super().__init__(metric_names, on_reject=on_reject)
        file_format = format.upper()
        if file_format not in ("TEXT", "JSON"):
            raise InvalidCollectorError(f"file format must be TEXT or JSON, not {format!r}")
        if file_format == "JSON" and metrics_format:
            raise InvalidCollectorError("metricsFormat filters can't be used with the JSON format")
        self.path = os.fspath(path)
        self.format = file_format
        self._parser: MetricsParser | None = None
        needles = [name.encode() for name in self.metric_names]
        if file_format == "TEXT":
            self._parser = MetricsParser(
                self.metric_names, metrics_format, on_reject=self._reject,
                text_metrics=text_metrics,
            )
        else:
            needles.append(b"\\u")  # a key may spell the name with escapes
        self._lines = LineAssembler(needles)
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._offset = 0  # bytes of the open file consumed
        self._size = -1  # its size at the last check
        self._tail = b""  # the last bytes consumed, to notice an in-place rewrite
        self._finished = False

    def poll(self) -> list[Observation]:
        if self._finished:
            return []
        out: list[Observation] = []
        self._collect(out, deadline=time.monotonic() + POLL_BUDGET)
        return out

    def finish(self) -> list[Observation]:
        if self._finished:
            return []
        self._finished = True
        out: list[Observation] = []
        try:
            self._collect(out, deadline=None)
            self._parse_last_line(out)
        finally:
            self._close_file()
        return out

    def close(self) -> None:
        self._finished = True
        self._close_file()

    # --- reading ------------------------------------------------------------------------------

    def _collect(self, out: list[Observation], *, deadline: float | None) -> None:
        if not self._follow(out, deadline):
            return
        self._read(out, deadline)

    def _read(self, out: list[Observation], deadline: float | None) -> bool:
        """Consume the open file up to its end or the deadline; whether its end was reached."""
        assert self._fd is not None
        while True:
            try:
                chunk = os.read(self._fd, CHUNK_SIZE)
            except OSError as e:
                self._note(f"{self.path}: read failed: {e}", key=(self.path, "read"))
                return True
            if not chunk:
                return True
            self._offset += len(chunk)
            self._tail = (self._tail + chunk[-_TAIL_CHECK:])[-_TAIL_CHECK:]
            self._parse(self._lines.feed(chunk), out)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _follow(self, out: list[Observation], deadline: float | None) -> bool:
        """Open the file, or notice it was truncated or replaced; whether one is open now."""
        try:
            st: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            self._note(f"{self.path}: cannot stat: {e}", key=(self.path, "stat"))
            st = None
        if self._fd is None:
            return st is not None and self._open(st)
        if st is None:  # deleted: the trial may still write to it; a new file will show
            return True
        if (st.st_dev, st.st_ino) != self._identity:
            if not self._read(out, deadline):
                return False  # the old file's end comes first; switch at the next poll
            logger.info("%s was replaced; reading the new file from its beginning", self.path)
            self._parse_last_line(out)
            self._close_file()
            return self._open(st)
        if st.st_size != self._size:
            if st.st_size < self._offset or not self._same_tail():
                logger.info("%s was truncated; reading it again from its beginning", self.path)
                self._start_over()
            self._size = st.st_size
        return True

    def _open(self, st: os.stat_result) -> bool:
        if not stat.S_ISREG(st.st_mode):
            self._note(f"{self.path}: not a regular file; ignored", key=(self.path, "type"))
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:  # gone again, or not readable
            self._note(f"{self.path}: cannot open: {e}", key=(self.path, "open"))
            return False
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # swapped between stat and open
            os.close(fd)
            return False
        self._fd = fd
        self._identity = (opened.st_dev, opened.st_ino)
        self._size = opened.st_size
        self._offset = 0
        self._tail = b""
        return True

    def _same_tail(self) -> bool:
        """Whether the bytes just before the read position are still those that were read."""
        if not self._tail:
            return True
        assert self._fd is not None
        try:
            now = os.pread(self._fd, len(self._tail), self._offset - len(self._tail))
        except OSError:
            return True
        return now == self._tail

    def _start_over(self) -> None:
        assert self._fd is not None
        self._lines.reset()
        os.lseek(self._fd, 0, os.SEEK_SET)
        self._offset = 0
        self._tail = b""

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._identity = None

    # --- parsing ------------------------------------------------------------------------------

    def _parse_last_line(self, out: list[Observation]) -> None:
        line = self._lines.end()
        if line is not None:
            self._parse([line], out)

    def _parse(self, lines: list[bytes], out: list[Observation]) -> None:
        if not lines:
            return
        parser = self._parser
        if parser is not None:
            for line in lines:
                out.extend(parser.parse_line(line))
            return
        names = self.metric_names
        for line in lines:
            if not line.strip():
                continue
            found = parse_json_line(line, names, on_reject=self._reject)
            if found:
                out.extend(found)
            elif not line.lstrip().startswith(b"{"):
                self._note(
                    f"{self.path}: skipped a line that isn't a JSON object: {line[:80]!r}",
                    key=(self.path, "json"),
                )
