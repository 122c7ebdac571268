"""Data that outlives a version and a machine: export/import, and the first schema upgraded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from katib.errors import ConflictError, InvalidExperimentError
from katib.records import (
    Condition,
    ExperimentCondition,
    MetricSummary,
    TrialResult,
    TrialState,
)
from katib.spec import parse_experiment
from katib.storage import ObservationPoint, Storage, export_lines, import_lines, parse_lines
from tests.katib.cli.conftest import experiment_doc


def fill(storage: Storage, name: str = "moved") -> int:
    """An experiment with every kind of data: trials in each state, points, state, events."""
    record = storage.create_experiment(parse_experiment(experiment_doc(name)), source_dir="/p")
    done = Condition("Succeeded", "True", "ExperimentMaxTrialsReached", "done", 12.5)
    storage.update_experiment(
        record.id, condition=ExperimentCondition.SUCCEEDED, conditions=[done],
        message="done", started_at=10.25, completed_at=12.5,
    )
    states = [TrialState.SUCCEEDED, TrialState.FAILED, TrialState.EARLY_STOPPED]
    for i, state in enumerate(states):
        trial = storage.create_trial(record, {"x": f"0.{i + 1}"}, labels={"k": str(i)})
        storage.start_trial(trial.id, started_at=11.0 + i)
        points = [ObservationPoint("loss", 0.5 - i / 10, step, 11.5 + step) for step in (1, 2)]
        summary = MetricSummary("loss", points[1].value, points[0].value, points[1].value)
        storage.finish_trial(
            trial.id,
            TrialResult(state, f"R{i}", f"m{i}", 12.0 + i, exit_code=i, pid=100 + i,
                        metrics={"loss": summary}, objective=summary.min),
            points,
        )
    storage.update_experiment(record.id, optimal_trial_name=storage.list_trials(record.id)[0].name)
    storage.save_algorithm_state(record.id, "random", {"rng": {"state": 2**70, "inc": 3}})
    storage.add_event(record.id, "NewOptimalTrial", "a message", trial_name="t", type="Normal")
    return record.id


def everything(storage: Storage, namespace: str, name: str) -> dict[str, Any]:
    record = storage.get_experiment(namespace, name)
    trials = storage.list_trials(record.id)
    return {
        "spec": record.spec.to_wire(),
        "status": (record.condition, [c.to_json() for c in record.conditions], record.message,
                   record.source_dir, record.created_at, record.started_at,
                   record.completed_at, record.optimal_trial_name),
        "trials": [
            (t.name, t.assignments, t.state, t.reason, t.message, t.created_at, t.started_at,
             t.completed_at, t.exit_code, t.pid, t.objective, t.metrics, t.labels,
             [(o.metric_name, o.value, o.step, o.timestamp)
              for o in storage.get_observations(t.id)])
            for t in trials
        ],
        "state": storage.load_algorithm_state(record.id),
        "events": [(e.trial_name, e.type, e.reason, e.message, e.created_at)
                   for e in storage.list_events(record.id)],
    }


def roundtrip(source: Storage, target: Storage, **kwargs: Any) -> list[tuple[str, str]]:
    records = [source.get_experiment("default", "moved")]
    text_lines = [json.dumps(line) for line in export_lines(source, records)]
    return import_lines(target, parse_lines(text_lines, "export.jsonl"), "export.jsonl", **kwargs)


def test_export_then_import_keeps_everything(db_url: str, tmp_path: Path) -> None:
    """From SQLite into each database (SQLite, PostgreSQL): a SQLite database moves over."""
    source = Storage.open(f"sqlite:///{tmp_path / 'source.db'}")
    target = Storage.open(db_url)
    fill(source)
    assert roundtrip(source, target) == [("default", "moved")]
    assert everything(target, "default", "moved") == everything(source, "default", "moved")
    with pytest.raises(ConflictError, match="exists in the target database"):
        roundtrip(source, target)
    assert roundtrip(source, target, namespace="other") == [("other", "moved")]
    moved = target.get_experiment("other", "moved")
    assert moved.namespace == "other" and len(target.list_trials(moved.id)) == 3
    source.close()
    target.close()


def test_an_import_of_a_bad_file_names_the_line_and_stores_nothing(tmp_path: Path) -> None:
    source = Storage.open(f"sqlite:///{tmp_path / 'source.db'}")
    target = Storage.open(f"sqlite:///{tmp_path / 'target.db'}")
    fill(source)
    lines = [json.dumps(line) for line in export_lines(source, source.list_experiments())]
    with pytest.raises(InvalidExperimentError, match="header is missing"):
        parse_lines(lines[1:], "x.jsonl")
    with pytest.raises(InvalidExperimentError, match="line 3: not JSON"):
        parse_lines([lines[0], lines[1], "{oops", *lines[3:]], "x.jsonl")
    broken = json.loads(lines[2])
    del broken["state"]
    broken["observations"] = [["loss", "not a number", 1, 2.0]]
    items = parse_lines([lines[0], lines[1], json.dumps(broken)], "x.jsonl")
    with pytest.raises(InvalidExperimentError, match="line 3: does not fit"):
        import_lines(target, items, "x.jsonl")
    assert target.list_experiments() == []  # one transaction: nothing half-stored
    source.close()
    target.close()


def test_a_database_of_the_first_schema_is_upgraded_losing_nothing(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    import katib.storage as storage_package

    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")
    config = Config()
    migrations = Path(storage_package.__file__).parent / "migrations"
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    spec = parse_experiment(experiment_doc("old")).to_wire()
    with engine.begin() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        conn.execute(text(
            "INSERT INTO experiments (id, namespace, name, spec, condition, conditions, message,"
            " source_dir, created_at, started_at, completed_at, optimal_trial_name, owner,"
            " owner_heartbeat, stop_requested) VALUES (1, 'default', 'old', :spec,"
            " 'Succeeded', '[]', 'done', '/p', 1.0, 2.0, 3.0, 'old-a', NULL, NULL, 0)"),
            {"spec": json.dumps(spec)})
        conn.execute(text(
            "INSERT INTO trials (id, experiment_id, namespace, name, assignments, state, reason,"
            " message, created_at, started_at, completed_at, exit_code, pid, objective,"
            " metrics, labels) VALUES (1, 1, 'default', 'old-a', '{\"x\": \"0.5\"}',"
            " 'Succeeded', 'TrialSucceeded', 'ok', 1.5, 1.6, 2.5, 0, 42, 0.25,"
            " '{\"loss\": {\"name\": \"loss\", \"min\": 0.25, \"max\": 0.5, \"latest\": 0.25}}',"
            " '{}')"))
        conn.execute(text(
            "INSERT INTO observation_logs (trial_id, metric_name, value, step, timestamp)"
            " VALUES (1, 'loss', 0.5, 1, 2.0), (1, 'loss', 0.25, 2, 2.4)"))
        conn.execute(text(
            "INSERT INTO algorithm_states (experiment_id, algorithm, state, updated_at)"
            " VALUES (1, 'random', '{\"rng\": 1}', 2.6)"))
        conn.execute(text(
            "INSERT INTO events (experiment_id, trial_name, type, reason, message, created_at)"
            " VALUES (1, 'old-a', 'Normal', 'NewOptimalTrial', 'best', 2.5)"))
    engine.dispose()

    storage = Storage.open(f"sqlite:///{db}")  # upgrades to the newest schema
    record = storage.get_experiment("default", "old")
    assert (record.condition, record.message, record.optimal_trial_name) == (
        ExperimentCondition.SUCCEEDED, "done", "old-a")
    assert (record.created_at, record.started_at, record.completed_at) == (1.0, 2.0, 3.0)
    [trial] = storage.list_trials(record.id)
    assert (trial.state, trial.objective, trial.pid, trial.exit_code) == (
        TrialState.SUCCEEDED, 0.25, 42, 0)
    assert trial.metrics["loss"] == MetricSummary("loss", 0.25, 0.5, 0.25)
    assert [(o.value, o.step) for o in storage.get_observations(trial.id)] == [
        (0.5, 1), (0.25, 2)]
    assert storage.load_algorithm_state(record.id) == ("random", {"rng": 1})
    assert [e.message for e in storage.list_events(record.id)] == ["best"]
    storage.close()
