"""Katib's TensorFlowEvent collector: scalar summaries from TensorBoard event files.

Event files (``events.out.tfevents.*``) are found anywhere under the trial's directory and
read incrementally with TensorBoard's own record loader; both TF1 ``simple_value`` summaries
and TF2 scalar tensors are taken. TensorBoard is an optional dependency
(``pip install 'katib-local[tfevent]'``).

Which tag feeds which metric follows Katib's ``tfevent_loader.py``: a metric ``accuracy``
takes the tag ``accuracy`` of any event file under the directory; a metric with a ``/``,
``train/accuracy``, takes the tag ``accuracy`` of event files in a directory ending in
``train`` (how TensorBoard separates runs), and also, beyond Katib, a tag spelled
``train/accuracy`` itself (what ``tf.name_scope("train")`` writes). Tags are compared
whole, not as prefixes as Katib does, so ``loss`` and ``loss_ema`` stay apart; directories
are compared by path component, so ``pretrain`` doesn't end in ``train``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from trial_runner.metrics._collector import Collector, MissingDependencyError
from trial_runner.metrics._stdout import Observation, RejectCallback

__all__ = ["TFEventCollector", "matching_metrics"]

#: After this long in one ``poll``, the rest waits for the next one.
POLL_BUDGET = 0.005
#: How often the directory is searched again for new event files (at least).
RESCAN_INTERVAL = 1.0
#: Errors in a row after which a file is left alone until the next call.
_MAX_FAILURES = 3
_INSTALL_HINT = "pip install 'katib-local[tfevent]'"


def matching_metrics(tag: str, directory: str, metric_names: Iterable[str]) -> list[str]:
    """The metrics that a summary ``tag`` in an event file in ``directory`` reports.

    See the module docstring for the rule. ``directory`` is the event file's directory.
    """
    parts = _components(directory)
    found: list[str] = []
    for name in metric_names:
        if tag == name:
            found.append(name)
            continue
        parent, slash, leaf = name.rpartition("/")
        if not slash or tag != leaf:
            continue
        wanted = _components(parent)
        if wanted and parts[len(parts) - len(wanted) :] == wanted:
            found.append(name)
    return found


def _shortest(scalar: Any) -> float:
    """A numpy scalar as a float, a float32 one by its shortest decimal form.

    A float32 0.1 is 0.10000000149011612 as a double; Katib stores the tensor's text, "0.1",
    and so does this.
    """
    if scalar.dtype.kind == "f" and scalar.dtype.itemsize < 8:
        return float(str(scalar))
    return float(scalar)


def _components(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.replace(os.sep, "/").split("/") if part not in ("", "."))


@dataclass
class _EventFile:
    path: str
    loader: Any
    events: Iterator[Any] | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)  # tag -> metrics it feeds


class TFEventCollector(Collector):
    """Scalars of the experiment's metrics from the event files under ``directory``.

    Each observation carries the event's ``step`` and ``wall_time``. A value that isn't a
    finite number (NaN, infinite, a string or a tensor of more than one value under a
    metric's tag) is dropped and reported to ``on_reject``. An unreadable or corrupt file is
    logged and skipped; a record still being written is read once it is complete.

    Args:
        directory: searched, with its subdirectories, for event files (Katib's
            ``source.fileSystemPath.path`` of kind ``Directory``). It may appear late.
        metric_names: the metrics to keep.
        on_reject: told about dropped values of tracked metrics.

    Raises:
        MissingDependencyError: TensorBoard isn't installed.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        metric_names: Iterable[str],
        *,
        on_reject: RejectCallback | None = None,
    ) -> None:
        super().__init__(metric_names, on_reject=on_reject)
        try:
            from tensorboard.backend.event_processing.event_file_loader import (
                LegacyEventFileLoader,
            )
            from tensorboard.compat.proto import types_pb2
            from tensorboard.util.tensor_util import make_ndarray
        except ImportError as e:
            raise MissingDependencyError(
                "reading TensorFlow event files needs TensorBoard: " + _INSTALL_HINT
            ) from e
        import numpy  # TensorBoard's dependency as well

        self._float32 = numpy.float32
        # Not EventFileLoader: its compat layers (which turn simple_value into a tensor and
        # more) take most of the time, and a scalar is read here from either form directly.
        self._loader_class = LegacyEventFileLoader
        self._dt_float = types_pb2.DT_FLOAT
        self._dt_double = types_pb2.DT_DOUBLE
        self._make_ndarray = make_ndarray
        self.directory = os.path.abspath(os.fspath(directory))
        self._files: dict[str, _EventFile] = {}
        self._order: list[_EventFile] = []
        self._next = 0  # which file a poll starts with, so that one busy file can't starve others
        self._last_scan = -math.inf
        self._rescan_every = RESCAN_INTERVAL
        self._finished = False

    def poll(self) -> list[Observation]:
        if self._finished:
            return []
        now = time.monotonic()
        if now - self._last_scan >= self._rescan_every:
            self._scan()
            self._last_scan = time.monotonic()
            # A big tree (a trial pointed at its whole working directory) is searched less
            # often, so that searching stays a small part of the reader thread's time.
            self._rescan_every = max(RESCAN_INTERVAL, 20 * (self._last_scan - now))
        return self._read(deadline=time.monotonic() + POLL_BUDGET)

    def finish(self) -> list[Observation]:
        if self._finished:
            return []
        self._scan()
        out = self._read(deadline=None)
        self.close()
        return out

    def close(self) -> None:
        self._finished = True
        self._files.clear()
        self._order.clear()

    def _scan(self) -> None:
        found: list[str] = []
        for root, dirs, files in os.walk(self.directory, onerror=self._walk_error):
            dirs.sort()
            found.extend(os.path.join(root, f) for f in sorted(files) if "tfevents" in f)
        gone = self._files.keys() - set(found)
        if gone:  # deleted: a file created again under the same name is read from its start
            self._order = [entry for entry in self._order if entry.path not in gone]
            for path in gone:
                del self._files[path]
        for path in found:
            if path in self._files:
                continue
            try:
                loader = self._loader_class(path)
            except Exception as e:  # noqa: BLE001 - TensorBoard's reader raises its own errors
                self._note(f"{path}: cannot open event file: {e}", key=(path, "open"))
                continue
            entry = _EventFile(path, loader)
            self._files[path] = entry
            self._order.append(entry)

    def _walk_error(self, error: OSError) -> None:
        if not isinstance(error, FileNotFoundError):  # not created yet: normal
            self._note(f"{self.directory}: cannot list: {error}", key=(self.directory, "walk"))

    def _read(self, *, deadline: float | None) -> list[Observation]:
        out: list[Observation] = []
        count = len(self._order)
        for i in range(count):
            entry = self._order[(self._next + i) % count]
            if not self._read_file(entry, out, deadline):
                self._next = (self._next + i) % count
                return out
        return out

    def _read_file(self, entry: _EventFile, out: list[Observation], deadline: float | None) -> bool:
        """Read events of one file until its end (True) or the deadline (False)."""
        failures = 0
        while True:
            if entry.events is None:
                entry.events = iter(entry.loader.Load())
            try:
                event = next(entry.events)
            except StopIteration:
                entry.events = None
                return True
            except Exception as e:  # noqa: BLE001 - TensorBoard's reader raises its own errors
                # A record that isn't an Event was consumed: the next Load goes on after it.
                # An error that doesn't move on (the file vanished) ends this call.
                entry.events = None
                failures += 1
                self._note(f"{entry.path}: unreadable record: {e}", key=(entry.path, "record"))
                if failures >= _MAX_FAILURES:
                    return True
                continue
            failures = 0
            if event.HasField("summary"):
                self._summary(entry, event, out)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _summary(self, entry: _EventFile, event: Any, out: list[Observation]) -> None:
        step: int | None = None
        wall_time = 0.0
        for value in event.summary.value:
            tag = value.tag
            names = entry.tags.get(tag)
            if names is None:
                names = matching_metrics(tag, os.path.dirname(entry.path), self.metric_names)
                entry.tags[tag] = names
            if not names:
                continue
            number = self._scalar(value)
            if isinstance(number, _NotANumber) or number - number != 0:  # not a number, NaN, inf
                raw, reason = _why_not(number)
                for name in names:
                    self._reject(name, raw, reason)
                continue
            if step is None:  # each field access on a protobuf costs: once per event
                step, wall_time = int(event.step), event.wall_time
            for name in names:
                out.append(Observation(name, number, step, wall_time))

    def _scalar(self, value: Any) -> float | _NotANumber:
        """The summary value's number (maybe NaN or infinite), or why it has none."""
        kind = value.WhichOneof("value")
        if kind == "simple_value":  # TF1's scalar summary
            return _shortest(self._float32(value.simple_value))
        if kind != "tensor":
            return _NotANumber("", f"not a scalar summary ({kind})")
        tensor = value.tensor  # TF2's: a scalar tensor
        # The common forms directly: make_ndarray costs as much as reading the record.
        dtype = tensor.dtype
        if dtype == self._dt_float:
            values = tensor.float_val
            if len(values) == 1 and not tensor.tensor_shape.dim:
                return _shortest(self._float32(values[0]))
        elif dtype == self._dt_double:
            values = tensor.double_val
            if len(values) == 1 and not tensor.tensor_shape.dim:
                return float(values[0])
        try:
            array = self._make_ndarray(tensor)
        except (TypeError, ValueError) as e:
            return _NotANumber("", f"unreadable tensor: {e}")
        if array.size != 1 or array.dtype.kind not in "fiu":
            shape = "x".join(map(str, array.shape)) or "scalar"
            return _NotANumber(str(array)[:80], f"not a number ({array.dtype} tensor, {shape})")
        return _shortest(array.reshape(())[()])


class _NotANumber(NamedTuple):
    raw: str
    reason: str


def _why_not(number: float | _NotANumber) -> tuple[str, str]:
    """(raw, reason) for ``on_reject``, from what ``_scalar`` returned."""
    if isinstance(number, _NotANumber):
        return number
    return str(number), "NaN" if math.isnan(number) else "infinite"
