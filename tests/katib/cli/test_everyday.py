"""Everyday use of the ``katib`` command, as a new user meets it: each test runs the commands
and checks what they print.

Failed trials explain themselves; states are honest (an interrupted experiment says so);
one rule for budgets; kubectl's habits (aliases, ``describe trial``, ``--sort-by``, ``-o``,
``--watch``, complete help, shell completion).
"""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from typing import Any

import click
import pytest
import yaml

from katib import KatibClient
from katib.errors import ConflictError
from tests.katib.cli.conftest import REPO, Katib, experiment_doc

pytestmark = pytest.mark.e2e

#: Cursor movements of a live display (each starts a new line of the screen), and the rest.
CURSOR = re.compile(r"\x1b\[[0-9]*[ABGK]|\r")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _running(katib: Katib, name: str = "exp") -> int:
    result = katib("get", "trials", name, "-o", "json")
    if result.returncode != 0:
        return 0
    return sum(t["status"]["condition"] == "Running" for t in json.loads(result.stdout)["items"])


def _in_terminal(katib: Katib, *args: str, columns: int = 80) -> tuple[int, str]:
    """Run ``katib ARGS`` with a terminal (a pty of ``columns``) as stdout and stderr."""
    master, slave = pty.openpty()
    env = dict(katib.env, COLUMNS=str(columns), LINES="40", TERM="xterm-256color")
    process = subprocess.Popen(
        [sys.executable, "-m", "katib", *args], cwd=katib.folder, env=env,
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    code = process.wait(timeout=30)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    return code, ANSI.sub("", CURSOR.sub("\n", text))


# Failed trials explain themselves ------------------------------------------------------------


def test_failed_trials_show_why_at_the_end_of_the_run_in_logs_and_describe(katib: Katib) -> None:
    path = katib.write(experiment_doc(args=["--x=${trialParameters.x}", "--mode=fail"],
                                      maxFailedTrialCount=1))
    result = katib("run", str(path))
    assert result.returncode == 1
    # The end of the run: what failed, the last lines of its output, where the logs are.
    logs = katib.home / "logs" / "default" / "exp"
    assert "trial(s) of default/exp failed" in result.stderr
    assert f"their output is in {logs}/" in result.stderr
    assert "Failed: exited with code 3" in result.stderr
    assert "| something broke" in result.stderr
    failed = [t for t in katib.trials("exp") if t["status"]["condition"] == "Failed"]
    name = failed[0]["metadata"]["name"]
    assert re.search(rf"katib logs {name[:-8]}", result.stderr)
    # `katib logs TRIAL` prints the whole output; --tail its end.
    shown = katib("logs", name)
    assert shown.returncode == 0 and "something broke" in shown.stdout
    assert katib("logs", name, "--tail", "1").stdout == "something broke\n"
    # `katib describe trial`: state, reason, message, exit code and the end of the output.
    described = katib("describe", "trial", name)
    assert described.returncode == 0, described.stderr
    out = described.stdout
    assert "State:       Failed" in out and "exited with code 3" in out
    assert "Exit code:   3" in out and "x = " in out
    assert f"the last 1 line(s) of {logs / (name + '.log')}" in out
    assert "| something broke" in out and f"katib logs {name}" in out
    assert "Traceback" not in result.stderr + described.stderr


def test_metrics_unavailable_trials_show_what_they_printed(katib: Katib) -> None:
    path = katib.write(experiment_doc(args=["--x=${trialParameters.x}", "--mode=silent"],
                                      maxFailedTrialCount=0))
    result = katib("run", str(path))
    assert result.returncode == 1
    assert "MetricsUnavailable: objective metric loss was never reported" in result.stderr
    assert "| no metrics here" in result.stderr


def test_the_live_table_keeps_the_message_column_on_a_terminal(katib: Katib) -> None:
    path = katib.write(experiment_doc(args=["--x=${trialParameters.x}", "--mode=fail"],
                                      maxFailedTrialCount=1, parallelTrialCount=1))
    code, screen = _in_terminal(katib, "run", str(path), columns=80)
    assert code == 1, screen
    # The live table (not the one-line-per-trial output of a pipe) with the message column.
    header = [line for line in screen.splitlines() if re.match(r"\s*trial\s+state\s", line)]
    assert header and "message" in header[-1], screen
    rows = [line for line in screen.splitlines() if re.match(r"\s*exp-\w{8}\s+Failed", line)]
    assert rows and all("exited with code 3" in row for row in rows), screen
    assert all(len(line) <= 80 for line in [*header, *rows]), screen


def test_a_missing_trial_script_is_a_warning_before_anything_starts(katib: Katib) -> None:
    path = katib.write(experiment_doc(container={"command": ["python3", "tain.py"]}))
    validated = katib("validate", str(path))
    # Valid (on a cluster the image has it), but said, with where it was looked for.
    assert validated.returncode == 0
    assert "valid (exp)" in validated.stdout
    assert "warning:" in validated.stderr
    assert f"{katib.folder / 'tain.py'} does not exist on this machine" in validated.stderr
    assert "relative paths resolve against the YAML file's folder" in validated.stderr
    result = katib("run", str(path))
    assert result.stderr.startswith(f"{path}: warning: ")
    assert result.returncode == 1  # the trials then fail as announced
    # A script that is there, a module (-m) and a command on PATH are not warned about.
    for container in ({"command": ["python3", "-u", "trial.py"]},
                      {"command": ["python3", "-m", "trial"]},
                      {"command": ["sh", "-c", "python3 trial.py --x=$1"]}):
        ok = katib.write(experiment_doc(container=container), name="ok.yaml")
        checked = katib("validate", str(ok))
        assert checked.returncode == 0 and "warning" not in checked.stderr, container
    missing = katib.write(experiment_doc(container={"command": ["no-such-program-here"]}),
                          name="prog.yaml")
    assert "'no-such-program-here' is not found on this machine's PATH" in katib(
        "validate", str(missing)
    ).stderr
    doc = experiment_doc()
    del doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    entrypoint = katib("validate", str(katib.write(doc, name="entry.yaml")))
    assert entrypoint.returncode == 0
    assert "no command: locally the image's entrypoint is not known" in entrypoint.stderr


def test_validate_says_which_package_provides_an_unknown_plugin_algorithm(katib: Katib) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "katib", "validate", "examples/plugin-algorithm/experiment.yaml"],
        cwd=REPO, env=katib.env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "unknown algorithm 'lhs'" in result.stderr
    assert ("hint: the package in examples/plugin-algorithm registers the algorithm 'lhs': "
            "install it first (pip install -e examples/plugin-algorithm)") in result.stderr


# Honest states --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["kill -9", "Ctrl-C"])
def test_an_experiment_whose_controller_is_gone_shows_as_interrupted(
    katib: Katib, how: str
) -> None:
    (katib.folder / "hold").touch()
    path = katib.write(experiment_doc())
    run = katib.popen("run", str(path))
    try:
        _wait_for(lambda: _running(katib) == 2)
        listed = katib("get", "experiments").stdout
        assert re.search(r"\bexp\s+Running\b", listed), listed
        if how == "kill -9":
            run.kill()
        else:
            run.send_signal(signal.SIGINT)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    (katib.folder / "hold").unlink()
    listed = katib("get", "experiments").stdout
    assert re.search(r"\bexp\s+Interrupted\b", listed), listed
    [item] = katib.json("get", "experiments")["items"]
    assert item["status"]["condition"] == "Running"  # Katib's condition, unchanged
    assert item["status"]["interrupted"] is True
    described = katib("describe", "experiment", "exp").stdout
    assert "interrupted: nothing runs it" in described
    assert "`katib restart exp` resumes it here" in described
    # `katib restart` resumes it here, to its end.
    resumed = katib("restart", "exp")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming default/exp" in resumed.stdout
    [item] = katib.json("get", "experiments")["items"]
    assert item["status"]["condition"] == "Succeeded" and item["status"]["interrupted"] is False


def test_get_trials_of_an_experiment_without_trials_says_so(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    client = KatibClient()
    try:
        client.create_experiment(path)
    finally:
        client.close()
    result = katib("get", "trials", "exp")
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == "No trials yet in experiment default/exp (Created).\n"
    assert katib.trials("exp") == []  # -o json: an empty List, as kubectl


# One rule for budgets ------------------------------------------------------------------------


def test_a_finished_experiment_with_resume_policy_never_refuses_a_bigger_budget(
    katib: Katib,
) -> None:
    path = katib.write(experiment_doc())
    assert katib("run", str(path)).returncode == 0
    for command in (["edit", "exp", "--max-trial-count", "10"],
                    ["restart", "exp", "--max-trial-count", "10"]):
        refused = katib(*command)
        assert refused.returncode == 2, command
        assert "finished (Succeeded) with resumePolicy Never" in refused.stderr
        assert "`resumePolicy: LongRunning` in its spec" in refused.stderr
        assert "katib delete experiment exp" in refused.stderr
        assert "Traceback" not in refused.stderr
    [item] = katib.json("get", "experiments")["items"]
    assert item["spec"]["maxTrialCount"] == 4 and item["status"]["condition"] == "Succeeded"
    # The SDK says the same, with the same exception a refusal is everywhere.
    client = KatibClient()
    try:
        with pytest.raises(ConflictError) as refused_sdk:
            client.edit_experiment_budget("exp", max_trial_count=10)
    finally:
        client.close()
    assert refused.stderr == f"error: {refused_sdk.value}\n"


def test_editing_a_finished_long_running_experiment_restarts_it(katib: Katib) -> None:
    path = katib.write(experiment_doc(resumePolicy="LongRunning"))
    assert katib("run", str(path)).returncode == 0
    small = katib("edit", "exp", "--max-trial-count", "3")
    assert small.returncode == 2
    assert "spec.maxTrialCount: must exceed the 4 trials already run" in small.stderr
    edited = katib("edit", "exp", "--max-trial-count", "6")
    assert edited.returncode == 0, edited.stderr
    assert "maxTrialCount=6" in edited.stdout
    assert ("it had finished (Succeeded) and is now Restarting: `katib restart exp` runs its "
            "new trials here") in edited.stdout
    assert re.search(r"\bexp\s+Restarting\b", katib("get", "exp").stdout)
    assert katib("restart", "exp").returncode == 0
    assert len(katib.trials("exp")) == 6


# kubectl habits ------------------------------------------------------------------------------


@pytest.fixture
def finished(katib: Katib) -> Katib:
    path = katib.write(experiment_doc(maxTrialCount=6))
    assert katib("run", str(path), "--output", "best.json").returncode == 0
    return katib


def test_get_experiment_by_name_and_aliases(finished: Katib) -> None:
    katib = finished
    listing = katib("get", "experiments").stdout
    for alias in (["get", "exp"], ["get", "experiment", "exp"], ["get", "exps", "exp"]):
        assert katib(*alias).stdout == listing, alias
    assert katib.json("get", "experiment", "exp")["kind"] == "Experiment"  # the object itself
    assert katib.json("get", "experiments")["kind"] == "List"
    assert yaml.safe_load(katib("get", "exp", "exp", "-o", "yaml").stdout)["kind"] == "Experiment"
    assert katib("get", "exp", "-o", "name").stdout == "exp\n"
    wide = katib("get", "exp", "-o", "wide").stdout
    assert re.search(r"OBJECTIVE\s+ALGORITHM\s+BEST TRIAL", wide) and "minimize loss" in wide
    rows = list(csv.DictReader(io.StringIO(katib("get", "exp", "-o", "csv").stdout)))
    assert rows[0]["name"] == "exp" and rows[0]["condition"] == "Succeeded"
    missing = katib("get", "experiment", "nope")
    assert missing.returncode == 2 and "experiment nope not found" in missing.stderr


def test_get_trials_sort_by_and_output_formats(finished: Katib) -> None:
    katib = finished
    best = json.loads((katib.folder / "best.json").read_text())["bestTrialName"]
    assert katib("best", "exp", "-o", "name").stdout == f"{best}\n"
    by_objective = katib("get", "trials", "exp", "--sort-by", "objective", "-o", "name").stdout
    names = by_objective.split()
    assert names[0] == best and len(names) == 6
    items = katib.trials("exp", "--sort-by", "x")
    xs = [float(t["spec"]["parameterAssignments"][0]["value"]) for t in items]
    assert xs == sorted(xs)
    losses = [t["status"]["observation"]["metrics"][0]["min"]
              for t in katib.trials("exp", "--sort-by", "loss")]
    assert losses == sorted(losses)
    bad = katib("get", "trials", "exp", "--sort-by", "colour")
    assert bad.returncode == 2
    assert "sort by one of objective, created, name, state, duration, x, loss" in bad.stderr
    # -o csv: Optuna's column names; parameter values exactly as the trials got them.
    rows = list(csv.DictReader(io.StringIO(katib("get", "trials", "exp", "-o", "csv").stdout)))
    assert list(rows[0])[:6] == ["name", "state", "value", "params_x", "metrics_loss",
                                 "datetime_start"]
    by_name = {t["metadata"]["name"]: t for t in katib.trials("exp")}
    for row in rows:
        trial = by_name[row["name"]]
        assert row["params_x"] == trial["spec"]["parameterAssignments"][0]["value"]
        assert float(row["value"]) == trial["status"]["observation"]["metrics"][0]["min"]
    wide = katib("get", "trials", "exp", "-o", "wide").stdout
    assert re.search(r"NAME\s+STATE\s+x\s+loss\s+DURATION\s+REASON\s+EXIT\s+STARTED\s+MESSAGE",
                     wide)
    listed = yaml.safe_load(katib("get", "trials", "exp", "-o", "yaml").stdout)
    assert listed["kind"] == "List" and len(listed["items"]) == 6
    assert katib("describe", "trials", best).stdout == katib("describe", "trial", best).stdout


def test_watch_prints_trials_as_they_change_until_the_experiment_ends(katib: Katib) -> None:
    (katib.folder / "hold").touch()
    path = katib.write(experiment_doc())
    run = katib.popen("run", str(path))
    try:
        _wait_for(lambda: _running(katib) == 2)
        watch = katib.popen("get", "trials", "exp", "--watch")
        assert watch.stdout is not None
        first = [watch.stdout.readline() for _ in range(3)]  # the header and two trials
        (katib.folder / "hold").unlink()
        rest, err = watch.communicate(timeout=60)
        out = "".join(first) + rest
        assert run.wait(timeout=60) == 0
    finally:
        for process in (run,):
            if process.poll() is None:
                process.kill()
    assert watch.returncode == 0, err
    lines = out.splitlines()
    assert re.match(r"NAME\s+STATE\s+x\s+loss", lines[0])
    names = {t["metadata"]["name"] for t in katib.trials("exp")}
    for name in names:
        assert re.search(rf"^{name}\s+Succeeded\b", out, re.M), out
    assert sum(" Running " in line for line in lines) >= 2  # first seen running


def test_every_command_and_option_has_a_complete_help_text(katib: Katib) -> None:
    from katib.cli import cli

    def walk(command: click.Command, path: list[str]) -> None:
        result = katib(*path[1:], "--help")
        assert result.returncode == 0, path
        listing = result.stdout.partition("\nCommands:\n")[2]
        assert "..." not in listing, f"{' '.join(path)} --help cuts a summary"
        assert command.help, f"{' '.join(path)} has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(cli, ["katib"])
    assert "Aliases" in katib("get", "--help").stdout


def _complete(katib: Katib, line: str) -> list[str]:
    words = line.split(" ")
    env = dict(katib.env, _KATIB_COMPLETE="bash_complete", COMP_WORDS=line,
               COMP_CWORD=str(len(words) - 1))
    result = subprocess.run(
        [sys.executable, "-m", "katib"], cwd=katib.folder, env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def test_shell_completion_of_commands_experiments_and_trials(finished: Katib) -> None:
    katib = finished
    assert "get" in _complete(katib, "katib g")
    assert set(_complete(katib, "katib get ")) >= {"experiments", "trials"}
    assert _complete(katib, "katib get trials ") == ["exp"]
    assert _complete(katib, "katib describe experiment e") == ["exp"]
    trials = {t["metadata"]["name"] for t in katib.trials("exp")}
    assert set(_complete(katib, "katib logs exp-")) == trials
    assert set(_complete(katib, "katib describe trial ")) == trials
    assert _complete(katib, "katib logs nope") == []
    # A database that does not exist completes nothing, quietly.
    assert _complete(katib, "katib get trials --db /dev/null/x.db ") == []
    script = katib("completion", "bash")
    assert script.returncode == 0 and "_KATIB_COMPLETE=bash_complete" in script.stdout
    assert "compdef" in katib("completion", "zsh").stdout


def test_run_output_says_where_it_wrote(katib: Katib) -> None:
    path = katib.write(experiment_doc())
    result = katib("run", str(path), "--output", "best.json")
    assert result.returncode == 0
    assert f"wrote the optimal trial to {katib.folder / 'best.json'}\n" in result.stdout
