"""Access control: each role's permissions, namespace isolation, tokens and revocation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from katib.api import ensure_admin_token
from katib.records import ExperimentCondition
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, Tokens, bearer, experiment_doc

NS = "/api/v1/namespaces/default"


@pytest.fixture
def world(storage: Storage) -> dict[str, str]:
    """A finished experiment and a running trial in `default`, and one in `team-b`."""
    done = storage.create_experiment(parse_experiment(experiment_doc("done")))
    storage.update_experiment(done.id, condition=ExperimentCondition.SUCCEEDED)
    live = storage.create_experiment(parse_experiment(experiment_doc("live")))
    trial = storage.create_trial(live, {"x": "1"})
    storage.start_trial(trial.id, started_at=1.0)
    other = storage.create_experiment(parse_experiment(experiment_doc("secret", "team-b")))
    hidden = storage.create_trial(other, {"x": "1"})
    return {"trial": trial.name, "hidden": hidden.name}


def reads(world: dict[str, str]) -> list[tuple[str, str, Any]]:
    t = world["trial"]
    return [
        ("GET", f"{NS}/experiments", None),
        ("GET", f"{NS}/experiments/live", None),
        ("GET", f"{NS}/experiments/live/trials", None),
        ("GET", f"{NS}/experiments/live/best", None),
        ("GET", f"{NS}/trials/{t}", None),
        ("GET", f"{NS}/trials/{t}/observations", None),
        ("GET", f"{NS}/experiments/live/events", None),
    ]


def writes(world: dict[str, str]) -> list[tuple[str, str, Any]]:
    t = world["trial"]
    return [
        ("POST", f"{NS}/experiments", experiment_doc("new")),
        ("PATCH", f"{NS}/experiments/live", {"maxTrialCount": 5}),
        ("POST", f"{NS}/trials/{t}/observations", {"metrics": {"loss": 1}}),
        ("POST", f"{NS}/experiments/done/archive", None),
        ("POST", f"{NS}/trials/{t}/kill", None),
        ("POST", f"{NS}/experiments/live/stop", None),
    ]


def call(client: TestClient, token: str, method: str, url: str, body: Any) -> int:
    return client.request(method, url, json=body, headers=bearer(token)).status_code


def test_viewer_reads_but_changes_nothing(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    viewer = tokens.viewer()
    for method, url, body in reads(world):
        assert call(client, viewer, method, url, body) == 200, url
    for method, url, body in writes(world):
        assert call(client, viewer, method, url, body) == 403, url
    assert call(client, viewer, "DELETE", f"{NS}/experiments/done", None) == 403
    assert call(client, viewer, "POST", f"{NS}/experiments/done/restart", {}) == 403
    assert call(client, viewer, "GET", "/api/v1/tokens", None) == 403


def test_editor_changes_but_cannot_delete_or_manage_tokens(
    client: TestClient, tokens: Tokens, world: dict[str, str], storage: Storage
) -> None:
    editor = tokens.editor()
    for method, url, body in writes(world):
        assert call(client, editor, method, url, body) in (200, 201), url
    assert storage.get_experiment("default", "new").name == "new"
    assert call(client, editor, "DELETE", f"{NS}/experiments/done", None) == 403
    assert call(client, editor, "GET", "/api/v1/tokens", None) == 403
    new = {"name": "x", "namespace": "default", "role": "viewer"}
    assert call(client, editor, "POST", "/api/v1/tokens", new) == 403
    own = [tk for tk in storage.list_tokens("default") if tk.role == "editor"][0]
    assert call(client, editor, "DELETE", f"/api/v1/tokens/{own.id}", None) == 403
    assert call(client, editor, "DELETE", "/api/v1/tokens/1", None) == 404  # the admin's


def test_owner_deletes_and_manages_its_namespace_only(
    client: TestClient, tokens: Tokens, world: dict[str, str], storage: Storage
) -> None:
    owner = tokens.owner()
    assert call(client, owner, "DELETE", f"{NS}/experiments/done", None) == 204
    made = client.post(
        "/api/v1/tokens",
        json={"name": "ci", "namespace": "default", "role": "editor"},
        headers=bearer(owner),
    )
    assert made.status_code == 201, made.text
    listed = client.get("/api/v1/tokens", headers=bearer(owner)).json()["items"]
    assert {t["namespace"] for t in listed} == {"default"}
    assert "ci" in {t["name"] for t in listed}
    assert all("token" not in t for t in listed)
    # Not in other namespaces, and never admin tokens or roles above its own.
    elsewhere = {"name": "x", "namespace": "team-b", "role": "viewer"}
    assert call(client, owner, "POST", "/api/v1/tokens", elsewhere) == 404
    admin_token = {"name": "x", "namespace": "*", "role": "admin"}
    assert call(client, owner, "POST", "/api/v1/tokens", admin_token) == 403
    other_token = storage.create_token("b", "team-b", "viewer")[0]
    assert call(client, owner, "DELETE", f"/api/v1/tokens/{other_token.id}", None) == 404
    assert call(client, owner, "DELETE", f"/api/v1/tokens/{made.json()['id']}", None) == 204


def test_no_role_in_a_namespace_looks_like_nothing_there(
    client: TestClient, tokens: Tokens, world: dict[str, str]
) -> None:
    stranger = tokens.owner("team-c")
    for method, url, body in [*reads(world), *writes(world)]:
        r = client.request(method, url, json=body, headers=bearer(stranger))
        assert r.status_code == 404, url
    # The same answer as for a name that does not exist at all.
    real = client.get(f"{NS}/experiments/live", headers=bearer(stranger)).json()
    fake = client.get(f"{NS}/experiments/nothing", headers=bearer(tokens.owner())).json()
    assert real["detail"].replace("live", "X") == fake["detail"].replace("nothing", "X")
    team_b = tokens.viewer("team-b")
    hidden = f"/api/v1/namespaces/team-b/trials/{world['hidden']}"
    assert client.get(hidden, headers=bearer(team_b)).status_code == 200
    assert client.get(hidden, headers=bearer(tokens.viewer())).status_code == 404
    # The cross-namespace list shows only what the token sees.
    items = client.get("/api/v1/experiments", headers=bearer(team_b)).json()["items"]
    assert [e["metadata"]["name"] for e in items] == ["secret"]
    # So does the search for a trial by name.
    by_name = f"/api/v1/trials?name={world['hidden']}"
    assert client.get(by_name, headers=bearer(tokens.viewer())).json()["items"] == []
    assert len(client.get(by_name, headers=bearer(team_b)).json()["items"]) == 1


def test_admin_sees_everything(
    client: TestClient, admin: dict[str, str], world: dict[str, str]
) -> None:
    items = client.get("/api/v1/experiments", headers=admin).json()["items"]
    assert {e["metadata"]["namespace"] for e in items} == {"default", "team-b"}
    assert client.delete(f"{NS}/experiments/done", headers=admin).status_code == 204


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_missing_or_unknown_tokens_are_401(client: TestClient, headers: dict[str, str]) -> None:
    for url in (f"{NS}/experiments", "/api/v1/algorithms", "/api/v1/tokens"):
        r = client.get(url, headers=headers)
        assert r.status_code == 401, url
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_revoked_tokens_are_401_at_once(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    made = client.post(
        "/api/v1/tokens",
        json={"name": "temp", "namespace": "default", "role": "viewer"},
        headers=bearer(tokens.admin),
    ).json()
    assert made["token"].startswith("katib_")
    assert client.get(f"{NS}/experiments", headers=bearer(made["token"])).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{made['id']}", headers=bearer(tokens.admin))
    assert revoked.status_code == 204
    assert client.get(f"{NS}/experiments", headers=bearer(made["token"])).status_code == 401
    # Revoked tokens are listed only when asked for.
    def names(query: str) -> list[str]:
        listed = client.get(f"/api/v1/tokens{query}", headers=bearer(tokens.admin))
        return [t["name"] for t in listed.json()["items"]]

    assert "temp" not in names("")
    assert "temp" in names("?revoked=true")
    # Tokens are stored hashed: the plaintext is nowhere in the database.
    from sqlalchemy import text

    with storage.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT token_hash FROM tokens"))]
    assert made["token"] not in stored and all(len(h) == 64 for h in stored)


def test_token_requests_are_checked(client: TestClient, admin: dict[str, str]) -> None:
    bad = [
        {"name": "x", "namespace": "default", "role": "superuser"},
        {"name": "x", "namespace": "*", "role": "viewer"},
        {"name": "x", "namespace": "default", "role": "admin"},
        {"name": "", "namespace": "default", "role": "viewer"},
        {"name": "x", "namespace": "Bad_NS", "role": "viewer"},
        {"name": "x", "namespace": "default"},
        {"name": "x", "namespace": "default", "role": "viewer", "extra": 1},
    ]
    for body in bad:
        r = client.post("/api/v1/tokens", json=body, headers=admin)
        assert r.status_code == 422, body
        assert r.json()["errors"]
    assert client.delete("/api/v1/tokens/999", headers=admin).status_code == 404
    assert client.delete("/api/v1/tokens/0", headers=admin).status_code == 422


def test_the_last_admin_token_cannot_be_revoked(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    [first] = storage.list_tokens("*")
    r = client.delete(f"/api/v1/tokens/{first.id}", headers=bearer(tokens.admin))
    assert r.status_code == 409
    second = client.post(
        "/api/v1/tokens",
        json={"name": "second admin", "namespace": "*", "role": "admin"},
        headers=bearer(tokens.admin),
    ).json()
    assert (
        client.delete(f"/api/v1/tokens/{first.id}", headers=bearer(second["token"])).status_code
        == 204
    )
    assert client.get("/api/v1/tokens", headers=bearer(tokens.admin)).status_code == 401


def test_admin_token_from_the_environment(client: TestClient, storage: Storage) -> None:
    secret = "a-long-automation-token-0123456789"
    assert ensure_admin_token(storage, {"KATIB_ADMIN_TOKEN": secret}) is None
    assert client.get("/api/v1/tokens", headers=bearer(secret)).status_code == 200
    # Ensuring it again does not duplicate it; a revoked one is reinstated.
    ensure_admin_token(storage, {"KATIB_ADMIN_TOKEN": secret})
    mine = [t for t in storage.list_tokens("*") if t.name == "admin (KATIB_ADMIN_TOKEN)"]
    assert len(mine) == 1
    storage.revoke_token(mine[0].id)
    assert client.get("/api/v1/tokens", headers=bearer(secret)).status_code == 401
    ensure_admin_token(storage, {"KATIB_ADMIN_TOKEN": secret})
    assert client.get("/api/v1/tokens", headers=bearer(secret)).status_code == 200
    from katib.errors import KatibError

    with pytest.raises(KatibError, match="at least 16"):
        ensure_admin_token(storage, {"KATIB_ADMIN_TOKEN": "short"})


def test_first_start_creates_one_admin_token(storage: Storage) -> None:
    created = ensure_admin_token(storage, {})
    assert created is not None and created.startswith("katib_")
    assert storage.resolve_token(created) is not None
    assert ensure_admin_token(storage, {}) is None  # printed once, never again
    assert [t.role for t in storage.list_tokens()] == ["admin"]


def test_every_api_endpoint_needs_a_token(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    checked = 0
    fill: Callable[[str], str] = lambda p: p.format(  # noqa: E731
        namespace="default", name="x", trial="x", token_id=1
    )
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in operations:
            r = client.request(method.upper(), fill(path), json={})
            assert r.status_code == 401, (method, path)
            checked += 1
    assert checked >= 20
