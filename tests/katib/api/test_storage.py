"""The storage the API adds: tokens, keyset pages, best trials, archive, and the 0002 migration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from katib.controller import best_trial
from katib.errors import ConflictError, NotFoundError
from katib.records import ExperimentCondition, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage, hash_token
from tests.katib.api.conftest import experiment_doc


def test_tokens_round_trip(storage: Storage) -> None:
    record, secret = storage.create_token("ci", "team-a", "editor")
    assert (record.name, record.namespace, record.role, record.revoked) == (
        "ci",
        "team-a",
        "editor",
        False,
    )
    resolved = storage.resolve_token(secret)
    assert resolved is not None and resolved.last_used_at is not None  # the use is recorded
    assert replace(resolved, last_used_at=None) == record
    assert storage.resolve_token(secret + "x") is None
    assert storage.list_tokens("team-a") == [resolved]
    assert storage.list_tokens("team-b") == []
    revoked = storage.revoke_token(record.id)
    assert revoked.revoked and storage.resolve_token(secret) is None
    assert storage.list_tokens() == []
    assert storage.list_tokens(include_revoked=True) == [revoked]
    assert storage.revoke_token(record.id).revoked_at == revoked.revoked_at  # idempotent
    with pytest.raises(NotFoundError):
        storage.revoke_token(999)


def test_token_rules(storage: Storage) -> None:
    for namespace, role in [("team-a", "admin"), ("*", "owner"), ("team-a", "root")]:
        with pytest.raises(ValueError):
            storage.create_token("x", namespace, role)
    storage.create_token("a", "*", "admin", plaintext="same-secret-0123456789")
    with pytest.raises(ConflictError):
        storage.create_token("b", "*", "admin", plaintext="same-secret-0123456789")


def test_only_the_hash_is_stored(storage: Storage) -> None:
    _, secret = storage.create_token("x", "default", "viewer")
    with storage.engine.connect() as conn:
        rows = conn.execute(text("SELECT token_hash FROM tokens")).all()
    assert rows == [(hash_token(secret),)]


def test_experiment_pages_and_archive(storage: Storage) -> None:
    ids = [
        storage.create_experiment(parse_experiment(experiment_doc(f"e{i}", ns))).id
        for i, ns in enumerate(["a", "b", "a", "a"])
    ]
    storage.update_experiment(ids[2], condition=ExperimentCondition.SUCCEEDED)
    storage.set_archived(ids[2], True)
    page = storage.list_experiments_page(namespaces=["a"], limit=1)
    assert [e.name for e in page] == ["e0"]
    rest = storage.list_experiments_page(namespaces=["a"], after=page[-1].id)
    assert [e.name for e in rest] == ["e3"]
    assert [e.name for e in storage.list_experiments_page(archived=True)] == ["e2"]
    assert len(storage.list_experiments_page(archived=None)) == 4
    assert storage.archived_ids(ids) == {ids[2]}
    done = storage.list_experiments_page(conditions=[ExperimentCondition.SUCCEEDED], archived=None)
    assert [e.name for e in done] == ["e2"]
    assert [i for i, _, _ in storage.unfinished_experiments()] == [ids[0], ids[1], ids[3]]
    assert storage.condition_counts() == {
        ExperimentCondition.CREATED: 3,
        ExperimentCondition.SUCCEEDED: 1,
    }


def test_best_trial_without_the_recorded_name(storage: Storage) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("b")))
    for loss, state in [
        (0.3, TrialState.SUCCEEDED),
        (0.1, TrialState.FAILED),
        (0.2, TrialState.EARLY_STOPPED),
        (0.2, TrialState.SUCCEEDED),
    ]:
        t = storage.create_trial(record, {"x": str(loss)})
        storage.finish_trial(t.id, TrialResult(state, "", "", 1.0, objective=loss))
    best = best_trial(storage, record)
    assert best is not None and best.objective == 0.2 and best.state == TrialState.EARLY_STOPPED
    counts = storage.count_trials_many([record.id, 999])
    assert counts[record.id][TrialState.SUCCEEDED] == 2 and counts[999] == {}
    assert storage.state_counts()[TrialState.FAILED] == 1


def test_unknown_sort_is_refused(storage: Storage) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("s")))
    with pytest.raises(ValueError, match="sort"):
        storage.list_trials_page(record.id, sort="name")


def test_upgrade_from_the_first_schema_keeps_data(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Config()
    config.set_main_option(
        "script_location", str(Path(__file__).parents[3] / "katib/storage/migrations")
    )
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    with engine.begin() as conn:
        assert not inspect(conn).has_table("tokens")
        conn.execute(
            text(
                "INSERT INTO experiments (namespace, name, spec, condition, conditions, message,"
                " source_dir, created_at, stop_requested) VALUES ('default', 'kept', :spec,"
                " 'Succeeded', '[]', '', '', 1.0, 0)"
            ),
            {"spec": __import__("json").dumps(parse_experiment(experiment_doc("kept")).to_wire())},
        )
    engine.dispose()
    upgraded = Storage.open(url)
    kept = upgraded.get_experiment("default", "kept")
    assert upgraded.archived_ids([kept.id]) == set()
    assert upgraded.create_token("x", "default", "viewer")[0].id == 1
    indexes = {i["name"] for i in inspect(upgraded.engine).get_indexes("trials")}
    assert {"ix_trials_experiment_id_id", "ix_trials_experiment_objective"} <= indexes
