"""CustomCollector: a command run now and then, its printed metrics parsed and de-duplicated."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trial_runner.metrics import (
    CustomCollector,
    InvalidCollectorError,
    InvalidMetricsFormatError,
    Observation,
)

INTERVAL = 0.05
#: Prints the file named by its argument (the "whole history" a custom collector may print).
CAT = [sys.executable, "-c", "import sys; print(open(sys.argv[1]).read(), end='')"]


@pytest.fixture
def collectors() -> Iterator[list[CustomCollector]]:
    made: list[CustomCollector] = []
    yield made
    for collector in made:
        collector.close()


def make(collectors: list[CustomCollector], argv: list[str], **kwargs: object) -> CustomCollector:
    collector = CustomCollector(argv, ["loss", "accuracy"], **kwargs)  # type: ignore[arg-type]
    collectors.append(collector)
    return collector


def wait_for_runs(collector: CustomCollector, count: int, found: list[Observation]) -> None:
    """Poll until the background thread has completed ``count`` more runs."""
    target = collector.runs + count
    deadline = time.monotonic() + 20
    while collector.runs < target:
        assert time.monotonic() < deadline, "the command did not run"
        found.extend(collector.poll())
        time.sleep(0.01)
    found.extend(collector.poll())


def poll_until(
    collector: CustomCollector, done: Callable[[list[Observation]], bool]
) -> list[Observation]:
    found: list[Observation] = []
    deadline = time.monotonic() + 20
    while not done(found):
        assert time.monotonic() < deadline, f"gave up; found {found}"
        found.extend(collector.poll())
        time.sleep(0.01)
    return found


def values(observations: list[Observation]) -> list[tuple[str, float]]:
    return [(o.name, o.value) for o in observations]


def test_runs_periodically_and_reports_new_values(
    tmp_path: Path, collectors: list[CustomCollector]
) -> None:
    current = tmp_path / "current"
    current.write_text("loss=1\n")
    collector = make(collectors, [*CAT, str(current)], interval=INTERVAL)
    assert values(poll_until(collector, lambda f: len(f) >= 1)) == [("loss", 1)]
    current.write_text("loss=2 accuracy=0.5\n")
    found = poll_until(collector, lambda f: len(f) >= 2)
    assert values(found) == [("loss", 2), ("accuracy", 0.5)]
    assert collector.runs >= 2


def test_a_command_that_prints_its_whole_history_adds_only_new_lines(
    tmp_path: Path, collectors: list[CustomCollector]
) -> None:
    history = tmp_path / "history"
    history.write_text("loss=1\nloss=0.5\n")
    collector = make(collectors, [*CAT, str(history)], interval=INTERVAL)
    found: list[Observation] = []
    wait_for_runs(collector, 3, found)
    assert values(found) == [("loss", 1), ("loss", 0.5)]
    with open(history, "a") as f:
        f.write("loss=0.5\naccuracy=0.9\n")  # the same value again, in a later epoch
    wait_for_runs(collector, 3, found)
    found += collector.finish()
    assert values(found) == [("loss", 1), ("loss", 0.5), ("loss", 0.5), ("accuracy", 0.9)]


def test_finish_stops_the_thread_and_runs_once_more(
    tmp_path: Path, collectors: list[CustomCollector]
) -> None:
    current = tmp_path / "current"
    current.write_text("loss=1\n")
    collector = make(collectors, [*CAT, str(current)], interval=60)
    found = poll_until(collector, lambda f: len(f) >= 1)
    current.write_text("loss=1\nloss=0.25\n")  # the next periodic run is a minute away
    found += collector.finish()
    assert values(found) == [("loss", 1), ("loss", 0.25)]
    assert collector.poll() == [] and collector.finish() == []


def test_a_failing_command_does_not_raise(
    collectors: list[CustomCollector], caplog: pytest.LogCaptureFixture
) -> None:
    script = "echo loss=0.5; echo 'out of disk' >&2; exit 3"
    collector = make(collectors, ["sh", "-c", script], interval=INTERVAL)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        found: list[Observation] = []
        wait_for_runs(collector, 3, found)
        found += collector.finish()
    assert values(found) == [("loss", 0.5)]  # what it printed before failing still counts
    assert "exited with status 3: out of disk" in caplog.text
    assert caplog.text.count("exited with status 3") == 1  # once, not every run


def test_a_missing_command_does_not_raise(
    tmp_path: Path, collectors: list[CustomCollector], caplog: pytest.LogCaptureFixture
) -> None:
    collector = make(collectors, [str(tmp_path / "no-such-command")], interval=INTERVAL)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        for _ in range(5):
            assert collector.poll() == []
            time.sleep(INTERVAL)
        assert collector.finish() == []
    assert "cannot run" in caplog.text


def test_a_command_that_hangs_is_killed(
    collectors: list[CustomCollector], caplog: pytest.LogCaptureFixture
) -> None:
    script = "echo loss=0.5; exec sleep 30"
    collector = make(collectors, ["sh", "-c", script], interval=INTERVAL, timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        found = poll_until(collector, lambda f: len(f) >= 1)
        started = time.monotonic()
        found += collector.finish()  # stops the periodic run, then waits out the last one
        took = time.monotonic() - started
    assert values(found) == [("loss", 0.5)]
    assert took < 5
    assert "ran longer than 0.5 s" in caplog.text


def test_environment_working_directory_and_metrics_format(
    tmp_path: Path, collectors: list[CustomCollector]
) -> None:
    (tmp_path / "acc.txt").write_text("0.75")
    script = 'echo "{metricName: loss, metricValue: $LOSS}"; echo "accuracy: $(cat acc.txt)"'
    collector = make(
        collectors,
        ["sh", "-c", script],
        env={"LOSS": "0.125"},
        cwd=tmp_path,
        interval=INTERVAL,
        metrics_format=[r"{metricName: (\w+), metricValue: ([\d.]+)}", r"(\w+): ([\d.]+)"],
    )
    found = poll_until(collector, lambda f: len(f) >= 2)
    assert sorted(values(found)) == [("accuracy", 0.75), ("loss", 0.125)]


def test_bad_values_are_rejected(collectors: list[CustomCollector]) -> None:
    rejected: list[tuple[str, str, str]] = []
    collector = CustomCollector(
        ["sh", "-c", "echo loss=NaN accuracy=inf; echo loss=0.5"],
        ["loss", "accuracy"],
        metrics_format=[r"(\w+)=(\S+)"],
        on_reject=lambda *args: rejected.append(args),
    )
    collectors.append(collector)
    assert values(collector.finish()) == [("loss", 0.5)]
    assert rejected == [("loss", "NaN", "NaN"), ("accuracy", "inf", "infinite")]


def test_bad_settings_raise_when_built() -> None:
    with pytest.raises(InvalidCollectorError):
        CustomCollector([], ["loss"])
    with pytest.raises(InvalidCollectorError):
        CustomCollector("echo loss=1", ["loss"])  # type: ignore[arg-type]
    with pytest.raises(InvalidCollectorError):
        CustomCollector(["true"], ["loss"], interval=0)
    with pytest.raises(InvalidMetricsFormatError):
        CustomCollector(["true"], ["loss"], metrics_format=["no groups"])
