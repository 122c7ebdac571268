"""Early-stopping rules driven by the controller loop: whole histories, parallel trials,
and the history of finished trials read back from storage when a run starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from katib.controller import ControllerLoop, FixedExperiments
from katib.records import ExperimentCondition, TrialState
from katib.service import restart_experiment
from katib.storage import Storage
from tests.katib.controller.test_loop import (
    FakeLauncher,
    Play,
    experiment,
    run_loop,
    trials,
)
from trial_runner import KillReason, TrialLaunch


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    yield s
    s.close()


def asha_doc(max_trials: int, parallel: int = 1) -> dict[str, object]:
    return experiment(
        maxTrialCount=max_trials,
        parallelTrialCount=parallel,
        resumePolicy="LongRunning",
        earlyStopping={
            "algorithmName": "asha",
            "algorithmSettings": [{"name": "reduction_factor", "value": "3"}],
        },
    )


def test_asha_stops_a_trial_behind_the_rung_with_its_whole_history(
    storage: Storage, tmp_path: Path
) -> None:
    def script(launch: TrialLaunch) -> Play:
        if len(launcher.launches) <= 3:  # three good trials pass rungs 0, 1 and 2
            return Play(metrics=[{"loss": 1.0 / len(launcher.launches)}] * 9)
        return Play(metrics=[{"loss": 9.0}] * 9, ending=None)  # bad, would run forever

    launcher = FakeLauncher(script)
    _, record = run_loop(storage, launcher, asha_doc(4), tmp_path)
    stored = trials(storage, record)
    assert [t.state for t in stored] == [TrialState.SUCCEEDED] * 3 + [TrialState.EARLY_STOPPED]
    assert launcher.kills == [(stored[3].name, KillReason.EARLY_STOPPED)]
    # Judged at the first rung (1 report), against four values there: only the best goes on.
    assert stored[3].message == (
        "loss greater than 0.333333 (the top 1/3 of 4 trials at rung 0) after 1 reports"
    )
    assert record.condition == ExperimentCondition.SUCCEEDED


def test_asha_with_parallel_trials_judges_each_on_arrival(
    storage: Storage, tmp_path: Path
) -> None:
    # Three trials at once, reporting one value per event and running until stopped; each
    # trial's loss is its launch order, so every later one is behind the first at rung 0.
    def script(launch: TrialLaunch) -> Play:
        return Play(metrics=[{"loss": float(len(launcher.launches))}] * 9, ending=None)

    def finish_first(launcher: FakeLauncher) -> None:  # so that the experiment can end
        first = launcher.launches[0].trial
        if len(launcher.launches) == 4 and first in launcher.running:
            launcher.finish(first, {"loss": 1.0})

    launcher = FakeLauncher(script, on_launch=finish_first)
    _, record = run_loop(storage, launcher, asha_doc(4, parallel=3), tmp_path)
    stored = trials(storage, record)
    states = [t.state for t in stored]
    assert states[0] == TrialState.SUCCEEDED
    assert states[1:] == [TrialState.EARLY_STOPPED] * 3
    assert launcher.most_at_once >= 2
    for trial in stored[1:]:
        assert "at rung 0) after 1 reports" in trial.message


def test_a_restarted_run_feeds_the_rule_the_stored_histories(
    storage: Storage, tmp_path: Path
) -> None:
    good = FakeLauncher(lambda launch: Play(metrics=[{"loss": 1.0}] * 9))
    _, record = run_loop(storage, good, asha_doc(3), tmp_path)
    assert [t.state for t in trials(storage, record)] == [TrialState.SUCCEEDED] * 3

    record = restart_experiment(storage, record, max_trial_count=4)
    bad = FakeLauncher(lambda launch: Play(metrics=[{"loss": 9.0}] * 9, ending=None))
    loop = ControllerLoop(
        storage, bad, logs_root=tmp_path / "logs", source=FixedExperiments([record])
    )
    loop.run(handle_signals=False)
    stored = trials(storage, record)
    # Only the rungs recorded from the first run's stored observations can stop it.
    assert stored[3].state == TrialState.EARLY_STOPPED
    assert "of 4 trials at rung 0" in stored[3].message


def test_the_threshold_rule_needs_no_other_trial(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(lambda launch: Play(metrics=[{"loss": 50.0}] * 3, ending=None))
    doc = experiment(
        maxTrialCount=2,
        parallelTrialCount=2,
        earlyStopping={
            "algorithmName": "threshold",
            "algorithmSettings": [
                {"name": "threshold", "value": "10"},
                {"name": "start_step", "value": "2"},
            ],
        },
    )
    _, record = run_loop(storage, launcher, doc, tmp_path)
    stored = trials(storage, record)
    assert [t.state for t in stored] == [TrialState.EARLY_STOPPED] * 2
    assert stored[0].message == "loss greater than 10 (the threshold) after 2 reports"
