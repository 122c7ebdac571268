"""Running commands as process groups (under the local launcher), with real child processes.

Every trial is a ``python -c`` script; events are collected from the launcher's sink. Timing
bounds are generous: these tests share the machine with other work.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from trial_runner import Ending, KillReason, MetricsReported, TrialEnded, TrialStarted
from trial_runner._process import (
    MAX_PARSED_LINE,
    REPORT_INTERVAL,
    ProcessRunner,
    ProcessSpec,
)
from trial_runner.metrics import MetricsParser, Observation

Event = TrialStarted | MetricsReported | TrialEnded

#: Longest a trial that should end soon may take to report its end.
EXIT_TIMEOUT = 20.0


class Events:
    """A sink that collects events, and waits for them."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Event] = queue.Queue()
        self.seen: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        if not isinstance(event, TrialStarted):
            self.queue.put(event)

    def _take(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            event = self.queue.get(timeout=remaining)
        except queue.Empty:
            return False
        self.seen.append((time.monotonic(), event))
        return True

    def exited(self, trial: str, timeout: float = EXIT_TIMEOUT) -> TrialEnded:
        deadline = time.monotonic() + timeout
        while True:
            for _, event in self.seen:
                if isinstance(event, TrialEnded) and event.trial == trial:
                    return event
            if not self._take(deadline):
                raise AssertionError(f"no TrialEnded for {trial} within {timeout} s")

    def first_report(self, trial: str, timeout: float) -> tuple[float, MetricsReported] | None:
        deadline = time.monotonic() + timeout
        while True:
            for at, event in self.seen:
                if isinstance(event, MetricsReported) and event.trial == trial:
                    return at, event
            if not self._take(deadline):
                return None

    def of(self, trial: str) -> list[Event]:
        return [event for _, event in self.seen if event.trial == trial]

    def observations(self, trial: str) -> list[Observation]:
        out: list[Observation] = []
        for event in self.of(trial):
            out.extend(event.observations)
        return out


@pytest.fixture
def new_launcher() -> Iterator[Callable[[float], ProcessRunner]]:
    """Makes launchers with a given grace period; whatever they still run is killed after."""
    made: list[ProcessRunner] = []

    def make(grace_seconds: float) -> ProcessRunner:
        made.append(ProcessRunner(grace_seconds=grace_seconds))
        return made[-1]

    yield make
    for launcher in made:
        launcher.kill_all(KillReason.INTERRUPTED, wait=2.0)


@pytest.fixture
def launcher(new_launcher: Callable[[float], ProcessRunner]) -> ProcessRunner:
    return new_launcher(2.0)


@pytest.fixture
def events() -> Events:
    return Events()


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def make_spec(
    tmp_path: Path,
    trial: str,
    argv: Sequence[str],
    *,
    parse_line: Callable[[bytes], Sequence[Any]] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    deadline_seconds: float | None = None,
) -> ProcessSpec:
    return ProcessSpec(
        argv=list(argv),
        cwd=str(cwd or tmp_path),
        log_path=tmp_path / "logs" / f"{trial}.log",
        env=dict(env or {}),
        parse_line=parse_line,
        deadline_seconds=deadline_seconds,
    )


LOSS = MetricsParser(["loss"]).parse_line


def values(observations: Sequence[Observation]) -> list[float]:
    return [o.value for o in observations]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def log_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace") if path.exists() else ""


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def alive(pid: int) -> bool:
    return not gone(pid)


# A trial that prints the pid of a background grandchild, then waits.
SPAWN_GRANDCHILD = """
import subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
print("grandchild", child.pid, flush=True)
time.sleep(60)
"""


def grandchild_pid(log_path: Path) -> int:
    # The whole line: the copier may have written only part of it when first looked at.
    pattern = re.compile(r"^grandchild (\d+)\n", re.M)
    wait_for(lambda: pattern.search(log_text(log_path)) is not None, 10, "the grandchild's pid")
    match = pattern.search(log_text(log_path))
    assert match is not None
    return int(match.group(1))


# --- output and metrics -----------------------------------------------------------------------


def test_output_is_copied_verbatim_including_binary(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    garbage = bytes(range(256)) + b"\xff\xfe\x00\r\n\x80 not utf-8 \xc3\x28\n"
    code = (
        "import sys\n"
        f"sys.stdout.buffer.write({garbage!r})\n"
        "sys.stdout.buffer.flush()\n"
        "sys.stderr.write('to stderr\\n')\n"
        "sys.stderr.flush()\n"
        "sys.stdout.buffer.write(b'no newline at the end')\n"
    )
    spec = make_spec(tmp_path, "t", python(code), parse_line=LOSS)
    assert isinstance(launcher.start("t", spec, events), int)
    exited = events.exited("t")
    assert exited.exit_code == 0
    assert exited.ending == Ending.COMPLETED
    assert spec.log_path.read_bytes() == garbage + b"to stderr\n" + b"no newline at the end"


def test_metrics_are_parsed_from_lines(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    code = (
        "print('epoch 1 loss=0.9 accuracy=0.1')\n"
        "print('accuracy=0.5')\n"
        "print('2024-01-02T03:04:05Z loss = 0.7')\n"
        "import sys; sys.stdout.write('loss=0.5')  # the last line has no newline\n"
    )
    launcher.start("t", make_spec(tmp_path, "t", python(code), parse_line=LOSS), events)
    assert events.exited("t").exit_code == 0
    observations = events.observations("t")
    assert values(observations) == [0.9, 0.7, 0.5]
    assert {o.name for o in observations} == {"loss"}
    assert observations[1].timestamp == 1704164645.0


def test_without_a_parser_output_is_only_logged(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("print('loss=0.1')"))
    launcher.start("t", spec, events)
    assert events.exited("t").observations == []
    assert spec.log_path.read_bytes() == b"loss=0.1\n"


def test_output_reaches_the_log_while_the_trial_runs(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("import time\nprint('hello')\ntime.sleep(60)"))
    pid = launcher.start("t", spec, events)
    assert pid is not None
    wait_for(lambda: log_text(spec.log_path) == "hello\n", 10, "the log to show the output")
    assert alive(pid)


def test_huge_line_is_logged_whole_and_parsed_only_in_part(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    fed: list[int] = []

    def parse(line: bytes) -> list[Observation]:
        fed.append(len(line))
        return LOSS(line)

    huge = b"loss=1.5 " + b"x" * 2_000_000 + b" loss=9.0"
    code = (
        "import sys\n"
        "w = sys.stdout.buffer.write\n"
        "w(b'loss=1.5 ' + b'x' * 2_000_000 + b' loss=9.0\\n')\n"
        "w(b'loss=0.5\\n')\n"
    )
    spec = make_spec(tmp_path, "t", python(code), parse_line=parse)
    launcher.start("t", spec, events)
    exited = events.exited("t", timeout=60)
    assert exited.exit_code == 0
    assert spec.log_path.read_bytes() == huge + b"\n" + b"loss=0.5\n"
    assert fed and max(fed) <= MAX_PARSED_LINE
    # The long line's start is still read, its tail beyond the limit is not, and the line
    # after it is parsed normally.
    assert values(events.observations("t")) == [1.5, 0.5]


def test_metrics_are_reported_while_the_trial_runs(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    code = "import time\nprint('loss=1.0')\ntime.sleep(1.5)\nprint('loss=0.5')\n"
    launcher.start("t", make_spec(tmp_path, "t", python(code), parse_line=LOSS), events)
    events.exited("t")
    kinds = [type(event) for event in events.of("t")]
    assert kinds[0] is MetricsReported
    assert kinds[-1] is TrialEnded and kinds.count(TrialEnded) == 1
    first = events.of("t")[0]
    assert values(first.observations)[0] == 1.0
    assert values(events.observations("t")) == [1.0, 0.5]


def test_a_silent_trial_still_reports_what_it_printed(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    # The metric is printed, then the trial computes without output for a long time.
    code = "import time\nprint('loss=1.0')\ntime.sleep(30)\n"
    pid = launcher.start("t", make_spec(tmp_path, "t", python(code), parse_line=LOSS), events)
    assert pid is not None
    report = events.first_report("t", timeout=REPORT_INTERVAL + 10)
    assert report is not None, "the metric was not reported while the trial was silent"
    assert values(report[1].observations) == [1.0]
    assert alive(pid)
    assert not [e for e in events.of("t") if isinstance(e, TrialEnded)]


# --- exit codes and start failures ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [
        ("pass", 0),
        ("raise SystemExit(3)", 3),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
    ],
    ids=["zero", "three", "signal"],
)
def test_exit_codes(
    launcher: ProcessRunner, events: Events, tmp_path: Path, code: str, exit_code: int
) -> None:
    launcher.start("t", make_spec(tmp_path, "t", python(code)), events)
    exited = events.exited("t")
    assert exited.exit_code == exit_code
    assert exited.ending == (Ending.COMPLETED if exit_code == 0 else Ending.FAILED)
    assert exited.kill_reason is None
    assert launcher.active() == []


def test_missing_command_is_an_error_without_exit_code(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    command = str(tmp_path / "no-such-command")
    spec = make_spec(tmp_path, "t", [command, "--flag"])
    assert launcher.start("t", spec, events) is None
    exited = events.exited("t", timeout=1)
    assert exited.exit_code is None
    assert exited.ending == Ending.NOT_STARTED and command in exited.message
    assert command in log_text(spec.log_path)
    assert launcher.active() == []


def test_missing_working_directory_is_an_error(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("pass"), cwd=tmp_path / "missing")
    assert launcher.start("t", spec, events) is None
    exited = events.exited("t", timeout=1)
    assert exited.exit_code is None
    assert exited.ending == Ending.NOT_STARTED and exited.message


# --- stopping trials --------------------------------------------------------------------------


def test_kill_reports_the_reason(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("import time\nprint('up')\ntime.sleep(60)"))
    pid = launcher.start("t", spec, events)
    assert pid is not None
    assert launcher.active() == ["t"]
    wait_for(lambda: "up" in log_text(spec.log_path), 10, "the trial to start")
    started = time.monotonic()
    launcher.kill("t", KillReason.USER, "stopped by the user")
    exited = events.exited("t")
    assert time.monotonic() - started < 10
    assert exited.ending == Ending.KILLED and exited.kill_reason == KillReason.USER
    assert exited.message == "stopped by the user"
    assert exited.exit_code == -signal.SIGTERM
    assert gone(pid)
    assert launcher.active() == []


def test_kill_escalates_to_sigkill_after_the_grace_period(
    new_launcher: Callable[[float], ProcessRunner], events: Events, tmp_path: Path
) -> None:
    launcher = new_launcher(0.5)
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(60)\n"
    )
    spec = make_spec(tmp_path, "t", python(code))
    launcher.start("t", spec, events)
    wait_for(lambda: "ignoring" in log_text(spec.log_path), 10, "the handler")
    launcher.kill("t", KillReason.EARLY_STOPPED)
    exited = events.exited("t")
    assert exited.exit_code == -signal.SIGKILL
    assert exited.kill_reason == KillReason.EARLY_STOPPED


def test_kill_of_an_unknown_trial_does_nothing(launcher: ProcessRunner) -> None:
    launcher.kill("never-launched", KillReason.USER)
    assert launcher.active() == []


def test_kill_stops_the_whole_process_group(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python(SPAWN_GRANDCHILD))
    launcher.start("t", spec, events)
    grandchild = grandchild_pid(spec.log_path)
    assert alive(grandchild)
    launcher.kill("t", KillReason.USER)
    assert events.exited("t").kill_reason == KillReason.USER
    wait_for(lambda: gone(grandchild), 10, f"grandchild {grandchild} to end")


def test_kill_all_waits_and_kills_everything(
    new_launcher: Callable[[float], ProcessRunner], events: Events, tmp_path: Path
) -> None:
    launcher = new_launcher(60.0)  # kill_all must not rely on the grace period
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    specs = {
        "polite": make_spec(
            tmp_path, "polite", python("print('ready')\nimport time\ntime.sleep(60)")
        ),
        "stubborn": make_spec(tmp_path, "stubborn", python(stubborn)),
        "family": make_spec(tmp_path, "family", python(SPAWN_GRANDCHILD)),
    }
    pids = {name: launcher.start(name, spec, events) for name, spec in specs.items()}
    for name in ("polite", "stubborn"):
        wait_for(lambda n=name: "ready" in log_text(specs[n].log_path), 10, f"{name} to start")
    grandchild = grandchild_pid(specs["family"].log_path)

    started = time.monotonic()
    launcher.kill_all(KillReason.INTERRUPTED, wait=1.0)
    elapsed = time.monotonic() - started
    # It waited for the stubborn one (about ``wait``), then killed it.
    assert 0.8 <= elapsed < 8, elapsed
    for name, pid in pids.items():
        assert pid is not None
        wait_for(lambda p=pid: gone(p), 5, f"{name} to end")
    wait_for(lambda: gone(grandchild), 5, "the grandchild to end")

    exits = {name: events.exited(name) for name in specs}
    assert {e.kill_reason for e in exits.values()} == {KillReason.INTERRUPTED}
    assert exits["polite"].exit_code == -signal.SIGTERM
    assert exits["stubborn"].exit_code == -signal.SIGKILL
    assert launcher.active() == []


def test_deadline_kills_the_trial(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("import time\ntime.sleep(60)"), deadline_seconds=0.5)
    started = time.monotonic()
    launcher.start("t", spec, events)
    exited = events.exited("t")
    assert time.monotonic() - started < 15
    assert exited.ending == Ending.DEADLINE_EXCEEDED and exited.kill_reason is None
    assert "activeDeadlineSeconds" in exited.message
    assert exited.exit_code is not None and exited.exit_code < 0


def test_trial_that_ends_before_its_deadline_is_not_killed(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    spec = make_spec(tmp_path, "t", python("pass"), deadline_seconds=30)
    launcher.start("t", spec, events)
    exited = events.exited("t")
    assert exited.exit_code == 0
    assert exited.ending == Ending.COMPLETED


# --- environment and working directory --------------------------------------------------------


def test_environment_is_passed_over_the_parents(
    launcher: ProcessRunner,
    events: Events,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KATIB_TEST_INHERITED", "from-parent")
    monkeypatch.setenv("KATIB_TEST_OVERRIDDEN", "parent-value")
    code = (
        "import os\n"
        "for key in ('KATIB_TEST_INHERITED', 'KATIB_TEST_OVERRIDDEN', 'KATIB_TEST_NEW'):\n"
        "    print(key, os.environ.get(key))\n"
    )
    env = {"KATIB_TEST_OVERRIDDEN": "trial-value", "KATIB_TEST_NEW": "grüße 1"}
    spec = make_spec(tmp_path, "t", python(code), env=env)
    launcher.start("t", spec, events)
    assert events.exited("t").exit_code == 0
    assert log_text(spec.log_path).splitlines() == [
        "KATIB_TEST_INHERITED from-parent",
        "KATIB_TEST_OVERRIDDEN trial-value",
        "KATIB_TEST_NEW grüße 1",
    ]


def test_working_directory_is_honoured(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    code = "import os\nprint(os.getcwd())\nopen('marker.txt', 'w').write('here')\n"
    spec = make_spec(tmp_path, "t", python(code), cwd=workdir)
    launcher.start("t", spec, events)
    assert events.exited("t").exit_code == 0
    assert Path(log_text(spec.log_path).strip()).resolve() == workdir.resolve()
    assert (workdir / "marker.txt").read_text() == "here"


# --- grandchildren holding the output open ----------------------------------------------------


@pytest.mark.parametrize("chatty", [False, True], ids=["silent", "chatty"])
def test_grandchild_holding_stdout_does_not_hold_the_trial(
    launcher: ProcessRunner, events: Events, tmp_path: Path, chatty: bool
) -> None:
    grandchild = (
        "import time\nwhile True:\n    print('chatter', flush=True)\n    time.sleep(0.02)\n"
        if chatty
        else "import time\ntime.sleep(60)\n"
    )
    code = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {grandchild!r}])\n"
        "print('grandchild', child.pid, flush=True)\n"
        "print('loss=0.25', flush=True)\n"
    )
    spec = make_spec(tmp_path, "t", python(code), parse_line=LOSS)
    pid = launcher.start("t", spec, events)
    assert pid is not None
    try:
        started = time.monotonic()
        exited = events.exited("t", timeout=15)
        assert time.monotonic() - started < 10
        assert exited.exit_code == 0
        assert values(events.observations("t")) == [0.25]
    finally:
        # The grandchild outlives the trial; it still has the trial's process group.
        os.killpg(pid, signal.SIGKILL)


# --- memory -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_large_output_does_not_grow_memory(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    megabytes = 100
    code = (
        "import sys\n"
        "line = b'step done, nothing to see ' + b'.' * 997 + b'\\n'\n"  # 1 KiB lines
        "chunk = line * 1024\n"
        f"for _ in range({megabytes}):\n"
        "    sys.stdout.buffer.write(chunk)\n"
        "sys.stdout.buffer.write(b'loss=0.125\\n')\n"
    )
    # Warm up first: threads, buffers and imports the launcher needs anyway.
    launcher.start(
        "warm", make_spec(tmp_path, "warm", python("print('loss=1')"), parse_line=LOSS), events
    )
    events.exited("warm")

    me = psutil.Process()
    before = me.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    spec = make_spec(tmp_path, "big", python(code), parse_line=LOSS)
    try:
        launcher.start("big", spec, events)
        exited = events.exited("big", timeout=240)
    finally:
        done.set()
        sampler.join()
    assert exited.exit_code == 0
    assert spec.log_path.stat().st_size == megabytes * 1024 * 1024 + len(b"loss=0.125\n")
    assert values(events.observations("big")) == [0.125]
    growth_mb = (max(peak, me.memory_info().rss) - before) / 2**20
    assert growth_mb < 50, f"memory grew by {growth_mb:.0f} MB for {megabytes} MB of output"


def test_leftovers_of_a_trial_that_ended_on_its_own_are_stopped(
    launcher: ProcessRunner, events: Events, tmp_path: Path
) -> None:
    code = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '60'], stdout=subprocess.DEVNULL)\n"
        "print('grandchild', child.pid, flush=True)\n"
    )
    spec = make_spec(tmp_path, "t", python(code))
    launcher.start("t", spec, events)
    assert events.exited("t").exit_code == 0
    grandchild = grandchild_pid(spec.log_path)
    wait_for(lambda: gone(grandchild), 5, "the grandchild to end with its trial")


@pytest.fixture
def signals_after_reaping(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every process group signalled after its leader (a child of this process) was reaped.

    Once reaped, the leader's pid is free: a new process (another trial, started in a
    session of its own) may get it, and the signal would stop that one instead.
    """
    late: list[tuple[int, int]] = []
    killpg = os.killpg

    def checked(pgid: int, sig: int) -> None:
        try:
            os.waitid(os.P_PID, pgid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            late.append((pgid, sig))
        killpg(pgid, sig)

    monkeypatch.setattr(os, "killpg", checked)
    return late


def test_no_group_is_signalled_after_its_leader_was_reaped(
    new_launcher: Callable[[float], ProcessRunner],
    events: Events,
    tmp_path: Path,
    signals_after_reaping: list[tuple[int, int]],
) -> None:
    launcher = new_launcher(0.3)
    ready = "import time\nprint('ready', flush=True)\ntime.sleep(60)"
    specs = {
        "ends": make_spec(tmp_path, "ends", python("print('loss=1')")),
        # Stopped: SIGTERM ends it at once, well before the SIGKILL of the grace is due.
        "killed": make_spec(tmp_path, "killed", python(ready)),
        "expired": make_spec(tmp_path, "expired", python(ready), deadline_seconds=0.2),
        "interrupted": make_spec(tmp_path, "interrupted", python(ready)),
    }
    for name, spec in specs.items():
        launcher.start(name, spec, events)
    assert events.exited("ends").exit_code == 0
    wait_for(lambda: "ready" in log_text(specs["killed"].log_path), 10, "the trial to start")
    launcher.kill("killed", KillReason.USER)
    assert events.exited("killed").exit_code == -signal.SIGTERM
    assert events.exited("expired").ending == Ending.DEADLINE_EXCEEDED
    wait_for(lambda: "ready" in log_text(specs["interrupted"].log_path), 10, "the trial to start")
    launcher.kill_all(KillReason.INTERRUPTED, wait=2.0)
    assert events.exited("interrupted").exit_code == -signal.SIGTERM
    time.sleep(1.0)  # past every grace period: a SIGKILL still due would have been sent
    assert signals_after_reaping == []
