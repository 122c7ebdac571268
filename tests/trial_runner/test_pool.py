"""Function trials in the local launcher's worker pool, with real worker processes.

The trial script is a pool-able script as ``tune()`` writes them (an ``__katib_trial__``
entry point); what each trial does is its first argument. Its import appends a line to a
file, so that the tests can count how often a worker imported it.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from trial_runner import (
    CollectionPlan,
    Ending,
    KillReason,
    TrialEnded,
    TrialEvent,
    TrialLaunch,
    TrialStarted,
)
from trial_runner.local import EXECUTOR_ANNOTATION, LocalProcessLauncher

TIMEOUT = 30.0

SCRIPT = """
import os, signal, sys, time

with open({imports!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")


def __katib_trial__(argv, report=True):
    what, value = argv[0], float(argv[1])
    print(f"trial {{os.environ['KATIB_TRIAL_NAME']}} in {{os.getcwd()}}")
    print(f"loss={{value * 2}}")
    if what == "raise":
        raise ValueError(f"boom {{value}}")
    if what == "exit":
        sys.exit("katib: a clear refusal")
    if what == "crash":
        os._exit(3)
    if what == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if what == "hang":
        time.sleep(600)
    if what == "sleep":
        time.sleep(value)
    return {{"returned": value + 1}}


if __name__ == "__main__":
    __katib_trial__(sys.argv[1:])
"""


class Sink:
    """Collects every event; waits for a trial's start and end."""

    def __init__(self) -> None:
        self.events: queue.Queue[TrialEvent] = queue.Queue()
        self.started: dict[str, TrialStarted] = {}
        self.ended: dict[str, TrialEnded] = {}
        self.order: list[TrialEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: TrialEvent) -> None:
        with self._lock:
            self.order.append(event)
            if isinstance(event, TrialStarted):
                self.started[event.trial] = event
            elif isinstance(event, TrialEnded):
                self.ended[event.trial] = event

    def wait(self, trial: str, timeout: float = TIMEOUT) -> TrialEnded:
        deadline = time.monotonic() + timeout
        while trial not in self.ended:
            assert time.monotonic() < deadline, f"{trial} did not end within {timeout} s"
            time.sleep(0.01)
        return self.ended[trial]

    def wait_started(self, trial: str) -> TrialStarted:
        deadline = time.monotonic() + TIMEOUT
        while trial not in self.started:
            assert time.monotonic() < deadline, f"{trial} did not start"
            time.sleep(0.01)
        return self.started[trial]

    def observations(self, trial: str) -> dict[str, float]:
        found: dict[str, float] = {}
        for event in self.order:
            if event.trial == trial and not isinstance(event, TrialStarted):
                found.update({o.name: o.value for o in event.observations})
        return found


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "objective.py"
    path.write_text(textwrap.dedent(SCRIPT.format(imports=str(tmp_path / "imports.txt"))))
    return path


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[LocalProcessLauncher]:
    launcher = LocalProcessLauncher(tmp_path / "home", grace_seconds=1.0, function_pool=True)
    yield launcher
    launcher.kill_all(KillReason.INTERRUPTED, wait=5.0)


def imports(tmp_path: Path) -> list[int]:
    path = tmp_path / "imports.txt"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def launch(
    launcher: LocalProcessLauncher,
    sink: Sink,
    tmp_path: Path,
    script: Path,
    trial: str,
    what: str,
    value: float = 0.5,
    *,
    pooled: bool = True,
    deadline: int | None = None,
    parallel: int = 1,
) -> Path:
    annotations = {EXECUTOR_ANNOTATION: "pool"} if pooled else {}
    job: dict[str, Any] = {
        "template": {
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{
                "name": "main",
                "command": ["python", "-u", str(script)],
                "args": [what, str(value)],
            }]},
        }
    }
    if deadline is not None:
        job["activeDeadlineSeconds"] = deadline
    log = tmp_path / "logs" / f"{trial}.log"
    launcher.launch(
        TrialLaunch(
            namespace="default",
            experiment="exp",
            trial=trial,
            manifest={"apiVersion": "batch/v1", "kind": "Job", "spec": job},
            primary_container="main",
            assignments={"value": str(value)},
            collection=CollectionPlan(("loss", "returned")),
            log_path=log,
            source_dir=str(tmp_path),
            parallel_trial_count=parallel,
        ),
        sink,
    )
    return log


def test_trials_share_one_worker_that_imports_the_script_once(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    logs = {}
    for i in range(4):
        logs[f"t{i}"] = launch(launcher, sink, tmp_path, script, f"t{i}", "ok", i)
        ended = sink.wait(f"t{i}")
        assert ended.ending == Ending.COMPLETED and ended.exit_code == 0
        # Printed (the StdOut collector) and returned metrics, as a process trial reports.
        assert sink.observations(f"t{i}") == {"loss": 2.0 * i, "returned": i + 1.0}
    pids = {sink.started[t].pid for t in logs}
    assert len(pids) == 1 and imports(tmp_path) == list(pids)
    for trial, log in logs.items():
        # Each trial's output in its own log, written while the trial ran in its folder.
        assert log.read_text() == f"trial {trial} in {tmp_path}\nloss={2.0 * int(trial[1:])}\n"
    # Events in the launcher's order: started, then the end.
    for trial in logs:
        kinds = [type(e) for e in sink.order if e.trial == trial]
        assert kinds[0] is TrialStarted and kinds[-1] is TrialEnded


def test_an_exception_fails_the_trial_with_its_traceback_and_the_worker_goes_on(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    log = launch(launcher, sink, tmp_path, script, "bad", "raise", 0.25)
    ended = sink.wait("bad")
    assert ended.ending == Ending.FAILED and ended.exit_code == 1
    text = log.read_text()
    assert "Traceback (most recent call last):" in text
    assert "ValueError: boom 0.25" in text
    assert "_worker.py" not in text  # the traceback is the script's, as `python SCRIPT` shows
    refusal = launch(launcher, sink, tmp_path, script, "refused", "exit")
    assert sink.wait("refused").ending == Ending.FAILED
    assert "katib: a clear refusal" in refusal.read_text()
    launch(launcher, sink, tmp_path, script, "next", "ok")
    assert sink.wait("next").ending == Ending.COMPLETED
    assert sink.started["next"].pid == sink.started["bad"].pid
    assert len(imports(tmp_path)) == 1


@pytest.mark.parametrize(("what", "code", "words"), [
    ("crash", 3, "exited without finishing the trial with code 3"),
    ("segfault", -signal.SIGSEGV, "killed by SIGSEGV"),
])
def test_a_worker_that_dies_fails_only_its_trial_and_is_replaced(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path, what: str, code: int,
    words: str,
) -> None:
    sink = Sink()
    log = launch(launcher, sink, tmp_path, script, "dies", what)
    ended = sink.wait("dies")
    assert ended.ending == Ending.FAILED and ended.exit_code == code
    assert "pool worker" in ended.message and words in ended.message
    assert f"[katib] the pool worker running this trial (pid {sink.started['dies'].pid})" in (
        log.read_text()
    )
    assert not psutil.pid_exists(sink.started["dies"].pid) or psutil.Process(
        sink.started["dies"].pid
    ).status() == psutil.STATUS_ZOMBIE
    launch(launcher, sink, tmp_path, script, "after", "ok")
    assert sink.wait("after").ending == Ending.COMPLETED
    assert sink.started["after"].pid != sink.started["dies"].pid
    assert len(imports(tmp_path)) == 2  # the replacement imported the script afresh


def test_a_hung_trial_past_its_deadline_is_stopped_with_its_worker(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    start = time.monotonic()
    launch(launcher, sink, tmp_path, script, "hung", "hang", deadline=1)
    ended = sink.wait("hung")
    assert ended.ending == Ending.DEADLINE_EXCEEDED
    assert "activeDeadlineSeconds" in ended.message
    assert time.monotonic() - start < 15
    pid = sink.started["hung"].pid
    assert pid is not None and _gone(pid)
    launch(launcher, sink, tmp_path, script, "after", "ok")
    assert sink.wait("after").ending == Ending.COMPLETED
    assert sink.started["after"].pid != pid


def test_a_killed_trial_takes_its_worker_along_and_the_next_gets_a_fresh_one(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    launch(launcher, sink, tmp_path, script, "stopped", "hang")
    pid = sink.wait_started("stopped").pid
    assert pid is not None
    time.sleep(0.3)
    launcher.kill("stopped", KillReason.EARLY_STOPPED, "behind the median")
    ended = sink.wait("stopped")
    assert ended.ending == Ending.KILLED
    assert ended.kill_reason == KillReason.EARLY_STOPPED
    assert ended.message == "behind the median"
    assert _gone(pid)
    launch(launcher, sink, tmp_path, script, "after", "ok")
    assert sink.wait("after").ending == Ending.COMPLETED
    assert sink.started["after"].pid != pid


def test_parallel_trials_run_in_as_many_workers_at_once(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    # Warm two workers up, so that the timing below is the trials', not the imports'.
    for name in ("w0", "w1"):
        launch(launcher, sink, tmp_path, script, name, "sleep", 0.5, parallel=2)
    sink.wait("w0")
    sink.wait("w1")
    start = time.monotonic()
    for name in ("a", "b"):
        launch(launcher, sink, tmp_path, script, name, "sleep", 2.0, parallel=2)
    sink.wait("a")
    sink.wait("b")
    assert time.monotonic() - start < 3.9  # side by side, not one after the other
    assert sink.started["a"].pid != sink.started["b"].pid
    assert {sink.started["a"].pid, sink.started["b"].pid} == {
        sink.started["w0"].pid, sink.started["w1"].pid
    }
    assert len(imports(tmp_path)) == 2


def test_without_the_annotation_or_the_pool_each_trial_is_a_process(
    tmp_path: Path, script: Path, launcher: LocalProcessLauncher
) -> None:
    sink = Sink()
    for name in ("p0", "p1"):
        launch(launcher, sink, tmp_path, script, name, "ok", pooled=False)
        assert sink.wait(name).ending == Ending.COMPLETED
    no_pool = LocalProcessLauncher(tmp_path / "home2", function_pool=False)
    launch(no_pool, sink, tmp_path, script, "p2", "ok")
    assert sink.wait("p2").ending == Ending.COMPLETED
    assert len({sink.started[n].pid for n in ("p0", "p1", "p2")}) == 3
    assert len(imports(tmp_path)) == 3
    # The printed metric, read by the process launcher; `python SCRIPT` would have to report
    # the returned one itself (this script does not).
    assert sink.observations("p0") == {"loss": 1.0}


def test_kill_all_stops_running_and_idle_workers(
    launcher: LocalProcessLauncher, script: Path, tmp_path: Path
) -> None:
    sink = Sink()
    launch(launcher, sink, tmp_path, script, "idle", "ok", parallel=2)
    sink.wait("idle")
    launch(launcher, sink, tmp_path, script, "busy", "hang", parallel=2)
    sink.wait_started("busy")
    launch(launcher, sink, tmp_path, script, "busy2", "hang", parallel=2)
    sink.wait_started("busy2")
    launcher.kill_all(KillReason.INTERRUPTED, wait=5.0)
    for name in ("busy", "busy2"):
        ended = sink.wait(name)
        assert ended.ending == Ending.KILLED and ended.kill_reason == KillReason.INTERRUPTED
    for name in ("idle", "busy", "busy2"):
        pid = sink.started[name].pid
        assert pid is not None and _gone(pid)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_the_worker_ends_when_the_process_that_started_it_is_killed(
    tmp_path: Path, script: Path
) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.trial_runner.test_pool import Sink, launch
        from trial_runner.local import LocalProcessLauncher
        tmp = Path({str(tmp_path)!r})
        launcher = LocalProcessLauncher(tmp / "home", function_pool=True)
        sink = Sink()
        launch(launcher, sink, tmp, Path({str(script)!r}), "orphan", "hang")
        print(sink.wait_started("orphan").pid, flush=True)
        time.sleep(600)
    """))
    import subprocess

    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert psutil.pid_exists(pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _gone(pid), "the worker outlived the killed process that started it"
    finally:
        proc.kill()
