"""Parsing of the metrics a trial prints: Katib's StdOut / File collector, TEXT and JSON formats.

The TEXT rules follow Katib's file metrics collector: a line may begin with an RFC 3339 time
and whitespace, which becomes the observation's time; every ``metricsFormat`` regex is then
applied to the rest of the line, its first top-level group naming the metric and its second
holding the value; only the experiment's metrics are kept.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from katib.errors import KatibError

__all__ = [
    "DEFAULT_METRICS_FORMAT",
    "MAX_LINE_CHARS",
    "InvalidMetricsFormatError",
    "MetricsParser",
    "Observation",
    "RejectCallback",
    "parse_json_line",
    "top_level_groups",
    "validate_metrics_format",
]

DEFAULT_METRICS_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
"""Katib's default ``metricsFormat``: ``name=value`` anywhere in a line."""

MAX_LINE_CHARS = 64 * 1024
"""Only this many characters (bytes, for ``bytes`` input) of a line are examined."""

RejectCallback = Callable[[str, str, str], None]
"""``on_reject(name, raw_value, reason)``: told about a tracked metric whose value was dropped."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One reported value of one metric."""

    name: str
    value: float
    step: int | None
    timestamp: float | None
    """Unix seconds, when the line carried a time."""
    text: str | None = None
    """The value as reported, for a metric the experiment takes as text (DARTS' genotype):
    ``value`` is then NaN."""

    def to_wire(self) -> dict[str, object]:
        """The push endpoint's item: ``{"name", "value" (or "text"), "step", "timestamp"}``."""
        if self.text is not None:
            return {"name": self.name, "text": self.text, "step": self.step,
                    "timestamp": self.timestamp}
        return {"name": self.name, "value": self.value, "step": self.step,
                "timestamp": self.timestamp}


class InvalidMetricsFormatError(KatibError, ValueError):
    """A ``metricsFormat`` regex does not compile or lacks exactly two top-level groups."""


# RFC 3339 (Go's RFC3339Nano, which Katib parses), also accepting ISO 8601's ``,`` fraction,
# ``+hhmm`` / ``+hh`` offsets and no offset at all (local time, as ISO 8601 reads it).
_TIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_TIMESTAMP = re.compile(_TIME)
_LINE_TIMESTAMP = re.compile(f"({_TIME})\\s+")
# A pattern whose first group starts with a run of one character class, ``(C+...``.
_LEADING_RUN = re.compile(r"\((\[\^?\]?(?:\\.|[^\]\\])*\]|\\[wWdDsS]|\.)[+]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_FLAG_CHARS = frozenset("aiLmsux-")


def top_level_groups(pattern: str) -> tuple[int, int]:
    """The numbers of the two capturing groups of ``pattern`` not nested in another one.

    A ``metricsFormat`` regex holds the metric's name in its first top-level group and the
    value in its second; groups nested inside them (the default format's ``(\\.\\d+)``) don't
    count.

    Raises:
        InvalidMetricsFormatError: the pattern doesn't compile, or doesn't have exactly two
            top-level groups.
    """
    compiled = _compile(pattern)
    depths = _group_depths(pattern, verbose=bool(compiled.flags & re.VERBOSE))
    top = [number for number, depth in enumerate(depths, start=1) if depth == 0]
    if len(top) != 2:
        raise InvalidMetricsFormatError(
            f"metricsFormat {pattern!r} needs exactly two top-level groups (name, value), "
            f"found {len(top)}"
        )
    return top[0], top[1]


def validate_metrics_format(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable ``metricsFormat``, or None when it is."""
    try:
        top_level_groups(pattern)
    except InvalidMetricsFormatError as e:
        return str(e)
    return None


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as e:
        raise InvalidMetricsFormatError(
            f"metricsFormat {pattern!r} is not a valid regular expression: {e}"
        ) from e


def _group_depths(pattern: str, *, verbose: bool) -> list[int]:
    """For each capturing group, in number order, how many capturing groups enclose it.

    ``pattern`` must compile; this walks Python's regex syntax just far enough to tell
    capturing groups from escapes, character classes, comments and the ``(?...)`` forms.
    """
    depths: list[int] = []
    stack: list[tuple[bool, bool]] = []  # (group captures, verbose mode outside it)
    open_captures = 0
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            i += 2
        elif char == "[":
            i = _skip_class(pattern, i)
        elif char == "#" and verbose:
            newline = pattern.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif char == ")":
            if stack:
                captures, verbose = stack.pop()
                open_captures -= captures
            i += 1
        elif char != "(":
            i += 1
        elif not pattern.startswith("(?", i) or pattern.startswith("(?P<", i):
            depths.append(open_captures)
            stack.append((True, verbose))
            open_captures += 1
            i += 1
        elif pattern.startswith(("(?P=", "(?#"), i):  # backreference, comment: no group
            i = pattern.index(")", i) + 1
        elif pattern.startswith("(?(", i):  # conditional: skip its (condition)
            stack.append((False, verbose))
            i = pattern.index(")", i + 3) + 1
        elif pattern.startswith(("(?:", "(?=", "(?!", "(?<=", "(?<!", "(?>"), i):
            stack.append((False, verbose))
            i += 2
        else:  # inline flags: (?x) for the whole pattern, or (?x-i:...) for a group
            end = i + 2
            while end < n and pattern[end] in _FLAG_CHARS:
                end += 1
            if pattern.startswith(":", end):
                stack.append((False, verbose))
                added, _, removed = pattern[i + 2 : end].partition("-")
                verbose = ("x" in added or verbose) and "x" not in removed
            i = end + 1
    return depths


def _skip_class(pattern: str, start: int) -> int:
    """The index just past the character class opening at ``start``."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):  # a leading ] is a literal
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1


class _Format:
    """One compiled ``metricsFormat`` and the way to find its matches in linear time."""

    __slots__ = ("pattern", "name_group", "value_group", "_linear")

    def __init__(self, pattern: str) -> None:
        self.name_group, self.value_group = top_level_groups(pattern)
        self.pattern = re.compile(pattern)
        self._linear = _linear_variant(pattern, self.pattern.flags)

    def pairs(self, line: str) -> list[tuple[str | None, ...]]:
        """(name, value) of each non-overlapping match, as ``finditer`` finds them."""
        groups = (self.name_group, self.value_group)
        linear = self._linear
        if linear is None:
            return [match.group(*groups) for match in self.pattern.finditer(line)]
        out: list[tuple[str | None, ...]] = []
        match_at = self.pattern.match
        found = linear.search(line)
        while found is not None:
            out.append(found.group(*groups))
            pos = found.end()
            found = match_at(line, pos) or linear.search(line, pos)
        return out


def _linear_variant(pattern: str, flags: int) -> re.Pattern[str] | None:
    """For a pattern starting ``(C+``, the same pattern that only starts where a C-run does.

    ``finditer`` retries a pattern at every position; on a long run of C characters (a
    64 KiB word) each try consumes the rest of the run, which is quadratic: over a minute
    for Katib's default format. A try at position i inside a run can only succeed if the try
    at i - 1 did, because both end their leading C+ at the same places and what follows
    cannot see where the match began (unless it refers back to a group, hence the check).
    So after the previous match's end, matches can only begin where no C precedes.
    """
    leading = _LEADING_RUN.match(pattern)
    if leading is None or _BACKREFERENCE.search(pattern):
        return None
    try:
        return re.compile(f"(?<!{leading.group(1)}){pattern}", flags)
    except re.error:
        return None


class MetricsParser:
    """Turns lines of a trial's output into observations of the experiment's metrics.

    Thread-safe once built: parsing keeps no state between lines.

    Args:
        metric_names: the metrics to keep (Katib's objective and additional metrics); every
            other name a format matches is ignored.
        metrics_format: regexes, each with two top-level groups (name, value); None or empty
            means Katib's :data:`DEFAULT_METRICS_FORMAT`.
        on_reject: called for a kept metric whose value is empty, not a number, NaN or
            infinite, with the name, the raw value and the reason; such values are skipped.
        text_metrics: metrics taken as text, as Katib takes any value: one of these whose
            value is not a number is kept whole (stripped) in :attr:`Observation.text`.

    Raises:
        InvalidMetricsFormatError: a format doesn't compile or lacks two top-level groups.
    """

    __slots__ = ("_names", "_name_set", "_formats", "_on_reject", "_texts")

    def __init__(
        self,
        metric_names: Iterable[str],
        metrics_format: Sequence[str] | None = None,
        *,
        on_reject: RejectCallback | None = None,
        text_metrics: Iterable[str] = (),
    ) -> None:
        if isinstance(metric_names, str | bytes):
            raise TypeError("metric_names must be a collection of names, not one string")
        if isinstance(metrics_format, str | bytes):
            raise TypeError("metrics_format must be a sequence of regexes, not one string")
        self._names = tuple(dict.fromkeys(name for name in metric_names if name))
        self._name_set = frozenset(self._names)
        self._formats = tuple(_Format(p) for p in (metrics_format or [DEFAULT_METRICS_FORMAT]))
        self._on_reject = on_reject
        self._texts = frozenset(text_metrics)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self._names

    def parse_line(self, line: str | bytes, *, step: int | None = None) -> list[Observation]:
        """Every observation of a tracked metric in one line, in the order they appear.

        Only the first :data:`MAX_LINE_CHARS` of the line are examined; bytes are decoded as
        UTF-8, replacing what isn't. ``step`` is copied into each observation.
        """
        if isinstance(line, bytes):
            line = line[:MAX_LINE_CHARS].decode("utf-8", "replace")
        elif len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS]
        # A line can only report a metric whose name it contains: most lines stop here.
        for name in self._names:
            if name in line:
                break
        else:
            return []

        timestamp: float | None = None
        if line[:1].isdigit():
            stamp = _LINE_TIMESTAMP.match(line)
            if stamp is not None:
                timestamp = _parse_timestamp(stamp.group(1))
                if timestamp is not None:
                    line = line[stamp.end() :]

        observations: list[Observation] = []
        names = self._name_set
        for fmt in self._formats:
            for raw_name, raw_value in fmt.pairs(line):
                if raw_name is None:
                    continue
                name = raw_name if raw_name in names else raw_name.strip()
                if name not in names:
                    continue
                text = raw_value or ""
                # Fast path for a well-formed number; _value says why anything else fails.
                try:
                    value: float | None = float(text)
                except ValueError:
                    value = None
                if (value is None or value - value != 0) and name in self._texts:
                    if text.strip():
                        observations.append(
                            Observation(name, math.nan, step, timestamp, text.strip())
                        )
                    continue
                if value is None or value - value != 0 or "_" in text:
                    value = self._value(name, raw_value)
                    if value is None:
                        continue
                observations.append(Observation(name, value, step, timestamp))
        return observations

    def _value(self, name: str, raw: str | None) -> float | None:
        value, reason = _to_float(raw)
        if reason is not None and self._on_reject is not None:
            self._on_reject(name, raw or "", reason)
        return value


def _to_float(raw: str | float | None) -> tuple[float | None, str | None]:
    """The finite number ``raw`` holds, or None and why not."""
    if isinstance(raw, bool):
        return None, "not a number"
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:  # a JSON integer beyond float's range
            return None, "infinite"
    else:
        text = (raw or "").strip()
        if not text:
            return None, "empty value"
        # Python's float() also takes "1_000"; Go's ParseFloat, which Katib uses, doesn't.
        if "_" in text:
            return None, "not a number"
        try:
            value = float(text)
        except ValueError:
            return None, "not a number"
    if math.isnan(value):
        return None, "NaN"
    if math.isinf(value):
        return None, "infinite"
    return value, None


def _parse_timestamp(text: str) -> float | None:
    """Unix seconds of an RFC 3339 / ISO 8601 time, or None if it isn't a valid one."""
    text = text.upper()
    leap_second = text[17:19] == "60"
    if leap_second:  # 23:59:60 is valid RFC 3339; datetime stops at :59
        text = f"{text[:17]}59{text[19:]}"
    try:
        seconds = datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return seconds + 1 if leap_second else seconds


def parse_json_line(
    line: str | bytes,
    metric_names: Iterable[str],
    *,
    step: int | None = None,
    on_reject: RejectCallback | None = None,
) -> list[Observation]:
    """The observations in one line of Katib's JSON metrics format.

    Each line is a JSON object mapping metric names to numbers or numeric strings, with an
    optional ``timestamp`` (an RFC 3339 string or unix seconds). A line that isn't a JSON
    object yields nothing; values that aren't finite numbers are skipped (see
    :class:`MetricsParser` for ``on_reject``).
    """
    if isinstance(metric_names, str | bytes):
        raise TypeError("metric_names must be a collection of names, not one string")
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return []
    if not isinstance(record, dict):
        return []
    timestamp = _json_timestamp(record.get("timestamp"))
    observations: list[Observation] = []
    for name in dict.fromkeys(metric_names):
        if name not in record:
            continue
        raw = record[name]
        value: float | None
        reason: str | None
        if isinstance(raw, str | int | float):
            value, reason = _to_float(raw)
        else:  # null, an object, a list
            value, reason = None, "not a number"
        if value is not None:
            observations.append(Observation(name, value, step, timestamp))
        elif reason is not None and on_reject is not None:
            on_reject(name, raw if isinstance(raw, str) else json.dumps(raw), reason)
    return observations


def _json_timestamp(raw: object) -> float | None:
    if isinstance(raw, str):
        return _parse_timestamp(raw) if _TIMESTAMP.fullmatch(raw) else None
    if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
        return float(raw)
    return None
