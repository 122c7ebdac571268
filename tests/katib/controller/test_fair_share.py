"""Fair sharing: an admin's limit of running trials per namespace holds across experiments."""

from __future__ import annotations

import copy
from pathlib import Path

from katib.controller import ControllerLoop, FixedExperiments, admit
from katib.records import ExperimentCondition, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.controller.test_loop import FakeLauncher, Play, experiment


def test_a_namespace_limit_caps_running_trials_over_all_its_experiments(tmp_path: Path) -> None:
    storage = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    storage.set_namespace_limit("team", 3)
    records = [
        admit(storage, parse_experiment(copy.deepcopy(experiment(name, maxTrialCount=6,
                                                                 parallelTrialCount=3))),
              source_dir=str(tmp_path))
        for name in ("a", "b", "c")
    ]

    def finish_oldest(fake: FakeLauncher) -> None:
        # Trials run until three are in the air, then the oldest ends; the rest at the end.
        if len(fake.launches) == 18:
            for trial in list(fake.running):
                fake.finish(trial, {"loss": 1.0})
        elif len(fake.running) >= 3:
            fake.finish(next(iter(fake.running)), {"loss": 1.0})

    launcher = FakeLauncher(lambda launch: Play(ending=None), on_launch=finish_oldest)
    loop = ControllerLoop(
        storage, launcher, logs_root=tmp_path / "logs", source=FixedExperiments(records)
    )
    loop.run(handle_signals=False)
    assert launcher.most_at_once == 3  # not 3 experiments × parallelTrialCount 3 = 9
    for record in records:
        done = storage.get_experiment_by_id(record.id)
        assert done.condition == ExperimentCondition.SUCCEEDED
        assert [t.state for t in storage.list_trials(done.id)] == [TrialState.SUCCEEDED] * 6
    [team] = storage.list_namespaces(["team"])
    assert (team.max_running_trials, team.running_trials) == (3, 0)
    storage.set_namespace_limit("team", None)
    assert storage.namespace_limits() == ({}, {})
    storage.close()
