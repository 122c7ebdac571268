"""``katib token create|list|revoke`` on the database, and ``katib server`` refusals."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner

from katib.cli import cli
from katib.storage import Storage


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_token_commands(db_url: str) -> None:
    code, out, err = run(
        "token",
        "create",
        "--namespace",
        "team-a",
        "--role",
        "editor",
        "--name",
        "ci",
        "--db",
        db_url,
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("katib_") and "shown only this once" in err
    storage = Storage.open(db_url)
    token = storage.resolve_token(secret)
    assert token is not None and (token.namespace, token.role, token.name) == (
        "team-a",
        "editor",
        "ci",
    )
    code, out, _ = run("token", "list", "-o", "json", "--db", db_url)
    assert code == 0
    [listed] = json.loads(out)["items"]
    assert listed["id"] == token.id and secret not in out
    code, out, _ = run("token", "list", "--db", db_url)
    assert "team-a" in out and "editor" in out
    code, out, _ = run("token", "revoke", str(token.id), "--db", db_url)
    assert code == 0 and "revoked" in out
    assert storage.resolve_token(secret) is None
    code, out, _ = run("token", "list", "--all", "--db", db_url)
    assert "ci" in out
    code, _, err = run("token", "revoke", "999", "--db", db_url)
    assert code == 2 and "not found" in err


def test_token_create_refusals(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    code, _, err = run("token", "create", "--namespace", "Bad_NS", "--role", "viewer", "--db", db)
    assert code == 2 and "namespace" in err
    code, _, err = run("token", "create", "--namespace", "a", "--role", "admin", "--db", db)
    assert code == 2
    assert Storage.open(db).list_tokens() == []


def test_server_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run("server", "--port", str(port), "--db", str(tmp_path / "k.db"))
    assert code == 2 and "cannot listen" in err
