"""The endpoints the dashboard needs: whoami, namespaces, audit trail, token expiry and last
use, trials as columns with live updates, curves, importance; and the pages' own routes.

Roles × routes are table-driven: each row says which roles may call an endpoint.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from katib.records import ExperimentCondition, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, Tokens, bearer, experiment_doc
from tests.katib.dashboard.seed import seed, set_row

NS = "/api/v1/namespaces/default"
ROLES = ("viewer", "editor", "owner", "admin")


@pytest.fixture
def world(storage: Storage) -> dict[str, Any]:
    """A seeded finished experiment `seeded` (40 trials) and a live one in `default`, and an
    experiment in `team-b`."""
    seed(storage, "seeded", 40, curves=10)
    live = storage.create_experiment(parse_experiment(experiment_doc("live")))
    trial = storage.create_trial(live, {"x": "0.5"})
    set_row(storage, "trials", trial.id, state=TrialState.RUNNING.value)
    seed(storage, "secret", 5, namespace="team-b")
    return {"live": live, "trial": trial}


def token_for(tokens: Tokens, role: str, namespace: str = "default") -> str:
    return tokens.admin if role == "admin" else tokens.make(role, namespace)


# (method, url, body, weakest role allowed; None: everyone with a role in the namespace)
READS: list[tuple[str, str, Any, str | None]] = [
    ("GET", "/api/v1/whoami", None, None),
    ("GET", "/api/v1/namespaces", None, None),
    ("GET", f"{NS}/experiments/seeded/trial-table", None, None),
    ("GET", f"{NS}/experiments/seeded/curves?metric=loss&trials=1,2,3", None, None),
    ("GET", f"{NS}/experiments/seeded/importance", None, None),
    ("GET", "/api/v1/audit?namespace=default", None, "owner"),
    ("GET", "/api/v1/tokens?namespace=default", None, "owner"),
    ("POST", "/api/v1/namespaces", {"name": "fresh"}, "admin"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "body", "weakest"), READS)
def test_roles_by_route(
    client: TestClient,
    tokens: Tokens,
    world: dict[str, Any],
    role: str,
    method: str,
    url: str,
    body: Any,
    weakest: str | None,
) -> None:
    answer = client.request(method, url, json=body, headers=bearer(token_for(tokens, role)))
    allowed = weakest is None or ROLES.index(role) >= ROLES.index(weakest)
    if allowed:
        assert answer.status_code in (200, 201), (answer.status_code, answer.text)
    else:
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/namespaces/team-b/experiments/secret/trial-table",
        "/api/v1/namespaces/team-b/experiments/secret/curves?metric=loss&trials=1",
        "/api/v1/namespaces/team-b/experiments/secret/importance",
        "/api/v1/audit?namespace=team-b",
        "/api/v1/tokens?namespace=team-b",
    ],
)
@pytest.mark.parametrize("role", ["viewer", "owner"])
def test_other_namespaces_do_not_exist(
    client: TestClient, tokens: Tokens, world: dict[str, Any], url: str, role: str
) -> None:
    answer = client.get(url, headers=bearer(tokens.make(role)))
    assert answer.status_code == 404, answer.text


def test_whoami_and_namespaces(client: TestClient, tokens: Tokens, world: dict[str, Any]) -> None:
    viewer = tokens.viewer("team-b")
    me = client.get("/api/v1/whoami", headers=bearer(viewer)).json()
    assert (me["role"], me["namespace"], me["expiresAt"]) == ("viewer", "team-b", None)
    assert "token" not in me and me["lastUsedAt"] is not None
    mine = client.get("/api/v1/namespaces", headers=bearer(viewer)).json()["items"]
    assert [n["name"] for n in mine] == ["team-b"]
    everything = client.get("/api/v1/namespaces", headers=bearer(tokens.admin)).json()["items"]
    assert [n["name"] for n in everything] == ["default", "team-b"]
    assert everything[0]["experiments"] == 2
    made = client.post("/api/v1/namespaces", json={"name": "team-c"}, headers=bearer(tokens.admin))
    assert made.status_code == 201 and made.json()["createdBy"] == "admin"
    again = client.post("/api/v1/namespaces", json={"name": "team-c"}, headers=bearer(tokens.admin))
    assert again.status_code == 409
    bad = client.post("/api/v1/namespaces", json={"name": "Team C"}, headers=bearer(tokens.admin))
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "body.name"
    listed = client.get("/api/v1/namespaces", headers=bearer(tokens.admin)).json()["items"]
    names = [n["name"] for n in listed]
    assert "team-c" in names


def test_token_expiry_and_last_use(client: TestClient, tokens: Tokens, storage: Storage) -> None:
    owner = tokens.owner()
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    made = client.post(
        "/api/v1/tokens",
        json={"name": "alice", "namespace": "default", "role": "viewer", "expiresAt": soon},
        headers=bearer(owner),
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["expiresAt"] is not None and body["lastUsedAt"] is None
    assert client.get("/api/v1/whoami", headers=bearer(body["token"])).status_code == 200
    listed = client.get("/api/v1/tokens", headers=bearer(owner)).json()["items"]
    alice = next(t for t in listed if t["name"] == "alice")
    assert alice["lastUsedAt"] is not None and "token" not in alice
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    refused = client.post(
        "/api/v1/tokens",
        json={"name": "bob", "namespace": "default", "role": "viewer", "expiresAt": past},
        headers=bearer(owner),
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["path"] == "expiresAt"
    # A token past its expiry is refused like a revoked one.
    import time

    _, expired = storage.create_token("old", "default", "viewer", expires_at=time.time() - 1)
    assert client.get("/api/v1/whoami", headers=bearer(expired)).status_code == 401
    # Owners may not hand out admin tokens, nor tokens of other namespaces.
    assert client.post(
        "/api/v1/tokens", json={"name": "x", "namespace": "team-b", "role": "viewer"},
        headers=bearer(owner),
    ).status_code == 404


def test_audit_trail_records_who_did_what(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    editor = tokens.editor()
    owner = tokens.owner()
    doc = experiment_doc("audited")
    created = client.post(f"{NS}/experiments", json=doc, headers=bearer(editor))
    assert created.status_code == 201
    assert client.patch(
        f"{NS}/experiments/audited", json={"maxTrialCount": 7}, headers=bearer(editor)
    ).status_code == 200
    assert client.post(f"{NS}/experiments/audited/stop", headers=bearer(editor)).status_code == 200
    assert client.delete(f"{NS}/experiments/audited", headers=bearer(owner)).status_code == 204
    made = client.post(
        "/api/v1/tokens", json={"name": "carol", "namespace": "default", "role": "editor"},
        headers=bearer(owner),
    ).json()
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=bearer(owner)).status_code == 204
    # A refused request leaves no record.
    assert client.delete(f"{NS}/experiments/none", headers=bearer(owner)).status_code == 404

    items = client.get("/api/v1/audit", headers=bearer(owner)).json()["items"]
    got = [(i["action"], i["target"], i["principal"]["name"]) for i in items]
    assert got == [
        ("token.revoke", f"token #{made['id']}", "owner@default"),
        ("token.create", f"token #{made['id']}", "owner@default"),
        ("experiment.delete", "audited", "owner@default"),
        ("experiment.stop", "audited", "editor@default"),
        ("experiment.budget", "audited", "editor@default"),
        ("experiment.create", "audited", "editor@default"),
    ]
    assert items[4]["detail"] == {"maxTrialCount": 7}
    assert items[1]["detail"]["role"] == "editor" and "token" not in items[1]["detail"]
    assert all(i["principal"]["id"] for i in items)
    # Pages, newest first.
    first = client.get("/api/v1/audit?limit=2", headers=bearer(owner)).json()
    rest = client.get(
        f"/api/v1/audit?limit=10&after={first['metadata']['continue']}", headers=bearer(owner)
    ).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == [i["id"] for i in items]
    # Owners of another namespace see none of it; admins see it all.
    other = client.get("/api/v1/audit", headers=bearer(tokens.owner("team-b"))).json()
    assert other["items"] == []
    assert len(client.get("/api/v1/audit", headers=bearer(tokens.admin)).json()["items"]) == 6


def test_trial_table_is_columns_and_updates_incrementally(
    client: TestClient, tokens: Tokens, world: dict[str, Any], storage: Storage
) -> None:
    viewer = {**bearer(tokens.viewer()), "Accept-Encoding": "gzip"}
    answer = client.get(f"{NS}/experiments/seeded/trial-table", headers=viewer)
    assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
    body = answer.json()
    cols = body["trials"]
    assert len(cols["id"]) == 40 and body["complete"] is True
    assert set(cols["params"]) == {"x1", "x2", "lr", "optimizer"}
    assert set(cols["metrics"]) == {"accuracy"}  # the objective's values are `objective`
    assert all(isinstance(v, float) for v in cols["params"]["x1"])
    assert set(cols["params"]["optimizer"]) <= {"adam", "sgd", "rmsprop"}
    assert body["status"]["condition"] == "Succeeded"
    assert [p["name"] for p in body["parameters"]] == ["x1", "x2", "lr", "optimizer"]
    assert cols["created"][0] >= 0 and isinstance(cols["created"][0], int)
    cursor, events_cursor = body["cursor"], body["eventsCursor"]
    assert body["events"] and events_cursor is not None

    # Paging.
    page = client.get(f"{NS}/experiments/seeded/trial-table?limit=15", headers=viewer).json()
    assert len(page["trials"]["id"]) == 15 and page["complete"] is False
    rest = client.get(
        f"{NS}/experiments/seeded/trial-table?limit=100&after={page['cursor']}", headers=viewer
    ).json()
    assert page["trials"]["id"] + rest["trials"]["id"] == cols["id"]

    # A live poll: nothing new is (almost) nothing on the wire.
    quiet = client.get(
        f"{NS}/experiments/seeded/trial-table?after={cursor}&eventsAfter={events_cursor}",
        headers=viewer,
    )
    assert quiet.json()["trials"]["id"] == [] and quiet.json()["events"] == []
    assert len(quiet.content) < 3000

    # The live experiment: a new trial appears after the cursor, the running one is refreshed.
    live, trial = world["live"], world["trial"]
    first = client.get(f"{NS}/experiments/live/trial-table", headers=viewer).json()
    assert first["trials"]["state"] == ["Running"]
    set_row(storage, "trials", trial.id, state=TrialState.SUCCEEDED.value, objective=0.5)
    storage.create_trial(live, {"x": "0.7"})
    poll = client.get(
        f"{NS}/experiments/live/trial-table?after={first['cursor']}&refresh={trial.id}",
        headers=viewer,
    ).json()
    assert poll["refreshed"]["state"] == ["Succeeded"] and poll["refreshed"]["objective"] == [0.5]
    assert poll["trials"]["params"]["x"] == [0.7] and len(poll["trials"]["id"]) == 1


@pytest.mark.parametrize(
    "query",
    ["refresh=a,b", "refresh=0", "limit=0", "limit=20001", "eventsAfter=-1", "after=x"],
)
def test_trial_table_refuses_bad_queries(
    client: TestClient, tokens: Tokens, world: dict[str, Any], query: str
) -> None:
    url = f"{NS}/experiments/seeded/trial-table?{query}"
    answer = client.get(url, headers=bearer(tokens.admin))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


def test_curves_and_importance(client: TestClient, tokens: Tokens, world: dict[str, Any]) -> None:
    viewer = bearer(tokens.viewer())
    ids = client.get(f"{NS}/experiments/seeded/trial-table", headers=viewer).json()["trials"]["id"]
    got = client.get(
        f"{NS}/experiments/seeded/curves?metric=loss&trials={ids[0]},{ids[1]},999999",
        headers=viewer,
    ).json()
    assert set(got["curves"]) == {str(ids[0]), str(ids[1])}  # other experiments' ids: dropped
    assert [p[0] for p in got["curves"][str(ids[0])]] == list(range(10))
    for method in ("ped-anova", "fanova", "mean-decrease-impurity"):
        imp = client.get(f"{NS}/experiments/seeded/importance?method={method}", headers=viewer)
        body = imp.json()
        assert imp.status_code == 200 and body["method"] == method, body
        assert {i["name"] for i in body["importances"]} <= {"x1", "x2", "lr", "optimizer"}
        assert abs(sum(i["importance"] for i in body["importances"]) - 1) < 1e-3
    few = client.get(f"{NS}/experiments/live/importance", headers=viewer).json()
    assert few["importances"] == [] and "at least" in few["detail"]
    bad = client.get(f"{NS}/experiments/seeded/importance?method=magic", headers=viewer)
    assert bad.status_code == 422


def test_the_dashboard_is_served_compressed_and_cached(client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "<title>Katib</title>" in html and "{{static}}" not in html
    base = html.split('href="', 3)[2].split("/vendor/")[0]  # /static/<hash>
    assert base.startswith("/static/")
    raw = client.get(f"{base}/vendor/plotly-cartesian.min.js", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert int(raw.headers["content-length"]) < 600_000
    assert gzip.decompress(gzip.compress(raw.content))[:3] == raw.content[:3]
    stale = client.get("/static/0123456789ab/js/app.js")
    assert stale.status_code == 200 and stale.headers["cache-control"] == "no-cache"
    for missing in ("/static/x/js/nope.js", "/static/x/../../__init__.py", "/static/x/index.html"):
        assert client.get(missing).status_code == 404, missing


def test_archive_is_audited(client: TestClient, tokens: Tokens, storage: Storage) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("old")))
    set_row(storage, "experiments", record.id, condition=ExperimentCondition.SUCCEEDED.value)
    editor = bearer(tokens.editor())
    assert client.post(f"{NS}/experiments/old/archive", headers=editor).status_code == 200
    items = client.get("/api/v1/audit", headers=bearer(tokens.owner())).json()["items"]
    assert items[0]["action"] == "experiment.archive"


def test_a_settled_experiment_answers_from_memory_until_it_changes(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    """The answer about an experiment whose trials all finished is kept, and dropped as soon
    as a trial is added or one is unfinished again."""
    seed(storage, "big", 800, curves=0)
    viewer = bearer(tokens.viewer())
    url = f"{NS}/experiments/big/trial-table"
    first = client.get(url, headers=viewer).json()
    assert client.get(url, headers=viewer).json() == first
    record = storage.get_experiment("default", "big")
    added = storage.create_trial(record, {"x1": "1", "x2": "2", "lr": "0.01", "optimizer": "sgd"})
    second = client.get(url, headers=viewer).json()
    assert second["trials"]["id"][-1] == added.id and second["trials"]["state"][-1] == "Created"
    set_row(storage, "trials", added.id, state=TrialState.SUCCEEDED.value, objective=0.25)
    third = client.get(url, headers=viewer).json()
    assert third["trials"]["state"][-1] == "Succeeded" and third["trials"]["objective"][-1] == 0.25
