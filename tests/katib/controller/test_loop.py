"""The controller loop with an in-memory launcher: no processes, no sleeps.

A :class:`FakeLauncher` plays each trial from a script (metrics to report, then how it ends,
or "run until killed"), sending the events a real launcher would. It proves the point of the
launch boundary: a launcher the controller has never seen plugs in without a change to it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from katib.controller import (
    ControllerLoop,
    FixedExperiments,
    RunObserver,
    UnfinishedExperiments,
    admit,
    live_owner,
    new_owner_id,
)
from katib.records import (
    REASON_INTERRUPTED,
    ExperimentCondition,
    TrialRecord,
    TrialState,
)
from katib.spec import parse_experiment
from katib.storage import Storage
from trial_runner import (
    Ending,
    EventSink,
    KillReason,
    Launcher,
    MetricsReported,
    Observation,
    TrialEnded,
    TrialLaunch,
    TrialStarted,
)

# --- a launcher that plays scripts ----------------------------------------------------------


@dataclass
class Play:
    """What one launch of a trial does: report these values, then end (or run on)."""

    metrics: list[dict[str, float]] = field(default_factory=list)
    ending: Ending | None = Ending.COMPLETED  # None: runs until killed
    exit_code: int | None = 0
    message: str = ""
    reason: str = ""


Script = Callable[[TrialLaunch], Play]


class FakeLauncher(Launcher):
    """Runs nothing: each launch sends TrialStarted, the script's metrics and its end."""

    def __init__(self, script: Script, *, on_launch: Callable[[FakeLauncher], None] | None = None):
        self.script = script
        self.on_launch = on_launch
        self.launches: list[TrialLaunch] = []
        self.running: dict[str, EventSink] = {}
        self.kills: list[tuple[str, KillReason]] = []
        self.cleaned: list[tuple[str, int | None]] = []
        self.most_at_once = 0

    def launch(self, launch: TrialLaunch, sink: EventSink) -> None:
        self.launches.append(launch)
        play = self.script(launch)
        sink(TrialStarted(launch.trial, 1000.0 + len(self.launches), pid=None))
        for values in play.metrics:
            observations = [Observation(k, v, None, None) for k, v in values.items()]
            sink(MetricsReported(launch.trial, observations))
        if play.ending is None:
            self.running[launch.trial] = sink
            self.most_at_once = max(self.most_at_once, len(self.running))
        else:
            sink(
                TrialEnded(
                    launch.trial,
                    play.ending,
                    play.message or f"ended: {play.ending.value}",
                    exit_code=play.exit_code,
                    reason=play.reason,
                )
            )
        if self.on_launch is not None:
            self.on_launch(self)

    def finish(self, trial: str, values: dict[str, float]) -> None:
        """End a trial that runs until killed, as if it completed with these last values."""
        sink = self.running.pop(trial)
        observations = [Observation(k, v, None, None) for k, v in values.items()]
        sink(TrialEnded(trial, Ending.COMPLETED, "done", 0, observations=observations))

    def kill(self, trial: str, reason: KillReason, message: str = "") -> None:
        self.kills.append((trial, reason))
        sink = self.running.pop(trial, None)
        if sink is not None:
            sink(TrialEnded(trial, Ending.KILLED, message or "killed", kill_reason=reason))

    def kill_all(self, reason: KillReason, *, wait: float = 5.0) -> None:
        for trial in list(self.running):
            self.kill(trial, reason)

    def clean_up(self, trial: str, pid: int | None, started_at: float | None) -> None:
        self.cleaned.append((trial, pid))


def completes(loss: Callable[[TrialLaunch], float]) -> Script:
    return lambda launch: Play(metrics=[{"loss": loss(launch)}])


def x_of(launch: TrialLaunch) -> float:
    return float(launch.assignments["x"])


# --- experiments ----------------------------------------------------------------------------


def experiment(name: str = "exp", **spec: Any) -> dict[str, Any]:
    job_spec = spec.pop("job_spec", {})
    body: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {
            "algorithmName": "random",
            "algorithmSettings": [{"name": "random_state", "value": "7"}],
        },
        "parallelTrialCount": 2,
        "maxTrialCount": 4,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "10"}}
        ],
        "trialTemplate": {
            "primaryContainerName": "main",
            "trialParameters": [{"name": "x", "reference": "x"}],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    **job_spec,
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "trainer:1",
                                    "command": ["python3", "train.py", "--x=${trialParameters.x}"],
                                }
                            ],
                            "restartPolicy": "Never",
                        }
                    },
                },
            },
        },
    }
    body.update(spec)
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": "team"},
        "spec": body,
    }


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    yield s
    s.close()


class Seen(RunObserver):
    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []

    def trial_started(self, run: Any, trial: TrialRecord) -> None:
        self.started.append(trial.name)

    def trial_finished(self, run: Any, trial: TrialRecord) -> None:
        self.finished.append(trial.name)


def run_loop(
    storage: Storage,
    launcher: Launcher,
    doc: dict[str, Any],
    tmp_path: Path,
    observer: RunObserver | None = None,
) -> tuple[ControllerLoop, Any]:
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    loop = ControllerLoop(
        storage,
        launcher,
        logs_root=tmp_path / "logs",
        source=FixedExperiments([record]),
        observer=observer,
    )
    loop.run(handle_signals=False)
    return loop, storage.get_experiment_by_id(record.id)


def trials(storage: Storage, record: Any) -> list[TrialRecord]:
    return storage.list_trials(record.id)


# --- launching ------------------------------------------------------------------------------


def test_trials_are_launched_with_the_rendered_workload_and_end_succeeded(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(completes(x_of))
    seen = Seen()
    _, record = run_loop(storage, launcher, experiment(), tmp_path, seen)

    assert record.condition == ExperimentCondition.SUCCEEDED
    assert record.conditions[-1].reason == "ExperimentMaxTrialsReached"
    stored = trials(storage, record)
    assert [t.state for t in stored] == [TrialState.SUCCEEDED] * 4
    assert len(launcher.launches) == 4
    for launch, trial in zip(launcher.launches, stored, strict=True):
        assert launch.trial == trial.name and launch.namespace == "team"
        assert launch.primary_container == "main"
        container = launch.manifest["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][-1] == f"--x={trial.assignments['x']}"
        assert launch.manifest["metadata"]["name"] == trial.name
        assert launch.log_path == tmp_path / "logs" / "team" / "exp" / f"{trial.name}.log"
        assert launch.collection.metric_names == ("loss",)
        assert launch.source_dir == str(tmp_path) and launch.attempt == 0
        assert trial.objective == float(trial.assignments["x"])
        assert trial.started_at is not None and trial.completed_at is not None
    assert seen.started == [t.name for t in stored]
    assert sorted(seen.finished) == sorted(t.name for t in stored)


def test_no_more_than_parallel_trial_count_run_at_once(storage: Storage, tmp_path: Path) -> None:
    def keep_two_running(fake: FakeLauncher) -> None:
        # Trials run until two are in the air; then the oldest ends. The last ones end
        # once all six were launched.
        if len(fake.launches) == 6:
            for trial in list(fake.running):
                fake.finish(trial, {"loss": 2.0})
        elif len(fake.running) == 2:
            fake.finish(next(iter(fake.running)), {"loss": 1.0})

    launcher = FakeLauncher(lambda launch: Play(ending=None), on_launch=keep_two_running)
    _, record = run_loop(storage, launcher, experiment(maxTrialCount=6), tmp_path)
    assert launcher.most_at_once == 2
    assert [t.state for t in trials(storage, record)] == [TrialState.SUCCEEDED] * 6


# --- metrics and the best trial -------------------------------------------------------------


def test_observations_are_stored_and_reduced_by_the_metric_strategy(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(
        lambda launch: Play(metrics=[{"loss": 5.0, "acc": 0.1}, {"loss": 2.0}, {"loss": 3.0}])
    )
    doc = experiment(maxTrialCount=1, parallelTrialCount=1)
    doc["spec"]["objective"]["additionalMetricNames"] = ["acc"]
    _, record = run_loop(storage, launcher, doc, tmp_path)
    [trial] = trials(storage, record)
    assert trial.objective == 2.0  # min when minimizing
    assert (trial.metrics["loss"].min, trial.metrics["loss"].latest) == (2.0, 3.0)
    points = storage.get_observations(trial.id, "loss")
    assert [p.value for p in points] == [5.0, 2.0, 3.0]
    assert record.optimal_trial_name == trial.name


def test_the_best_trial_is_recorded_as_it_changes(storage: Storage, tmp_path: Path) -> None:
    losses = iter([3.0, 1.0, 2.0, 1.0])
    launcher = FakeLauncher(lambda launch: Play(metrics=[{"loss": next(losses)}]))
    _, record = run_loop(storage, launcher, experiment(parallelTrialCount=1), tmp_path)
    stored = trials(storage, record)
    # The earliest of equal values stays the best.
    assert record.optimal_trial_name == stored[1].name
    events = [e for e in storage.list_events(record.id) if e.reason == "NewOptimalTrial"]
    assert [e.trial_name for e in events] == [stored[0].name, stored[1].name]


def test_a_trial_that_never_reports_the_objective_is_metrics_unavailable(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(lambda launch: Play(metrics=[{"other": 1.0}]))
    doc = experiment(maxTrialCount=2, maxFailedTrialCount=2)
    _, record = run_loop(storage, launcher, doc, tmp_path)
    stored = trials(storage, record)
    assert {t.state for t in stored} == {TrialState.METRICS_UNAVAILABLE}
    assert "objective metric loss was never reported" in stored[0].message
    assert record.condition == ExperimentCondition.FAILED


# --- ends: failures, retries, deadlines -----------------------------------------------------


def test_a_failed_trial_is_retried_up_to_the_jobs_backoff_limit(
    storage: Storage, tmp_path: Path
) -> None:
    attempts: dict[str, int] = {}

    def flaky(launch: TrialLaunch) -> Play:
        attempts[launch.trial] = attempts.get(launch.trial, 0) + 1
        if launch.attempt < 2:
            return Play(ending=Ending.FAILED, exit_code=1, message="exited with code 1")
        return Play(metrics=[{"loss": 1.0}])

    launcher = FakeLauncher(flaky)
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, job_spec={"backoffLimit": 2})
    _, record = run_loop(storage, launcher, doc, tmp_path)
    [trial] = trials(storage, record)
    assert trial.state == TrialState.SUCCEEDED
    assert [launch.attempt for launch in launcher.launches] == [0, 1, 2]
    assert attempts == {trial.name: 3}


def test_a_trial_failing_every_retry_fails_saying_how_often(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(
        lambda launch: Play(ending=Ending.FAILED, exit_code=3, message="exited with code 3")
    )
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, job_spec={"backoffLimit": 1})
    _, record = run_loop(storage, launcher, doc, tmp_path)
    [trial] = trials(storage, record)
    assert trial.state == TrialState.FAILED and trial.reason == "Error"
    assert trial.exit_code == 3
    assert trial.message == "exited with code 3 (failed 2 times; backoffLimit 1)"
    assert len(launcher.launches) == 2
    assert record.condition == ExperimentCondition.SUCCEEDED  # no maxFailedTrialCount


def test_a_deadline_fails_the_trial_without_a_retry(storage: Storage, tmp_path: Path) -> None:
    launcher = FakeLauncher(
        lambda launch: Play(ending=Ending.DEADLINE_EXCEEDED, exit_code=-15, message="too slow")
    )
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, job_spec={"backoffLimit": 3})
    _, record = run_loop(storage, launcher, doc, tmp_path)
    [trial] = trials(storage, record)
    assert (trial.state, trial.reason, trial.message) == (
        TrialState.FAILED, "DeadlineExceeded", "too slow")
    assert len(launcher.launches) == 1


def test_a_launcher_that_retries_itself_is_not_retried_again(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(lambda launch: Play(ending=Ending.FAILED, exit_code=1))
    launcher.retries_failures = True  # a cluster's Job controller honours backoffLimit
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, job_spec={"backoffLimit": 3})
    _, record = run_loop(storage, launcher, doc, tmp_path)
    assert len(launcher.launches) == 1
    assert trials(storage, record)[0].state == TrialState.FAILED


def test_a_trial_that_cannot_start_fails_with_the_launchers_reason(
    storage: Storage, tmp_path: Path
) -> None:
    launcher = FakeLauncher(
        lambda launch: Play(
            ending=Ending.NOT_STARTED, exit_code=None, reason="InsufficientResources",
            message="the trial asks for 2 nvidia.com/gpu but this machine has 0",
        )
    )
    doc = experiment(maxTrialCount=1, parallelTrialCount=1, maxFailedTrialCount=0)
    _, record = run_loop(storage, launcher, doc, tmp_path)
    [trial] = trials(storage, record)
    assert (trial.state, trial.reason) == (TrialState.FAILED, "InsufficientResources")
    assert record.condition == ExperimentCondition.FAILED
    assert record.conditions[-1].reason == "ExperimentMaxFailedTrialsReached"


# --- early stopping -------------------------------------------------------------------------


def test_early_stopping_kills_a_trial_behind_the_median(storage: Storage, tmp_path: Path) -> None:
    def script(launch: TrialLaunch) -> Play:
        if len(launcher.launches) <= 2:  # two good trials set the median
            return Play(metrics=[{"loss": 1.0}] * 3)
        return Play(metrics=[{"loss": 9.0}] * 3, ending=None)  # bad, and would run forever

    launcher = FakeLauncher(script)
    doc = experiment(
        maxTrialCount=3,
        parallelTrialCount=1,
        earlyStopping={
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"},
                {"name": "start_step", "value": "2"},
            ],
        },
    )
    _, record = run_loop(storage, launcher, doc, tmp_path)
    stored = trials(storage, record)
    assert [t.state for t in stored] == [
        TrialState.SUCCEEDED, TrialState.SUCCEEDED, TrialState.EARLY_STOPPED]
    assert launcher.kills == [(stored[2].name, KillReason.EARLY_STOPPED)]
    assert "median of completed trials" in stored[2].message
    assert record.condition == ExperimentCondition.SUCCEEDED


# --- the end of an experiment ---------------------------------------------------------------


def test_reaching_the_goal_kills_the_running_trials_and_succeeds(
    storage: Storage, tmp_path: Path
) -> None:
    def script(launch: TrialLaunch) -> Play:
        if len(launcher.launches) == 1:
            return Play(ending=None)  # still running when the goal is reached
        return Play(metrics=[{"loss": 0.01}])

    launcher = FakeLauncher(script)
    doc = experiment(maxTrialCount=10, parallelTrialCount=2)
    doc["spec"]["objective"]["goal"] = 0.1
    _, record = run_loop(storage, launcher, doc, tmp_path)
    assert record.condition == ExperimentCondition.SUCCEEDED
    assert record.conditions[-1].reason == "ExperimentGoalReached"
    states = {t.name: t.state for t in trials(storage, record)}
    first = launcher.launches[0].trial
    assert states[first] == TrialState.KILLED
    assert (first, KillReason.EXPERIMENT_DONE) in launcher.kills
    assert not any(t.state.is_active for t in trials(storage, record))


def test_an_error_in_the_launcher_fails_only_that_experiment(
    storage: Storage, tmp_path: Path
) -> None:
    def broken(launch: TrialLaunch) -> Play:
        raise RuntimeError("the launcher broke")

    _, record = run_loop(storage, FakeLauncher(broken), experiment(), tmp_path)
    assert record.condition == ExperimentCondition.FAILED
    assert record.conditions[-1].reason == "ControllerError"
    assert "the launcher broke" in record.message
    assert record.owner is None


# --- interrupt and resume -------------------------------------------------------------------


def test_stop_interrupts_trials_and_a_new_loop_resumes_them(
    storage: Storage, tmp_path: Path
) -> None:
    doc = experiment(maxTrialCount=4, parallelTrialCount=2)
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    loop: ControllerLoop | None = None

    def stop_when_two_run(fake: FakeLauncher) -> None:
        if len(fake.running) == 2:
            assert loop is not None
            loop.stop()

    first = FakeLauncher(lambda launch: Play(ending=None), on_launch=stop_when_two_run)
    loop = ControllerLoop(
        storage, first, logs_root=tmp_path / "logs", source=FixedExperiments([record])
    )
    loop.run(handle_signals=False)

    stopped = storage.get_experiment_by_id(record.id)
    assert stopped.condition == ExperimentCondition.RUNNING
    assert stopped.message.startswith("Interrupted")
    assert stopped.owner is None
    interrupted = trials(storage, stopped)
    assert [(t.state, t.reason) for t in interrupted] == [
        (TrialState.KILLED, REASON_INTERRUPTED)] * 2
    assert {reason for _, reason in first.kills} == {KillReason.INTERRUPTED}

    second = FakeLauncher(completes(x_of))
    loop = ControllerLoop(
        storage, second, logs_root=tmp_path / "logs", source=FixedExperiments([stopped])
    )
    loop.run(handle_signals=False)
    done = storage.get_experiment_by_id(record.id)
    assert done.condition == ExperimentCondition.SUCCEEDED
    final = trials(storage, done)
    # The interrupted trials ran again with their parameters and did not count twice.
    assert [t.name for t in final[:2]] == [t.name for t in interrupted]
    assert [t.assignments for t in final[:2]] == [t.assignments for t in interrupted]
    assert [launch.trial for launch in second.launches[:2]] == [t.name for t in interrupted]
    assert len(final) == 4 and all(t.state == TrialState.SUCCEEDED for t in final)


def test_a_dead_controllers_running_trials_are_cleaned_up_and_run_again(
    storage: Storage, tmp_path: Path
) -> None:
    doc = experiment(maxTrialCount=2, parallelTrialCount=2)
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    # What a controller killed with SIGKILL leaves: trials Running, an owner that is gone.
    left = [storage.create_trial(record, {"x": str(v)}) for v in (1.0, 2.0)]
    for i, trial in enumerate(left):
        storage.start_trial(trial.id, started_at=100.0, pid=4_000_000 + i)
    gone = "elsewhere:1:dead"
    assert storage.claim(record.id, gone, expected=None)
    stale = storage.get_experiment_by_id(record.id)
    storage.release(record.id, gone)  # its heartbeat expired; the claim is free again
    stale = storage.get_experiment_by_id(record.id)

    launcher = FakeLauncher(completes(x_of))
    loop = ControllerLoop(
        storage, launcher, logs_root=tmp_path / "logs", source=FixedExperiments([stale])
    )
    loop.run(handle_signals=False)
    assert sorted(c for c in launcher.cleaned if c[1] is not None) == sorted(
        (t.name, 4_000_000 + i) for i, t in enumerate(left))
    final = trials(storage, stale)
    assert [t.name for t in final] == [t.name for t in left]
    assert [t.state for t in final] == [TrialState.SUCCEEDED] * 2


def test_a_second_loop_cannot_take_a_driven_experiment(storage: Storage, tmp_path: Path) -> None:
    doc = experiment()
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    other = new_owner_id()
    assert storage.claim(record.id, other, expected=None)
    loop = ControllerLoop(
        storage,
        FakeLauncher(completes(x_of)),
        logs_root=tmp_path / "logs",
        source=FixedExperiments([record]),  # the record still says it is free
    )
    from katib.errors import ConflictError

    with pytest.raises(ConflictError, match="being run by another"):
        loop.run(handle_signals=False)


def test_a_scan_never_takes_an_experiment_claimed_after_it_looked(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two servers scan at once: one saw the experiment free, then the other claimed it and
    # launched its first trials before the first read the record. Taking it from the live
    # owner would stop that owner's running trials and run them a second time.
    record = admit(storage, parse_experiment(experiment()), source_dir=str(tmp_path))
    with live_owner() as other:
        assert storage.claim(record.id, other, expected=None)
        running = storage.create_trials(
            record, [({"x": "1.0"}, {}), ({"x": "2.0"}, {})], started_at=100.0
        )
        monkeypatch.setattr(storage, "unfinished_experiments", lambda: [(record.id, None, None)])
        launcher = FakeLauncher(completes(x_of))
        loop = ControllerLoop(
            storage, launcher, logs_root=tmp_path / "logs", source=UnfinishedExperiments(storage)
        )
        assert loop.start_experiments() == []
        assert launcher.cleaned == [] and launcher.launches == []
        assert storage.get_experiment_by_id(record.id).owner == other
        assert [t.state for t in trials(storage, record)] == [TrialState.RUNNING] * 2
        assert [t.name for t in trials(storage, record)] == [t.name for t in running]


def test_a_start_that_fails_after_its_claim_releases_the_experiment(
    storage: Storage, tmp_path: Path
) -> None:
    # The dead owner's trial ends while the new controller recovers it (a user's kill):
    # resetting it is refused. The experiment must not stay claimed by a controller that
    # does not drive it, or it never finishes.
    from katib.records import TrialResult

    record = admit(storage, parse_experiment(experiment()), source_dir=str(tmp_path))
    gone = new_owner_id()  # of this process, never registered: not alive
    assert storage.claim(record.id, gone, expected=None)
    [left] = storage.create_trials(record, [({"x": "1.0"}, {})], started_at=100.0)

    class EndsWhileCleaned(FakeLauncher):
        def clean_up(self, trial: str, pid: int | None, started_at: float | None) -> None:
            super().clean_up(trial, pid, started_at)
            if len(self.cleaned) == 1:
                storage.finish_trial(
                    left.id, TrialResult(TrialState.KILLED, "KilledByUser", "killed", 200.0)
                )

    launcher = EndsWhileCleaned(completes(x_of))
    loop = ControllerLoop(
        storage, launcher, logs_root=tmp_path / "logs", source=UnfinishedExperiments(storage)
    )
    assert loop.start_experiments() == []
    assert storage.get_experiment_by_id(record.id).owner is None
    # The next scan takes it and drives it.
    [run] = loop.start_experiments()
    assert run.record.id == record.id and not run.done


# --- the database goes away -----------------------------------------------------------------


def test_writes_that_meet_an_unavailable_database_are_retried_in_order(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from katib.storage import StorageError

    outage = {"left": 0}

    def flaky(method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if outage["left"] > 0:
                outage["left"] -= 1
                raise StorageError("database error: connection refused")
            return method(*args, **kwargs)

        return call

    for name in ("start_trial", "finish_trial", "add_observations", "create_trials"):
        monkeypatch.setattr(storage, name, flaky(getattr(storage, name)))

    def script(launch: TrialLaunch) -> Play:
        # The database is away while this trial reports and ends: 6 writes fail in a row.
        if len(launcher.launches) == 2:
            outage["left"] = 6
        return Play(metrics=[{"loss": 3.0}, {"loss": x_of(launch)}])

    launcher = FakeLauncher(script)
    doc = experiment(maxTrialCount=4, parallelTrialCount=1)
    record = admit(storage, parse_experiment(copy.deepcopy(doc)), source_dir=str(tmp_path))
    loop = ControllerLoop(
        storage, launcher, logs_root=tmp_path / "logs", source=FixedExperiments([record])
    )
    loop.retry_interval = 0.0
    loop.run(handle_signals=False)
    done = storage.get_experiment_by_id(record.id)
    assert done.condition == ExperimentCondition.SUCCEEDED
    stored = trials(storage, done)
    assert [t.state for t in stored] == [TrialState.SUCCEEDED] * 4
    for trial in stored:
        # Every point once, in order: nothing lost, nothing stored twice.
        values = [p.value for p in storage.get_observations(trial.id, "loss")]
        assert values == [3.0, float(trial.assignments["x"])]
        assert trial.objective == min(values)
    assert outage["left"] == 0
