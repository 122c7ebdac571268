"""Storage on SQLite and PostgreSQL: the same behaviour on both."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from katib.errors import ConflictError, NotFoundError, TrialFinishedError
from katib.records import (
    REASON_INTERRUPTED,
    ExperimentCondition,
    MetricSummary,
    TrialResult,
    TrialState,
)
from katib.spec import Experiment
from katib.storage import SCHEMA_REVISION, ObservationPoint, Storage


def experiment(name: str = "exp", namespace: str = "default") -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "acc"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 4,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": "0.1", "max": "1"}}],
        },
    }).with_defaults()


@pytest.fixture
def storage(db_url: str) -> Storage:
    s = Storage.open(db_url)
    yield s
    s.close()


def test_schema_revision_matches_newest_migration() -> None:
    versions = Path(__file__).parents[3] / "katib/storage/migrations/versions"
    heads = sorted(p.name.split("_")[0] for p in versions.glob("*.py"))
    assert heads[-1] == SCHEMA_REVISION


def test_migrations_create_every_table(storage: Storage) -> None:
    tables = set(inspect(storage.engine).get_table_names())
    assert {"experiments", "trials", "observation_logs", "algorithm_states", "events",
            "alembic_version"} <= tables


def test_experiment_round_trip(storage: Storage) -> None:
    created = storage.create_experiment(experiment(), source_dir="/tmp/x")
    got = storage.get_experiment("default", "exp")
    assert got.id == created.id
    assert got.condition == ExperimentCondition.CREATED
    assert got.spec.spec.max_trial_count == 4
    assert got.spec.spec.parallel_trial_count == 3  # defaulted
    assert got.source_dir == "/tmp/x"
    assert [c.type for c in got.conditions] == ["Created"]


def test_duplicate_name_conflicts_but_other_namespace_is_fine(storage: Storage) -> None:
    storage.create_experiment(experiment())
    with pytest.raises(ConflictError):
        storage.create_experiment(experiment())
    storage.create_experiment(experiment(namespace="team-a"))
    assert len(storage.list_experiments()) == 2
    assert [e.namespace for e in storage.list_experiments("team-a")] == ["team-a"]


def test_missing_experiment(storage: Storage) -> None:
    with pytest.raises(NotFoundError):
        storage.get_experiment("default", "nope")


def test_trials_observations_and_counts(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    t1 = storage.create_trial(exp, {"lr": "0.5"})
    t2 = storage.create_trial(exp, {"lr": "0.7"})
    assert t1.name.startswith("exp-") and len(t1.name) == len("exp-") + 8
    assert t1.name != t2.name
    storage.add_observations(t1.id, [ObservationPoint("acc", 0.5, 1, 1.0)])
    storage.finish_trial(
        t1.id,
        TrialResult(
            TrialState.SUCCEEDED, "TrialSucceeded", "", 2.0, exit_code=0,
            objective=0.8, metrics={"acc": MetricSummary("acc", 0.5, 0.8, 0.8)},
        ),
        [ObservationPoint("acc", 0.8, 2, 2.0)],
    )
    got = storage.get_trial("default", t1.name)
    assert got.state == TrialState.SUCCEEDED and got.objective == 0.8 and got.exit_code == 0
    assert got.metrics["acc"] == MetricSummary("acc", 0.5, 0.8, 0.8)
    assert [(o.value, o.step) for o in storage.get_observations(t1.id)] == [(0.5, 1), (0.8, 2)]
    assert storage.count_trials(exp.id) == {TrialState.SUCCEEDED: 1, TrialState.CREATED: 1}
    created = storage.list_trials(exp.id, [TrialState.CREATED])
    assert [t.name for t in created] == [t2.name]


def test_reset_trial_forgets_the_run(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    t = storage.create_trial(exp, {"lr": "0.5"})
    storage.finish_trial(
        t.id,
        TrialResult(TrialState.KILLED, REASON_INTERRUPTED, "", 1.0),
        [ObservationPoint("acc", 0.5, None, 1.0)],
    )
    storage.reset_trial(t.id)
    got = storage.get_trial("default", t.name)
    assert got.state == TrialState.CREATED and got.assignments == {"lr": "0.5"}
    assert storage.get_observations(t.id) == []


def test_finished_trials_are_immutable(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    t = storage.create_trial(exp, {"lr": "0.5"})
    storage.start_trial(t.id, started_at=1.0, pid=42)
    done = TrialResult(TrialState.SUCCEEDED, "TrialSucceeded", "ok", 2.0, objective=0.9)
    storage.finish_trial(t.id, done, [ObservationPoint("acc", 0.9, 1, 2.0)])
    again = TrialResult(TrialState.FAILED, "Error", "rewritten", 3.0, objective=0.1)
    with pytest.raises(TrialFinishedError, match="has finished"):
        storage.finish_trial(t.id, again, [ObservationPoint("acc", 0.1, 2, 3.0)])
    with pytest.raises(TrialFinishedError):
        storage.start_trial(t.id, started_at=4.0)
    with pytest.raises(TrialFinishedError):
        storage.reset_trial(t.id)  # only an interrupted run may be forgotten
    got = storage.get_trial("default", t.name)
    assert (got.state, got.message, got.objective) == (TrialState.SUCCEEDED, "ok", 0.9)
    assert [o.value for o in storage.get_observations(t.id)] == [0.9]  # nothing added
    with pytest.raises(ValueError, match="not a finished state"):
        storage.finish_trial(
            storage.create_trial(exp, {"lr": "0.6"}).id,
            TrialResult(TrialState.RUNNING, "", "", 1.0),
        )


def test_algorithm_state_round_trip(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    assert storage.load_algorithm_state(exp.id) is None
    storage.save_algorithm_state(exp.id, "random", {"rng": {"state": 2**70}})
    storage.save_algorithm_state(exp.id, "random", {"rng": {"state": 3}})
    assert storage.load_algorithm_state(exp.id) == ("random", {"rng": {"state": 3}})


def test_claim_is_exclusive(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    assert storage.claim(exp.id, "a", expected=None)
    assert not storage.claim(exp.id, "b", expected=None)
    assert storage.claim(exp.id, "b", expected="a")
    storage.release(exp.id, "b")
    assert storage.get_experiment_by_id(exp.id).owner is None


def test_delete_removes_everything(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    t = storage.create_trial(exp, {"lr": "0.5"})
    storage.add_observations(t.id, [ObservationPoint("acc", 0.5, None, 1.0)])
    storage.add_event(exp.id, "Test", "hello")
    storage.save_algorithm_state(exp.id, "random", {})
    storage.delete_experiment("default", "exp")
    with pytest.raises(NotFoundError):
        storage.get_experiment("default", "exp")
    with pytest.raises(NotFoundError):
        storage.get_trial("default", t.name)
    # The name is free again.
    storage.create_experiment(experiment())


def test_events(storage: Storage) -> None:
    exp = storage.create_experiment(experiment())
    storage.add_event(exp.id, "TrialFailed", "boom", trial_name="exp-x", type="Warning")
    [event] = storage.list_events(exp.id)
    assert (event.reason, event.type, event.trial_name) == ("TrialFailed", "Warning", "exp-x")


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    Storage.open(url).create_experiment(experiment())
    again = Storage.open(url)
    assert again.get_experiment("default", "exp").name == "exp"


def test_plain_path_and_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "k.db"
    s = Storage.open(str(path))
    assert path.exists()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_fresh_schema_equals_the_migrated_one(tmp_path: Path) -> None:
    """A new database is created from the models; an old one is migrated: same result."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from katib.storage._engine import _upgrade, make_engine
    from katib.storage._schema import Base

    migrated = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    _upgrade(migrated)
    fresh = Storage.open(f"sqlite:///{tmp_path / 'fresh.db'}").engine
    for engine in (migrated, fresh):
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            assert version == SCHEMA_REVISION


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    """`katib run` and `katib get` on a database neither has created yet: no one fails."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = (
        "import sys; from katib.storage import Storage; "
        "s = Storage.open(sys.argv[1]); s.list_experiments(); print('ok')"
    )
    for round_ in range(3):
        db = url.replace("new.db", f"new{round_}.db")
        procs = [
            subprocess.Popen([sys.executable, "-c", code, db], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for _ in range(6)
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "ok", err
