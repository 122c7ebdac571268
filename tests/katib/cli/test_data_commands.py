"""`katib export` / `katib import` between databases, `katib get namespaces`, namespace limits
and token rotation, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.katib.cli.conftest import Katib, experiment_doc


@pytest.mark.slow
def test_export_then_import_moves_an_experiment_to_another_database(
    katib: Katib, tmp_path: Path, db_url: str
) -> None:
    path = katib.write(experiment_doc(maxTrialCount=3))
    assert katib("run", str(path)).returncode == 0
    before = katib.trials("exp")
    dump = tmp_path / "exp.jsonl"
    done = katib("export", "exp", "-o", str(dump))
    assert done.returncode == 0 and "exported 1 experiment" in done.stderr
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert [line["type"] for line in lines][:2] == ["header", "experiment"]
    moved = katib("import", str(dump), "--db", db_url)
    assert moved.returncode == 0, moved.stderr
    assert "experiment default/exp imported" in moved.stdout
    after = json.loads(katib("get", "trials", "exp", "-o", "json", "--db", db_url).stdout)
    assert after["items"] == before
    again = katib("import", str(dump), "--db", db_url)
    assert again.returncode == 2 and "exists in the target database" in again.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    refused = katib("import", str(broken), "--db", db_url)
    assert refused.returncode == 1 and "line 1" in refused.stderr
    assert "Traceback" not in refused.stderr + again.stderr


def test_namespace_limits_and_token_rotation_on_the_database(katib: Katib) -> None:
    assert katib("namespace", "limit", "team", "4").stdout.strip() == (
        "namespace team: at most 4 running trials")
    listed = json.loads(katib("get", "namespaces", "-o", "json").stdout)["items"]
    assert [(n["name"], n["maxRunningTrials"]) for n in listed] == [("team", 4)]
    table = katib("get", "namespaces").stdout
    assert "LIMIT" in table and "team" in table
    bad = katib("namespace", "limit", "team", "0")
    assert bad.returncode == 2 and "at least 1" in bad.stderr
    created = katib("token", "create", "--namespace", "team", "--role", "viewer")
    assert created.returncode == 0, created.stderr
    [row] = json.loads(katib("token", "list", "-o", "json").stdout)["items"]
    rotated = katib("token", "rotate", str(row["id"]))
    assert rotated.returncode == 0 and rotated.stdout.strip() != created.stdout.strip()
    states = {t["id"]: t.get("revokedAt") for t in json.loads(
        katib("token", "list", "-o", "json", "--all").stdout)["items"]}
    assert states[row["id"]] is not None and len(states) == 2
