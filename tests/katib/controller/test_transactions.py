"""The controller's storage cost per trial: at most two transactions, whatever the history.

A trial that runs and ends costs its row (stored Running, with the algorithm state of the
batch that produced it, before the workload starts) and its end (with its last metric
points, its event and a new optimal trial). Counted on the database connection itself, as
the difference between two runs of different lengths, so that the fixed cost of starting
and completing an experiment drops out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from katib.records import ExperimentCondition, TrialState
from katib.storage import Storage
from tests.katib.controller.test_loop import FakeLauncher, Play, experiment, run_loop, trials
from trial_runner import Ending, EventSink, Observation, TrialEnded, TrialLaunch, TrialStarted

#: Transactions a trial may cost on the controller's hot path.
MOST_PER_TRIAL = 2


class QuickTrials(FakeLauncher):
    """Trials that end at once with their metric, as a short process trial does: the
    launcher hands its points over with its end (one event)."""

    def __init__(self) -> None:
        super().__init__(lambda launch: Play())

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        self.launches.append(launch)
        sink(TrialStarted(launch.trial, 1000.0, pid=None))
        loss = Observation("loss", float(launch.assignments["x"]), None, None)
        sink(TrialEnded(launch.trial, Ending.COMPLETED, "done", 0, observations=[loss]))


class Transactions:
    """Counts committed transactions on an engine, and those among them that wrote."""

    def __init__(self, storage: Storage) -> None:
        self.all = 0
        self.writes = 0
        engine = storage.engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            conn.info["katib_wrote"] = True

    def _commit(self, conn: Any) -> None:
        self.all += 1
        if conn.info.pop("katib_wrote", False):
            self.writes += 1


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Storage, Transactions]]:
    storage = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    yield storage, Transactions(storage)
    storage.close()


def run(storage: Storage, tmp_path: Path, n: int, name: str, **spec: Any) -> None:
    doc = experiment(name, maxTrialCount=n, **spec)
    _, record = run_loop(storage, QuickTrials(), doc, tmp_path)
    assert record.condition == ExperimentCondition.SUCCEEDED
    assert [t.state for t in trials(storage, record)] == [TrialState.SUCCEEDED] * n


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_trial_costs_at_most_two_transactions(
    counted: tuple[Storage, Transactions], tmp_path: Path, parallel: int
) -> None:
    storage, seen = counted
    costs = []
    for n, name in ((6, "short"), (36, "long")):
        before = (seen.all, seen.writes)
        run(storage, tmp_path, n, f"{name}-{parallel}", parallelTrialCount=parallel)
        costs.append((seen.all - before[0], seen.writes - before[1]))
    per_trial_all = (costs[1][0] - costs[0][0]) / 30
    per_trial_writes = (costs[1][1] - costs[0][1]) / 30
    assert per_trial_writes <= MOST_PER_TRIAL, costs
    assert per_trial_all <= MOST_PER_TRIAL, costs


def test_the_cost_per_trial_does_not_grow_with_the_history(
    counted: tuple[Storage, Transactions], tmp_path: Path
) -> None:
    storage, seen = counted
    per_trial = []
    for n, name in ((10, "a"), (40, "b"), (160, "c")):
        before = seen.all
        run(storage, tmp_path, n, name, parallelTrialCount=1)
        per_trial.append((seen.all - before) / n)
    # The fixed cost of an experiment is spread over more trials: never more per trial.
    assert per_trial[2] <= per_trial[1] <= per_trial[0], per_trial
