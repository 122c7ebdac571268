"""Katib's StdOut / TEXT metrics format, the JSON format and metricsFormat validation."""

from __future__ import annotations

import math
import random
import re
import time
from datetime import datetime

import pytest

from katib.errors import KatibError
from trial_runner.metrics import (
    DEFAULT_METRICS_FORMAT,
    MAX_LINE_CHARS,
    InvalidMetricsFormatError,
    MetricsParser,
    Observation,
    parse_json_line,
    top_level_groups,
    validate_metrics_format,
)
from trial_runner.metrics._stdout import _Format, _group_depths

# The custom format of Katib's examples (file-metrics-collector).
KATIB_BRACES_FORMAT = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"
T_2024 = 1704164645.0  # 2024-01-02T03:04:05Z


def pairs(observations: list[Observation]) -> list[tuple[str, float]]:
    return [(o.name, o.value) for o in observations]


class Rejects:
    """An ``on_reject`` callback that remembers what it was told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, name: str, raw: str, reason: str) -> None:
        self.seen.append((name, raw, reason))


# --- the default format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Validation-accuracy=0.97", [("Validation-accuracy", 0.97)]),
        ("loss = -1.5e-3", [("loss", -1.5e-3)]),
        ("loss=+2E2", [("loss", 200.0)]),
        ("loss=.5", [("loss", 0.5)]),
        ("accuracy=1", [("accuracy", 1.0)]),
        ("epoch 3: accuracy=0.9 loss=0.2", [("accuracy", 0.9), ("loss", 0.2)]),
        ("loss=0.3, accuracy=0.8, loss=0.1", [("loss", 0.3), ("accuracy", 0.8), ("loss", 0.1)]),
        ("Train Epoch: 1 [6400/60000 (11%)]\tloss=0.4213\n", [("loss", 0.4213)]),
        ("\rloss=0.5\rloss=0.4", [("loss", 0.5), ("loss", 0.4)]),
        # A match ends right after its value; the next may start there (Go and Python agree).
        ("lr=0.1loss=2", [("loss", 2.0)]),
        ("accuracy=loss=2", [("loss", 2.0)]),
        ("no metrics here", []),
    ],
)
def test_default_format(line: str, expected: list[tuple[str, float]]) -> None:
    parser = MetricsParser(["loss", "accuracy", "Validation-accuracy"])
    assert pairs(parser.parse_line(line)) == expected


def test_step_and_missing_timestamp_are_carried() -> None:
    parser = MetricsParser(["accuracy"])
    assert parser.parse_line("accuracy=0.5", step=7) == [Observation("accuracy", 0.5, 7, None)]


def test_only_tracked_names_are_kept() -> None:
    parser = MetricsParser(["accuracy"])
    assert pairs(parser.parse_line("lr=0.1 accuracy=0.9 loss=0.3")) == [("accuracy", 0.9)]
    # A tracked name inside a longer name is a different metric.
    assert parser.parse_line("val-accuracy=0.5 accuracy_top5=0.9 accuracyx=1") == []


def test_no_metric_names_means_nothing_is_kept() -> None:
    assert MetricsParser([]).parse_line("accuracy=0.9") == []
    assert MetricsParser([""]).parse_line("=0.9 accuracy=0.9") == []


def test_one_string_of_names_is_refused() -> None:
    with pytest.raises(TypeError):
        MetricsParser("accuracy")
    with pytest.raises(TypeError):
        MetricsParser(["accuracy"], DEFAULT_METRICS_FORMAT)


# --- custom formats and their groups --------------------------------------------------------


def test_katib_braces_format_with_nested_groups() -> None:
    parser = MetricsParser(["accuracy", "loss"], [KATIB_BRACES_FORMAT])
    line = "{metricName: accuracy, metricValue: 0.9}{metricName: loss, metricValue: -3}"
    assert pairs(parser.parse_line(line)) == [("accuracy", 0.9), ("loss", -3.0)]


def test_name_group_with_nested_groups_before_the_value() -> None:
    # Groups 2 and 3 are inside the name: the value is group 4, not group 2.
    pattern = r"((train|val)-(\w+))\s*:\s*(\d+\.\d+)"
    assert top_level_groups(pattern) == (1, 4)
    parser = MetricsParser(["val-acc"], [pattern])
    assert pairs(parser.parse_line("train-acc: 0.8 val-acc: 0.75")) == [("val-acc", 0.75)]


def test_names_and_values_are_trimmed() -> None:
    parser = MetricsParser(["accuracy"], [r"metric\(([^,]*),([^)]*)\)"])
    assert pairs(parser.parse_line("metric( accuracy , 0.5 )")) == [("accuracy", 0.5)]


def test_every_format_applies_in_order() -> None:
    parser = MetricsParser(["loss", "accuracy"], [r"(loss):(\S+)", r"(accuracy)=(\S+)"])
    line = "accuracy=0.9 loss:0.1"
    assert pairs(parser.parse_line(line)) == [("loss", 0.1), ("accuracy", 0.9)]


def test_a_group_that_did_not_take_part_is_ignored() -> None:
    parser = MetricsParser(["loss"], [r"(?:(loss)|x)=(\d+)"])
    assert pairs(parser.parse_line("x=1 loss=2")) == [("loss", 2.0)]


@pytest.mark.parametrize(
    ("pattern", "groups"),
    [
        (DEFAULT_METRICS_FORMAT, (1, 2)),
        (KATIB_BRACES_FORMAT, (1, 2)),
        (r"(?P<name>\w+)=(?P<value>\d+)", (1, 2)),
        (r"(?:x)(\w+)(?:=)(\d+)", (1, 2)),
        (r"(\w+)(?=\s)\s(?<=\s)(\d+)(?!x)(?<!y)", (1, 2)),
        (r"(?i)(\w+)=(\d+)", (1, 2)),
        (r"(?i:(\w+))=(?-i:(\d+))", (1, 2)),
        (r"([(]\w+)=([\])(]+)", (1, 2)),
        (r"([]()]+)=([^]()]+)", (1, 2)),
        (r"\((\w+)\)=\\((\d+)\\)", (1, 2)),
        (r"(?#(a comment)(\w+)=(\d+)", (1, 2)),
        (r"(?P<n>\w+)=(?P=n)?(\d+)", (1, 2)),
        (r"(?:(a)|x)(?(1)b|c)=(\d)", (1, 2)),
        (r"(?x) ( \w+ ) \# = ( \d+ ) # a (comment) with parens", (1, 2)),
        (r"(?x) [#(] ( \w+ ) = ( \d+ )", (1, 2)),
        (r"(?>(\w+))=(\d+)", (1, 2)),
        (r"(\w++)=((\d)+)", (1, 2)),
        (r"((\w)(\w))(?:x)((y)|(z))", (1, 4)),
    ],
)
def test_top_level_groups(pattern: str, groups: tuple[int, int]) -> None:
    assert top_level_groups(pattern) == groups


def test_group_depths_agree_with_pythons_own_parser() -> None:
    # Python's private regex parser is the oracle here only, never in the code.
    sre_parse = pytest.importorskip("re._parser")
    from re import _constants as c

    def oracle(pattern: str) -> list[int]:
        depths: dict[int, int] = {}

        def walk(items: object, depth: int) -> None:
            for op, av in items:  # type: ignore[attr-defined]
                if op is c.SUBPATTERN:
                    group, _, _, sub = av
                    if group:
                        depths[group] = depth
                    walk(sub, depth + (1 if group else 0))
                elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                    walk(av[2], depth)
                elif op is c.BRANCH:
                    for branch in av[1]:
                        walk(branch, depth)
                elif op in (c.ASSERT, c.ASSERT_NOT):
                    walk(av[1], depth)
                elif op is c.ATOMIC_GROUP:
                    walk(av, depth)
                elif op is c.GROUPREF_EXISTS:
                    walk(av[1], depth)
                    if av[2] is not None:
                        walk(av[2], depth)

        walk(sre_parse.parse(pattern), 0)
        return [depths[g] for g in sorted(depths)]

    openers = ["(", "(", "(?:", "(?P<g{n}>", "(?=", "(?!", "(?<=", "(?<!", "(?>", "(?i:", "(?x:"]
    atoms = ["a", r"\w+", "[(]", "[^)]", "[]()]", r"\(", r"\)", "(?#c(o m)", "[a-z(]", " #(\n"]
    rng = random.Random(1)
    counter = iter(range(10**9))

    def generate(depth: int) -> str:
        parts = []
        for _ in range(rng.randrange(1, 4)):
            if depth < 4 and rng.random() < 0.5:
                opener = rng.choice(openers).replace("{n}", str(next(counter)))
                inner = "a" if opener.startswith("(?<") else generate(depth + 1)
                parts.append(opener + inner + ")")
            else:
                parts.append(rng.choice(atoms))
            if rng.random() < 0.2:
                parts.append(rng.choice(["*", "+?", "?", "{2}"]))
        return rng.choice(["", "|"]).join(parts)

    checked = 0
    for _ in range(3000):
        pattern = rng.choice(["", "(?x)"]) + generate(0)
        try:  # "#(" opens a group unless in verbose mode
            compiled = re.compile(pattern)
        except re.error:
            continue
        verbose = bool(compiled.flags & re.VERBOSE)
        assert _group_depths(pattern, verbose=verbose) == oracle(pattern), pattern
        checked += 1
    assert checked > 1000


# --- invalid formats ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "not a valid regular expression"),
        (r"([\w|-]+", "not a valid regular expression"),
        ("(?P<x>a)(?P<x>b)", "not a valid regular expression"),
        (r"\w+=\d+", "found 0"),
        (r"(\w+)=\d+", "found 1"),
        (r"(\w+)=(\d+)(ms)", "found 3"),
        (r"((\w+)=(\d+))", "found 1"),
    ],
)
def test_invalid_formats_are_reported(pattern: str, message: str) -> None:
    problem = validate_metrics_format(pattern)
    assert problem is not None and message in problem
    with pytest.raises(InvalidMetricsFormatError, match=re.escape(message)) as raised:
        MetricsParser(["loss"], [DEFAULT_METRICS_FORMAT, pattern])
    assert isinstance(raised.value, KatibError)


@pytest.mark.parametrize("pattern", [DEFAULT_METRICS_FORMAT, KATIB_BRACES_FORMAT, r"(a)(b)"])
def test_valid_formats_pass_validation(pattern: str) -> None:
    assert validate_metrics_format(pattern) is None


# --- values that are not finite numbers -----------------------------------------------------


def test_nan_inf_and_non_numbers_are_rejected_with_a_reason() -> None:
    rejects = Rejects()
    parser = MetricsParser(["a", "b", "c", "d", "e", "f"], [r"(\w+)=(\S*)"], on_reject=rejects)
    line = "a=nan b=-inf c=0.9x d= e=1_000 f=0.25 untracked=nan"
    assert pairs(parser.parse_line(line)) == [("f", 0.25)]
    assert rejects.seen == [
        ("a", "nan", "NaN"),
        ("b", "-inf", "infinite"),
        ("c", "0.9x", "not a number"),
        ("d", "", "empty value"),
        ("e", "1_000", "not a number"),
    ]


def test_default_format_rejects_empty_overflowing_and_sign_only_values() -> None:
    rejects = Rejects()
    parser = MetricsParser(["loss", "accuracy", "lr"], on_reject=rejects)
    assert parser.parse_line("accuracy= loss=1e999 lr=- accuracy=NaN") == []
    assert [(name, reason) for name, _, reason in rejects.seen] == [
        ("accuracy", "empty value"),
        ("loss", "infinite"),
        ("lr", "not a number"),
        ("accuracy", "empty value"),  # the default value group doesn't match letters
    ]


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-01-02T03:04:05Z", T_2024),
        ("2024-01-02t03:04:05z", T_2024),
        ("2024-01-02T03:04:05.25Z", T_2024 + 0.25),
        ("2024-01-02T03:04:05.250000001Z", T_2024 + 0.25),
        ("2024-01-02T05:04:05+02:00", T_2024),
        ("2024-01-02T05:04:05+0200", T_2024),
        ("2024-01-01T22:34:05-04:30", T_2024),
        ("2016-12-31T23:59:60Z", 1483228800.0),
    ],
)
def test_leading_timestamp_is_taken_and_stripped(stamp: str, expected: float) -> None:
    parser = MetricsParser(["accuracy"])
    (observation,) = parser.parse_line(f"{stamp} accuracy=0.9")
    assert observation.value == 0.9
    assert observation.timestamp == pytest.approx(expected, abs=1e-6)


def test_timestamp_without_offset_is_local_time() -> None:
    (observation,) = MetricsParser(["loss"]).parse_line("2024-01-02T03:04:05\tloss=1")
    assert observation.timestamp == datetime(2024, 1, 2, 3, 4, 5).timestamp()


@pytest.mark.parametrize(
    "line",
    [
        "2024-13-02T03:04:05Z accuracy=0.9",  # no 13th month
        "2024-01-02T03:04:05Z,accuracy=0.9",  # not followed by whitespace
        "at 2024-01-02T03:04:05Z accuracy=0.9",  # not at the start
        "2024-01-02 accuracy=0.9",  # a date is not a time
    ],
)
def test_what_is_not_a_leading_timestamp(line: str) -> None:
    assert MetricsParser(["accuracy"]).parse_line(line) == [
        Observation("accuracy", 0.9, None, None)
    ]


def test_timestamp_is_not_read_as_a_metric() -> None:
    parser = MetricsParser(["05Z", "accuracy"], [r"(\S+?)=(\S+)", r"(\w+):(\d+)"])
    (observation,) = parser.parse_line("2024-01-02T03:04:05Z accuracy=0.5")
    assert observation == Observation("accuracy", 0.5, None, T_2024)


# --- hostile input --------------------------------------------------------------------------


def test_only_the_first_64_kib_are_examined() -> None:
    parser = MetricsParser(["loss"])
    padding = "x" * (MAX_LINE_CHARS - len(" loss=1"))
    assert pairs(parser.parse_line(padding + " loss=1 loss=2")) == [("loss", 1.0)]
    assert parser.parse_line("x" * 1_000_000 + " loss=1") == []
    assert pairs(parser.parse_line((padding + " loss=1 loss=2").encode())) == [("loss", 1.0)]


@pytest.mark.parametrize(
    "line",
    [
        "loss" + "a" * 1_000_000,  # one 64 KiB word: quadratic for a plain finditer
        "loss" + "-" * 1_000_000,
        "loss " + " " * 1_000_000 + "x",
        "loss=" * 200_000,
        "loss=1" * 200_000,
        "l=1 " * 250_000 + "loss=1",
        "loss" + "=" * 1_000_000,
    ],
)
def test_million_character_lines_are_fast(line: str) -> None:
    """Linear, not quadratic: a line takes milliseconds on a quiet machine (the benchmark
    measures it); a quadratic scan of a million characters would take hours, so the bound
    is loose enough for a machine shared with other work and still catches that."""
    parsers = [
        MetricsParser(["loss"]),
        MetricsParser(["loss"], [r"([\w|-]+)\s*[:=]\s*([+-]?\d*(\.\d+)?)"]),
    ]
    for parser in parsers:
        start = time.perf_counter()
        parser.parse_line(line)
        parser.parse_line(line.encode())
        assert time.perf_counter() - start < 10.0


def test_binary_garbage_never_crashes() -> None:
    rng = random.Random(7)
    parser = MetricsParser(["loss", "a"])
    for _ in range(2000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        observations = parser.parse_line(b"loss a=" + blob)
        assert all(math.isfinite(o.value) for o in observations)
        parser.parse_line(blob.decode("latin-1"))


def test_invalid_utf8_around_a_metric_is_replaced() -> None:
    parser = MetricsParser(["loss"])
    assert pairs(parser.parse_line(b"\xff\xfe\x00loss=0.5\x00\xc3")) == [("loss", 0.5)]


def test_fast_scan_finds_exactly_what_finditer_finds() -> None:
    # Patterns starting with a character-class run are scanned with a faster, linear search;
    # it must be indistinguishable from re.finditer.
    patterns = [
        DEFAULT_METRICS_FORMAT,
        r"([\w|-]+)\s*:\s*(\S+)",
        r"(\w+?)=(\d*)",
        r"(.+)=(\d)",
        r"([^= ]+)=(-?\d+(\.\d+)?)",
        r"(\S++)\s(\w)",
        r"(\w+)(?<=b)=(\d)\b",
    ]
    rng = random.Random(3)
    for pattern in patterns:
        fmt = _Format(pattern)
        assert fmt._linear is not None, pattern
        plain = re.compile(pattern)
        for _ in range(3000):
            line = "".join(rng.choice("ab1=. -\t|e+:_") for _ in range(rng.randrange(30)))
            expected = [m.group(fmt.name_group, fmt.value_group) for m in plain.finditer(line)]
            assert fmt.pairs(line) == expected, (pattern, line)


def test_backreferences_keep_the_plain_scan() -> None:
    assert _Format(r"(\w+)=(\1)")._linear is None


# --- JSON format ----------------------------------------------------------------------------


def test_json_line_with_numbers_strings_and_timestamp() -> None:
    line = '{"accuracy": 0.9, "loss": "0.1", "lr": 1, "timestamp": "2024-01-02T03:04:05Z"}'
    assert parse_json_line(line, ["accuracy", "loss"], step=2) == [
        Observation("accuracy", 0.9, 2, T_2024),
        Observation("loss", 0.1, 2, T_2024),
    ]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [(T_2024, T_2024), (1704164645, T_2024), ('"not a time"', None), ("true", None)],
)
def test_json_timestamp_forms(timestamp: object, expected: float | None) -> None:
    (observation,) = parse_json_line(f'{{"loss": 1, "timestamp": {timestamp}}}', ["loss"])
    assert observation.timestamp == expected


def test_json_rejects_what_is_not_a_finite_number() -> None:
    rejects = Rejects()
    line = b'{"a": NaN, "b": "inf", "c": true, "d": null, "e": [1], "f": "x", "g": 1e999, "h": 2}'
    observations = parse_json_line(line, list("abcdefgh"), on_reject=rejects)
    assert pairs(observations) == [("h", 2.0)]
    assert [(name, reason) for name, _, reason in rejects.seen] == [
        ("a", "NaN"),
        ("b", "infinite"),
        ("c", "not a number"),
        ("d", "not a number"),
        ("e", "not a number"),
        ("f", "not a number"),
        ("g", "infinite"),
    ]


@pytest.mark.parametrize(
    "line",
    ["", "not json", "[1, 2]", '"loss"', "[" * 100_000, b"\xff\xfe", '{"loss": 1'],
)
def test_json_lines_that_are_not_objects_yield_nothing(line: str | bytes) -> None:
    assert parse_json_line(line, ["loss"]) == []
