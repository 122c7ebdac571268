"""The SDK as Optuna's users expect it: a script run twice, progress where someone watches,
typed best parameters, a trials DataFrame, and the one budget rule.

Scripts run as a user runs them (``python tune.py``), in a terminal (a pty) or not.
"""

from __future__ import annotations

import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from katib import KatibClient, search
from katib.errors import ConflictError
from katib.sdk import _progress
from tests.katib.client.conftest import LiveServer

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SCRIPT = '''
import sys
from katib import KatibClient, search


def objective(parameters):
    print(f"loss={(parameters['x'] - 0.3) ** 2 + parameters['n'] / 100}")


client = KatibClient()
client.tune(
    name="twice",
    objective=objective,
    parameters={"x": search.double(0, 1), "n": search.int(1, 3),
                "opt": search.categorical(["sgd", "adam"])},
    objective_metric_name="loss",
    objective_type="minimize",
    max_trial_count=int(sys.argv[1]),
    load_if_exists="--load" in sys.argv,
    **({"show_progress": False} if "--quiet" in sys.argv else {}),
)
best = client.get_optimal_hyperparameters("twice")
print("best", best.best_trial_name, best.typed_parameters)
'''


@pytest.fixture
def client(katib_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
    KatibClient
]:
    monkeypatch.chdir(tmp_path)
    katib = KatibClient()
    yield katib
    katib.close()


def run_script(folder: Path, *args: str, terminal: bool = False) -> tuple[int, str, str]:
    """``python tune.py ARGS`` as a user runs it; with ``terminal``, stdout and stderr are one
    terminal (the second string is then empty)."""
    script = folder / "tune.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="100", TERM="xterm")
    command = [sys.executable, str(script), *args]
    if not terminal:
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                              timeout=120)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                               stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    code = process.wait(timeout=30)
    os.close(master)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace")), ""


def test_a_script_run_twice_conflicts_in_one_line_or_continues_with_load_if_exists(
    tmp_path: Path,
) -> None:
    code, out, err = run_script(tmp_path, "3")
    assert code == 0, err
    assert err == ""  # not a terminal: no progress unless asked
    # The same script again: one line, no database story behind it.
    code, out, err = run_script(tmp_path, "3")
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "katib.errors.ConflictError: experiment default/twice already exists: "
        "tune(..., load_if_exists=True) continues it (or returns it, when it has finished); "
        "delete_experiment('twice') removes it"
    )
    assert "IntegrityError" not in err and "The above exception" not in err
    # load_if_exists=True: a finished experiment with the same budget is loaded as it is.
    code, out, err = run_script(tmp_path, "3", "--load")
    assert code == 0, err
    assert re.search(r"^best twice-\w{8} \{'x': [0-9.]+, 'n': \d, 'opt': '(sgd|adam)'\}$", out,
                     re.M), out
    # A bigger budget follows the budget rule: resumePolicy Never refuses, saying how.
    code, out, err = run_script(tmp_path, "5", "--load")
    assert code == 1
    assert "finished (Succeeded) with resumePolicy Never" in err
    assert 'tune(..., resume_policy="LongRunning")' in err


def test_load_if_exists_restarts_a_long_running_experiment_and_refuses_another_space(
    client: KatibClient,
) -> None:
    def objective(parameters: dict[str, Any]) -> float:
        return float(parameters["x"])

    space = {"x": search.double(0, 1)}
    common: dict[str, Any] = {"objective_metric_name": "loss", "objective_type": "minimize",
                              "show_progress": False}
    client.tune("grow", objective, space, max_trial_count=2, resume_policy="LongRunning",
                **common)
    grown = client.tune("grow", objective, space, max_trial_count=4, resume_policy="LongRunning",
                        load_if_exists=True, **common)
    assert grown["status"]["condition"] == "Succeeded" and grown["status"]["trials"] == 4
    with pytest.raises(ConflictError, match=r"exists with a different spec \(spec.parameters"):
        client.tune("grow", objective, {"x": search.double(0, 2)}, max_trial_count=4,
                    resume_policy="LongRunning", load_if_exists=True, **common)
    with pytest.raises(ConflictError) as conflict:
        client.tune("grow", objective, space, max_trial_count=4, resume_policy="LongRunning",
                    **common)
    assert conflict.value.__cause__ is None and conflict.value.__context__ is None


def test_progress_is_shown_in_a_terminal_and_can_be_silenced(tmp_path: Path) -> None:
    code, screen, _ = run_script(tmp_path, "3", terminal=True)
    assert code == 0, screen
    assert "default/twice: running" in screen
    for done in (1, 2, 3):
        assert re.search(rf"\[{done}/3\] twice-\w{{8}} Succeeded\s+loss=[0-9.e-]+\s+x=", screen)
    assert "best loss=" in screen
    assert re.search(r"default/twice: Succeeded \(Experiment has succeeded because max trial "
                     r"count 3 has been reached\)", screen)
    assert re.search(r"best trial twice-\w{8}: loss=", screen)
    code, screen, _ = run_script(tmp_path, "5", "--load", "--quiet", terminal=True)
    # show_progress=False: only what the script prints itself (and the refusal).
    assert "[1/" not in screen and "running" not in screen


def test_progress_is_shown_in_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    class Kernel:
        config = {"IPKernelApp": {"connection_file": "kernel.json"}}

    # Whatever logging other code set up: here nobody listens to the katib.sdk logger.
    quiet = logging.getLogger("katib.sdk.progress-test")
    quiet.propagate = False
    monkeypatch.setattr(_progress, "logger", quiet)
    fake = types.ModuleType("IPython")
    fake.get_ipython = Kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # noqa: SIM115 - not a terminal
    assert _progress.in_notebook()
    assert _progress.wanted(None) is True
    assert _progress.wanted(False) is False
    monkeypatch.delitem(sys.modules, "IPython")
    assert not _progress.in_notebook() and _progress.wanted(None) is False


def test_failed_trials_explain_themselves_in_the_progress(
    client: KatibClient, capsys: pytest.CaptureFixture[str]
) -> None:
    def objective(parameters: dict[str, Any]) -> float:
        raise ValueError(f"cannot use x={parameters['x']:.3f}")

    client.tune("broken", objective, {"x": search.double(0, 1)}, objective_metric_name="loss",
                max_trial_count=2, max_failed_trial_count=0, show_progress=True)
    err = capsys.readouterr().err
    assert "default/broken: Failed" in err
    assert re.search(r"trial broken-\w{8} Failed: exited with code 1", err)
    assert "| ValueError: cannot use x=" in err
    assert "get_job_logs(" in err


def test_optimal_hyperparameters_typed_and_the_trials_dataframe(client: KatibClient) -> None:
    def objective(parameters: dict[str, Any]) -> dict[str, float]:
        return {"loss": parameters["lr"] * parameters["layers"], "size": 2.0}

    client.tune(
        "typed", objective,
        {"lr": search.double(0.01, 0.1), "layers": search.int(1, 4),
         "opt": search.categorical(["sgd", "adam"]), "epochs": 3},
        objective_metric_name="loss", objective_type="minimize",
        additional_metric_names=["size"], max_trial_count=4, show_progress=False,
    )
    best = client.get_optimal_hyperparameters("typed")
    assert best is not None
    assert set(best.parameters) == set(best.typed_parameters) == {"lr", "layers", "opt"}
    assert best.typed_parameters["lr"] == float(best.parameters["lr"])
    assert isinstance(best.typed_parameters["layers"], int)
    assert best.typed_parameters["layers"] == int(best.parameters["layers"])
    assert best.typed_parameters["opt"] in ("sgd", "adam")
    frame = client.get_trials_dataframe("typed")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 4
    assert list(frame.columns) == [
        "name", "state", "value", "params_lr", "params_layers", "params_opt", "metrics_loss",
        "metrics_size", "datetime_start", "datetime_complete", "duration", "reason", "message",
        "exit_code",
    ]
    assert (frame["state"] == "Succeeded").all()
    assert frame["params_layers"].dtype.kind == "i" and frame["params_lr"].dtype.kind == "f"
    assert (frame["value"] == frame["params_lr"] * frame["params_layers"]).all()
    assert (frame["metrics_size"] == 2.0).all()
    assert str(frame["datetime_start"].dtype).startswith("datetime64")
    assert (frame["duration"] > pd.Timedelta(0)).all()
    assert frame.loc[frame["value"].idxmin(), "name"] == best.best_trial_name


def test_the_dataframe_says_how_to_get_pandas(
    client: KatibClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas"):
        client.get_trials_dataframe("anything")


def test_through_a_server_tune_twice_and_progress(
    live_server: LiveServer, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = KatibClient(live_server.url, live_server.admin)

    def quadratic(parameters: dict[str, Any]) -> float:
        return (parameters["x"] - 0.5) ** 2

    try:
        remote.tune("far", quadratic, {"x": search.double(0, 1)}, objective_metric_name="loss",
                    objective_type="minimize", max_trial_count=2, show_progress=True)
        err = capsys.readouterr().err
        assert "[2/2] far-" in err and "default/far: Succeeded" in err
        with pytest.raises(ConflictError, match="load_if_exists=True"):
            remote.tune("far", quadratic, {"x": search.double(0, 1)},
                        objective_metric_name="loss", objective_type="minimize",
                        max_trial_count=2)
        again = remote.tune("far", quadratic, {"x": search.double(0, 1)},
                            objective_metric_name="loss", objective_type="minimize",
                            max_trial_count=2, load_if_exists=True)
        assert again["status"]["trials"] == 2
        best = remote.get_optimal_hyperparameters("far")
        assert best is not None and isinstance(best.typed_parameters["x"], float)
        with pytest.raises(ConflictError, match="resumePolicy Never"):
            remote.edit_experiment_budget("far", max_trial_count=5)
    finally:
        remote.close()
