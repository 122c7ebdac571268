"""FileCollector: tailing a metrics file that a trial writes, in TEXT and JSON formats."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from katib.errors import KatibError
from trial_runner.metrics import (
    MAX_LINE_CHARS,
    FileCollector,
    InvalidCollectorError,
    InvalidMetricsFormatError,
    Observation,
)
from trial_runner.metrics._file import CHUNK_SIZE

T_2024 = 1704164645.0  # 2024-01-02T03:04:05Z


class Rejects:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, name: str, raw: str, reason: str) -> None:
        self.seen.append((name, raw, reason))


def pairs(observations: list[Observation]) -> list[tuple[str, float]]:
    return [(o.name, o.value) for o in observations]


def append(path: Path, data: bytes | str) -> None:
    with open(path, "ab") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def drain(collector: FileCollector, polls: int = 3) -> list[Observation]:
    """Poll a few times: enough for anything small that was written before."""
    out: list[Observation] = []
    for _ in range(polls):
        out.extend(collector.poll())
    return out


@pytest.fixture
def metrics_file(tmp_path: Path) -> Path:
    return tmp_path / "out" / "metrics.log"


@pytest.fixture
def text(metrics_file: Path) -> Iterator[FileCollector]:
    with FileCollector(metrics_file, ["loss", "accuracy"]) as collector:
        yield collector


# --- following the file -------------------------------------------------------------------


def test_file_that_appears_late_is_read_from_its_beginning(
    metrics_file: Path, text: FileCollector
) -> None:
    assert text.poll() == []
    metrics_file.parent.mkdir()
    assert text.poll() == []
    metrics_file.write_text("epoch 1: loss=0.5 accuracy=0.25\n")
    assert pairs(drain(text)) == [("loss", 0.5), ("accuracy", 0.25)]
    append(metrics_file, "loss=0.4\n")
    assert pairs(drain(text)) == [("loss", 0.4)]  # only what is new
    assert drain(text) == []


def test_lines_written_in_pieces_wait_for_their_newline(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    for piece in ["lo", "ss=0.", "2"]:
        append(metrics_file, piece)
        assert drain(text) == []
    append(metrics_file, "5\naccuracy=0.9")
    assert pairs(drain(text)) == [("loss", 0.25)]
    append(metrics_file, "7")
    assert drain(text) == []
    # The trial ended without a final newline: its last line still counts.
    assert pairs(text.finish()) == [("accuracy", 0.97)]
    assert text.poll() == [] and text.finish() == []


def test_truncated_file_is_read_again_from_its_beginning(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=1\nloss=2\nloss=0.12")
    assert pairs(drain(text)) == [("loss", 1), ("loss", 2)]
    # Shorter than what was read: the unfinished "loss=0.12" was cut and is dropped.
    metrics_file.write_text("loss=3\n")
    assert pairs(drain(text)) == [("loss", 3)]
    assert text.finish() == []


def test_file_rewritten_in_place_with_other_content_is_read_again(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=1\nloss=2\n")
    assert pairs(drain(text)) == [("loss", 1), ("loss", 2)]
    # Truncated and rewritten between two polls, longer than before: the size alone can't
    # tell; the bytes before the read position do.
    metrics_file.write_text("accuracy=0.1\naccuracy=0.2\n")
    assert pairs(drain(text)) == [("accuracy", 0.1), ("accuracy", 0.2)]


def test_file_rewritten_with_its_history_plus_new_lines_gives_only_the_new(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=1\nloss=2\n")
    assert pairs(drain(text)) == [("loss", 1), ("loss", 2)]
    metrics_file.write_text("loss=1\nloss=2\nloss=3\n")  # a trial that rewrites its log
    assert pairs(drain(text)) == [("loss", 3)]


def test_deleted_file_is_read_to_its_end_then_the_new_one_from_its_beginning(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=1\n")
    assert pairs(drain(text)) == [("loss", 1)]
    with open(metrics_file, "ab") as writer:
        writer.write(b"loss=2\n")
        writer.flush()
        metrics_file.unlink()
        assert pairs(drain(text)) == [("loss", 2)]
        writer.write(b"loss=2.5\n")  # the trial still writes to the file it has open
        writer.flush()
        assert pairs(drain(text)) == [("loss", 2.5)]
    metrics_file.write_text("loss=3\nloss=4\n")
    assert pairs(drain(text)) == [("loss", 3), ("loss", 4)]
    append(metrics_file, "loss=5\n")
    assert pairs(drain(text)) == [("loss", 5)]


def test_file_replaced_by_rename_ends_the_old_one_with_its_last_line(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=1\nloss=2")
    assert pairs(drain(text)) == [("loss", 1)]
    replacement = metrics_file.with_name("new.log")
    replacement.write_text("0 accuracy=0.5\n")  # not to be glued onto "loss=2"
    os.replace(replacement, metrics_file)
    assert pairs(drain(text)) == [("loss", 2), ("accuracy", 0.5)]


def test_a_directory_in_the_files_place_is_ignored(
    metrics_file: Path, text: FileCollector, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_file.mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        assert drain(text) == []
    assert "not a regular file" in caplog.text
    metrics_file.rmdir()
    metrics_file.write_text("loss=1\n")
    assert pairs(drain(text)) == [("loss", 1)]


# --- what the file holds ------------------------------------------------------------------


def test_binary_garbage_yields_nothing_but_metric_lines_around_it_count(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    rng = random.Random(7)
    garbage = bytes(rng.getrandbits(8) for _ in range(300_000)).replace(b"=", b"")
    append(metrics_file, b"loss=0.1\n" + garbage + b"\n\x00\xff\xfe loss=0.2\n" + garbage)
    assert pairs(drain(text, polls=50)) == [("loss", 0.1), ("loss", 0.2)]
    assert text.finish() == []


def test_a_two_million_character_line_is_examined_only_up_to_the_limit(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    head = "loss=2 "
    append(metrics_file, head + "x" * 2_000_000 + " loss=9\n" + "loss=1\n")
    # Beyond MAX_LINE_CHARS, "loss=9" isn't seen; the line's head and the next line are.
    tracemalloc.start()
    try:
        found = drain(text, polls=200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pairs(found) == [("loss", 2), ("loss", 1)]
    assert peak < 4 * (MAX_LINE_CHARS + CHUNK_SIZE)


def test_a_long_unfinished_line_at_the_end_is_cut_at_the_limit(
    metrics_file: Path, text: FileCollector
) -> None:
    metrics_file.parent.mkdir()
    append(metrics_file, "y" * (MAX_LINE_CHARS - 8) + " loss=3 " + "z" * 500_000 + " loss=4")
    assert pairs(drain(text, polls=100)) == [("loss", 3)]
    assert text.finish() == []


def test_nan_inf_and_non_numbers_are_rejected_with_a_reason(
    metrics_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=nan\nloss=inf\nloss=-Infinity\nloss=abc\nloss=0.5\n")
    rejects = Rejects()
    collector = FileCollector(
        metrics_file, ["loss"], metrics_format=[r"(\w+)=(\S+)"], on_reject=rejects
    )
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        assert pairs(drain(collector)) == [("loss", 0.5)]
    assert rejects.seen == [
        ("loss", "nan", "NaN"),
        ("loss", "inf", "infinite"),
        ("loss", "-Infinity", "infinite"),
        ("loss", "abc", "not a number"),
    ]
    assert "loss: dropped value 'nan': NaN" in caplog.text


def test_default_format_rejects_a_missing_value(metrics_file: Path) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("loss=nan accuracy=0.5\n")
    rejects = Rejects()
    collector = FileCollector(metrics_file, ["loss", "accuracy"], on_reject=rejects)
    assert pairs(drain(collector)) == [("accuracy", 0.5)]
    assert rejects.seen == [("loss", "", "empty value")]


def test_text_lines_may_begin_with_a_time(metrics_file: Path, text: FileCollector) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("2024-01-02T03:04:05Z loss=0.5\nloss=0.4\n")
    found = drain(text)
    assert [(o.name, o.value, o.timestamp, o.step) for o in found] == [
        ("loss", 0.5, T_2024, None),
        ("loss", 0.4, None, None),
    ]


def test_custom_metrics_format(metrics_file: Path) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text("{metricName: loss, metricValue: 0.25}\nloss=9\n")
    collector = FileCollector(
        metrics_file, ["loss"], metrics_format=[r"{metricName: ([\w|-]+), metricValue: ([\d.]+)}"]
    )
    assert pairs(drain(collector)) == [("loss", 0.25)]


# --- JSON ---------------------------------------------------------------------------------


def test_json_lines_with_and_without_timestamps_and_numeric_strings(metrics_file: Path) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text(
        '{"loss": "0.5", "accuracy": 0.25, "timestamp": "2024-01-02T03:04:05Z"}\n'
        '{"loss": 0.4}\n'
        "\n"
        '{"accuracy": " 1e-1 ", "timestamp": 1704164645.5, "other": 3}\n'
    )
    collector = FileCollector(metrics_file, ["loss", "accuracy"], format="JSON")
    found = drain(collector)
    assert [(o.name, o.value, o.timestamp) for o in found] == [
        ("loss", 0.5, T_2024),
        ("accuracy", 0.25, T_2024),
        ("loss", 0.4, None),
        ("accuracy", 0.1, T_2024 + 0.5),
    ]


def test_json_bad_values_and_lines_are_skipped(
    metrics_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics_file.parent.mkdir()
    metrics_file.write_text(
        '{"loss": "NaN"}\n'
        '{"loss": "abc"}\n'
        '{"loss": null}\n'
        "loss=0.3 is not JSON\n"
        '{"loss": 0.5\n'  # cut short
        '["loss", 1]\n'
        '{"\\u006coss": 0.7}\n'  # an escaped key is still the metric
        '{"loss": 0.6}'
    )
    rejects = Rejects()
    collector = FileCollector(metrics_file, ["loss"], format="json", on_reject=rejects)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        assert pairs(drain(collector)) == [("loss", 0.7)]
        assert pairs(collector.finish()) == [("loss", 0.6)]
    assert rejects.seen == [
        ("loss", "NaN", "NaN"),
        ("loss", "abc", "not a number"),
        ("loss", "null", "not a number"),
    ]
    assert "isn't a JSON object" in caplog.text


# --- settings -----------------------------------------------------------------------------


def test_bad_settings_raise_when_built(tmp_path: Path) -> None:
    with pytest.raises(InvalidCollectorError, match="TEXT or JSON"):
        FileCollector(tmp_path / "m", ["loss"], format="YAML")
    with pytest.raises(InvalidCollectorError, match="JSON"):
        FileCollector(tmp_path / "m", ["loss"], format="JSON", metrics_format=[r"(\w+)=(\S+)"])
    with pytest.raises(InvalidMetricsFormatError):
        FileCollector(tmp_path / "m", ["loss"], metrics_format=[r"(\w+)"])
    with pytest.raises(TypeError):
        FileCollector(tmp_path / "m", "loss")
    assert issubclass(InvalidCollectorError, KatibError)


# --- cost ---------------------------------------------------------------------------------


def test_a_poll_stops_after_a_few_milliseconds_and_the_next_goes_on(metrics_file: Path) -> None:
    metrics_file.parent.mkdir()
    count = 100_000
    metrics_file.write_text("".join(f"step {i}: loss={i}\n" for i in range(count)))
    collector = FileCollector(metrics_file, ["loss"])
    started = time.perf_counter()
    first = collector.poll()
    took = time.perf_counter() - started
    assert 0 < len(first) < count
    assert took < 0.1  # budget 5 ms, plus one chunk, plus a busy machine
    found = list(first)
    while len(found) < count:
        more = collector.poll()
        assert more, "a poll made no progress"
        found.extend(more)
    assert [o.value for o in found] == [float(i) for i in range(count)]


@pytest.mark.slow
def test_200_mb_of_other_output_does_not_grow_memory(metrics_file: Path) -> None:
    metrics_file.parent.mkdir()
    line = b"epoch 3 batch 1234/5000 images/s 812.5 lr 0.001 grad_norm 1.234 (no metrics)\n"
    block = line * (4 * 1024 * 1024 // len(line))
    collector = FileCollector(metrics_file, ["loss"])
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    found: list[Observation] = []
    written = 0
    try:
        with open(metrics_file, "ab") as writer:
            step = 0
            while written < 200 * 1024 * 1024:
                writer.write(block)
                written += len(block)
                if written % (40 * 1024 * 1024) < len(block):
                    writer.write(f"loss={step}\n".encode())
                    step += 1
                writer.flush()
                found.extend(collector.poll())
            writer.write(b"loss=-1\n")
        deadline = time.monotonic() + 120
        while not found or found[-1].value != -1:
            assert time.monotonic() < deadline
            found.extend(collector.poll())
    finally:
        done.set()
        sampler.join()
        collector.close()
    assert [o.value for o in found] == [*map(float, range(step)), -1.0]
    assert peak - baseline < 50 * 1024 * 1024, f"grew by {(peak - baseline) / 2**20:.1f} MiB"
