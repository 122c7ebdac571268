"""TFEventCollector: scalars from real event files, written with TensorBoard's own writer."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from katib.errors import KatibError
from trial_runner.metrics import MissingDependencyError, Observation, TFEventCollector
from trial_runner.metrics._tfevent import matching_metrics

pytest.importorskip("tensorboard")

from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins.scalar import summary_v2  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


class Rejects:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, name: str, raw: str, reason: str) -> None:
        self.seen.append((name, raw, reason))


class Writer:
    """An event file in ``logdir``, written at once (flushed after every event)."""

    def __init__(self, logdir: Path) -> None:
        self.writer = EventFileWriter(str(logdir))
        self.path = Path(self.writer._file_name)

    def legacy(self, tag: str, value: float, step: int, wall_time: float = 1000.0) -> None:
        """A TF1 summary: ``simple_value``."""
        value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=value)
        summary = summary_pb2.Summary(value=[value_pb])
        self.event(summary, step, wall_time)

    def tensor(self, tag: str, value: object, step: int, wall_time: float = 1000.0) -> None:
        """A TF2 summary: a scalar tensor with the scalars plugin's metadata."""
        if isinstance(value, float):
            self.event(summary_v2.scalar_pb(tag, value), step, wall_time)
            return
        proto = tensor_util.make_tensor_proto(value)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, tensor=proto)])
        self.event(summary, step, wall_time)

    def event(self, summary: summary_pb2.Summary, step: int, wall_time: float) -> None:
        self.writer.add_event(event_pb2.Event(wall_time=wall_time, step=step, summary=summary))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def writers() -> Iterator[list[Writer]]:
    made: list[Writer] = []
    yield made
    for writer in made:
        writer.close()


def write_to(writers: list[Writer], logdir: Path) -> Writer:
    writer = Writer(logdir)
    writers.append(writer)
    return writer


def collect(collector: TFEventCollector, count: int, timeout: float = 10.0) -> list[Observation]:
    """Poll until ``count`` observations came (the directory is searched again each second)."""
    found: list[Observation] = []
    deadline = time.monotonic() + timeout
    while len(found) < count and time.monotonic() < deadline:
        found.extend(collector.poll())
        time.sleep(0.02)
    return found


def triples(observations: Sequence[Observation]) -> list[tuple[str, float, int | None]]:
    return [(o.name, o.value, o.step) for o in observations]


def test_legacy_and_tensor_scalars_with_steps_and_wall_times(
    tmp_path: Path, writers: list[Writer]
) -> None:
    writer = write_to(writers, tmp_path)
    writer.legacy("loss", 0.5, step=1, wall_time=1700000000.25)
    writer.tensor("loss", 0.25, step=2, wall_time=1700000001.5)
    writer.tensor("accuracy", np.float64(0.75), step=2)
    writer.tensor("accuracy", np.array([0.875], dtype=np.float32), step=3)
    writer.tensor("accuracy", np.int64(1), step=4)
    writer.legacy("other", 9.0, step=1)
    collector = TFEventCollector(tmp_path, ["loss", "accuracy"])
    found = collect(collector, 5)
    assert [(o.name, o.value, o.step, o.timestamp) for o in found[:2]] == [
        ("loss", 0.5, 1, 1700000000.25),
        ("loss", 0.25, 2, 1700000001.5),
    ]
    assert triples(found[2:]) == [("accuracy", 0.75, 2), ("accuracy", 0.875, 3), ("accuracy", 1, 4)]
    assert collector.finish() == []


def test_events_are_read_incrementally(tmp_path: Path, writers: list[Writer]) -> None:
    writer = write_to(writers, tmp_path)
    collector = TFEventCollector(tmp_path, ["loss"])
    assert collector.poll() == []
    writer.legacy("loss", 1.0, step=1)
    assert triples(collect(collector, 1)) == [("loss", 1.0, 1)]
    writer.legacy("loss", 2.0, step=2)
    writer.tensor("loss", 3.0, step=3)
    assert triples(collect(collector, 2)) == [("loss", 2.0, 2), ("loss", 3.0, 3)]
    writer.legacy("loss", 4.0, step=4)
    assert triples(collector.finish()) == [("loss", 4.0, 4)]
    assert collector.poll() == []


def test_files_that_appear_later_and_in_subdirectories(
    tmp_path: Path, writers: list[Writer]
) -> None:
    logdir = tmp_path / "logs"
    collector = TFEventCollector(logdir, ["loss"])
    assert collector.poll() == []  # the directory doesn't exist yet
    first = write_to(writers, logdir)
    first.legacy("loss", 1.0, step=1)
    assert triples(collect(collector, 1)) == [("loss", 1.0, 1)]
    second = write_to(writers, logdir / "eval" / "deep")
    second.tensor("loss", 2.0, step=10)
    first.legacy("loss", 3.0, step=2)
    found = collect(collector, 2)
    assert sorted(triples(found)) == [("loss", 2.0, 10), ("loss", 3.0, 2)]


def test_katib_rule_for_metric_names_with_a_directory(
    tmp_path: Path, writers: list[Writer]
) -> None:
    write_to(writers, tmp_path / "train").tensor("accuracy", 0.9, step=1)
    write_to(writers, tmp_path / "test").tensor("accuracy", 0.8, step=1)
    write_to(writers, tmp_path / "pretrain").tensor("accuracy", 0.1, step=1)
    root = write_to(writers, tmp_path)
    root.tensor("train/accuracy", 0.95, step=2)  # tf.name_scope("train") writes this tag
    root.tensor("loss_ema", 5.0, step=1)  # not "loss": tags are compared whole
    collector = TFEventCollector(tmp_path, ["train/accuracy", "test/accuracy", "accuracy", "loss"])
    found = collector.finish()
    assert sorted((o.name, o.value) for o in found) == [
        ("accuracy", 0.1),
        ("accuracy", 0.8),
        ("accuracy", 0.9),
        ("test/accuracy", 0.8),
        ("train/accuracy", 0.9),
        ("train/accuracy", 0.95),
    ]


@pytest.mark.parametrize(
    ("tag", "directory", "expected"),
    [
        ("loss", "/logs", ["loss"]),
        ("loss", "/logs/train", ["loss"]),
        ("accuracy", "/logs/train", ["accuracy", "train/accuracy"]),
        ("accuracy", "/logs/test", ["accuracy"]),
        ("accuracy", "/logs/pretrain", ["accuracy"]),
        ("train/accuracy", "/logs", ["train/accuracy"]),
        ("accuracy", "/runs/a/train", ["accuracy", "train/accuracy", "a/train/accuracy"]),
        ("accuracy", "/runs/b/train", ["accuracy", "train/accuracy"]),
        ("loss_ema", "/logs", []),
        ("train/loss", "/logs", []),
    ],
)
def test_matching_metrics(tag: str, directory: str, expected: list[str]) -> None:
    names = ["loss", "accuracy", "train/accuracy", "a/train/accuracy"]
    assert matching_metrics(tag, directory, names) == expected


def test_nan_inf_and_non_scalar_values_are_rejected(
    tmp_path: Path, writers: list[Writer], caplog: pytest.LogCaptureFixture
) -> None:
    writer = write_to(writers, tmp_path)
    writer.legacy("loss", float("nan"), step=1)
    writer.tensor("loss", float("inf"), step=2)
    writer.tensor("loss", np.array([1.0, 2.0], dtype=np.float32), step=3)
    writer.tensor("loss", np.array(b"text", dtype=object), step=4)
    writer.legacy("loss", 0.5, step=5)
    rejects = Rejects()
    collector = TFEventCollector(tmp_path, ["loss"], on_reject=rejects)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        assert triples(collector.finish()) == [("loss", 0.5, 5)]
    assert [(name, reason.split(" (")[0]) for name, _, reason in rejects.seen] == [
        ("loss", "NaN"),
        ("loss", "infinite"),
        ("loss", "not a number"),
        ("loss", "not a number"),
    ]
    assert "dropped value" in caplog.text


def test_a_record_being_written_is_read_once_complete(
    tmp_path: Path, writers: list[Writer]
) -> None:
    source = write_to(writers, tmp_path / "source")
    source.legacy("loss", 1.0, step=1)
    source.legacy("loss", 2.0, step=2)
    data = source.path.read_bytes()
    logdir = tmp_path / "logs"
    logdir.mkdir()
    target = logdir / "events.out.tfevents.1.host"
    cut = len(data) - 7  # inside the last record
    target.write_bytes(data[:cut])
    collector = TFEventCollector(logdir, ["loss"])
    assert triples(collect(collector, 1)) == [("loss", 1.0, 1)]
    assert collector.poll() == []
    with open(target, "ab") as f:
        f.write(data[cut:])
    assert triples(collector.finish()) == [("loss", 2.0, 2)]


def test_corrupt_and_deleted_files_dont_stop_the_others(
    tmp_path: Path, writers: list[Writer], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "events.out.tfevents.0.garbage").write_bytes(b"\x00\xff not an event file" * 100)
    good = write_to(writers, tmp_path / "good")
    good.legacy("loss", 1.0, step=1)
    doomed = write_to(writers, tmp_path / "doomed")
    doomed.legacy("loss", 7.0, step=1)
    collector = TFEventCollector(tmp_path, ["loss"])
    assert sorted(triples(collect(collector, 2))) == [("loss", 1.0, 1), ("loss", 7.0, 1)]
    doomed.close()
    doomed.path.unlink()
    good.legacy("loss", 2.0, step=2)
    with caplog.at_level(logging.DEBUG, logger="katib.metrics"):
        assert triples(collect(collector, 1)) == [("loss", 2.0, 2)]
        good.legacy("loss", 3.0, step=3)
        assert triples(collector.finish()) == [("loss", 3.0, 3)]


def test_without_tensorboard_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing.event_file_loader", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'katib-local\[tfevent\]'") as e:
        TFEventCollector(tmp_path, ["loss"])
    assert isinstance(e.value, KatibError)
