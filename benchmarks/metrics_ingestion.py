"""Metrics ingestion: how many observation points per second the collectors parse.

Requirement (issue "Trial lifecycle and metrics collection"): parsing must keep up with a
chatty trial, at least 20,000 points/s. Only parsing and collecting are measured, no database.

* stdout: ``MetricsParser.parse_line`` over realistic training-log lines (a Keras-style
  progress line with two metrics, an epoch summary with four, and 3 lines in 4 without
  metrics, as a real log has).
* file (TEXT): the same lines appended to a file in chunks of 1,000 lines while a
  ``FileCollector`` polls it, then polled until every point is read. Only the time inside
  ``poll`` counts.
* file (JSON): one JSON object per line (two metrics, a timestamp) the same way.
* tfevent: an event file with N events of two scalars each (half TF1 ``simple_value``, half
  TF2 tensors), written with TensorBoard's writer, read by ``TFEventCollector.finish``.

Each measurement is repeated and the median taken.

    python benchmarks/metrics_ingestion.py            # ~1 minute
    python benchmarks/metrics_ingestion.py --quick    # a few seconds
    python benchmarks/metrics_ingestion.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from trial_runner.metrics import FileCollector, MetricsParser, Observation

TARGET_POINTS_PER_SECOND = 20_000
METRICS = ["loss", "accuracy", "val_loss", "val_accuracy"]


@dataclass(frozen=True)
class Result:
    name: str
    lines: int
    points: int
    seconds: float
    cpu_seconds: float
    """This process's CPU time over the same span: less sensitive to a busy machine."""

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds

    @property
    def points_per_cpu_second(self) -> float:
        return self.points / self.cpu_seconds if self.cpu_seconds > 0 else math.inf

    @property
    def lines_per_second(self) -> float:
        return self.lines / self.seconds


def log_lines(count: int) -> list[str]:
    """``count`` lines of a training log; every fourth reports metrics."""
    lines: list[str] = []
    for i in range(count):
        epoch, batch = divmod(i, 500)
        kind = i % 8
        if kind == 3:
            lines.append(
                f"{batch}/500 [=========>....] - ETA: 12s - loss={1 / (i + 1):.4f} "
                f"- accuracy={1 - 1 / (i + 2):.4f}"
            )
        elif kind == 7:
            lines.append(
                f"2024-01-02T03:04:{i % 60:02d}Z Epoch {epoch}: loss={0.5 / (i + 1):.6f} "
                f"accuracy={0.9:.4f} val_loss={0.6 / (i + 1):.6f} val_accuracy={0.85:.4f}"
            )
        elif kind % 2:
            lines.append(f"{batch}/500 [=========>....] - ETA: 12s - images/s: 812.{i % 10}")
        else:
            lines.append(f"INFO loader worker {i % 4} prefetched batch {batch} of epoch {epoch}")
    return lines


def json_lines(count: int) -> list[str]:
    return [
        json.dumps({"timestamp": 1704164645.0 + i, "loss": 1 / (i + 1), "accuracy": i / count})
        for i in range(count)
    ]


def measure(repeat: int, run: Callable[[], Result]) -> Result:
    runs = [run() for _ in range(repeat)]
    seconds = statistics.median(r.seconds for r in runs)
    cpu = statistics.median(r.cpu_seconds for r in runs)
    return Result(runs[0].name, runs[0].lines, runs[0].points, seconds, cpu)


def bench_stdout(lines: list[str]) -> Result:
    parser = MetricsParser(METRICS)
    encoded = [line.encode() for line in lines]
    parse = parser.parse_line
    points = 0
    clock = Clock()
    for line in encoded:
        points += len(parse(line))
    clock.stop()
    return clock.result("stdout lines (MetricsParser.parse_line)", len(lines), points)


def bench_file(lines: list[str], directory: Path, *, file_format: str) -> Result:
    path = directory / f"metrics-{file_format.lower()}.log"
    path.unlink(missing_ok=True)
    collector = FileCollector(path, METRICS, format=file_format)
    found: list[Observation] = []
    clock = Clock(running=False)
    with open(path, "w") as writer:
        for start in range(0, len(lines), 1000):
            writer.write("\n".join(lines[start : start + 1000]) + "\n")
            writer.flush()
            clock.start()
            found.extend(collector.poll())
            clock.stop()
    expected = _expected_points(lines, file_format)
    clock.start()
    while len(found) < expected:
        more = collector.poll()
        if not more:
            break
        found.extend(more)
    found.extend(collector.finish())
    clock.stop()
    collector.close()
    if len(found) != expected:
        raise SystemExit(f"file collector read {len(found)} points, expected {expected}")
    label = "file tailing, TEXT" if file_format == "TEXT" else "file tailing, JSON lines"
    return clock.result(f"{label} (FileCollector.poll)", len(lines), len(found))


def _expected_points(lines: list[str], file_format: str) -> int:
    if file_format == "JSON":
        return 2 * len(lines)
    parser = MetricsParser(METRICS)
    return sum(len(parser.parse_line(line)) for line in lines)


def write_event_file(directory: Path, events: int) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.scalar import summary_v2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(directory), max_queue_size=1000)
    for step in range(events):
        if step % 2:
            summary = summary_pb2.Summary(
                value=[
                    summary_pb2.Summary.Value(tag="loss", simple_value=1 / (step + 1)),
                    summary_pb2.Summary.Value(tag="accuracy", simple_value=step / events),
                ]
            )
        else:
            summary = summary_v2.scalar_pb("loss", 1 / (step + 1))
            summary.value.extend(summary_v2.scalar_pb("accuracy", step / events).value)
        writer.add_event(event_pb2.Event(wall_time=1704164645.0 + step, step=step, summary=summary))
    writer.close()


def bench_tfevent(directory: Path, events: int) -> Result:
    from trial_runner.metrics import TFEventCollector

    collector = TFEventCollector(directory, METRICS)
    clock = Clock()
    found = collector.finish()
    clock.stop()
    if len(found) != 2 * events:
        raise SystemExit(f"tfevent collector read {len(found)} points, expected {2 * events}")
    return clock.result("tfevent (TFEventCollector.finish)", events, len(found))


class Clock:
    """Wall and CPU time, summed over the spans between ``start`` and ``stop``."""

    def __init__(self, *, running: bool = True) -> None:
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._started: tuple[float, float] | None = None
        if running:
            self.start()

    def start(self) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        assert self._started is not None
        wall, cpu = self._started
        self.seconds += time.perf_counter() - wall
        self.cpu_seconds += time.process_time() - cpu
        self._started = None

    def result(self, name: str, lines: int, points: int) -> Result:
        return Result(name, lines, points, self.seconds, self.cpu_seconds)


def render(results: Sequence[Result]) -> str:
    rows = [
        "| measurement | lines / events | points | seconds | points/s | lines/s "
        "| points/CPU-s | ≥ 20k/s |",
        "|---|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        ok = "yes" if r.points_per_second >= TARGET_POINTS_PER_SECOND else "**no**"
        rows.append(
            f"| {r.name} | {r.lines:,} | {r.points:,} | {r.seconds:.3f} | "
            f"{r.points_per_second:,.0f} | {r.lines_per_second:,.0f} | "
            f"{r.points_per_cpu_second:,.0f} | {ok} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000, help="log / JSON lines (200,000)")
    ap.add_argument("--events", type=int, default=20_000, help="tfevent events (20,000)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions; the median counts")
    ap.add_argument("--quick", action="store_true", help="20,000 lines, 2,000 events, once")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.lines, args.events, args.repeat = 20_000, 2_000, 1

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{args.lines:,} lines, {args.events:,} events, median of {args.repeat}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    lines = log_lines(args.lines)
    records = json_lines(args.lines)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="katib-ingestion-") as tmp:
        directory = Path(tmp)
        results.append(measure(args.repeat, lambda: bench_stdout(lines)))
        results.append(
            measure(args.repeat, lambda: bench_file(lines, directory, file_format="TEXT"))
        )
        results.append(
            measure(args.repeat, lambda: bench_file(records, directory, file_format="JSON"))
        )
        try:
            events_dir = directory / "events"
            write_event_file(events_dir, args.events)
        except ImportError:
            print("tensorboard is not installed: tfevent skipped (pip install tensorboard)")
        else:
            results.append(measure(args.repeat, lambda: bench_tfevent(events_dir, args.events)))

    print(render(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    asdict(r)
                    | {
                        "points_per_second": r.points_per_second,
                        "points_per_cpu_second": r.points_per_cpu_second,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    slow = [r.name for r in results if r.points_per_second < TARGET_POINTS_PER_SECOND]
    if slow:
        print(f"below {TARGET_POINTS_PER_SECOND:,} points/s: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
