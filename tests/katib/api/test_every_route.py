"""Access control over every route × role, read from the application itself.

Each route of the API (the dashboard's included) is called with no token, a revoked token,
a token of another namespace, and each role in the namespace of the objects. Whatever the
route, these rules hold; a route added later is covered without touching this test:

* no token, or a revoked one: 401;
* a token of another namespace: nothing of this namespace is seen or changed (404 or 403);
* a viewer changes nothing (every POST, PUT, PATCH or DELETE is refused), except asking for
  validation;
* no answer is a 5xx;
* no response, and no event or audit row, carries a token's secret.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from katib.records import TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import Tokens, bearer, experiment_doc

PUBLIC = {"/healthz", "/readyz", "/metrics"}
#: Changes a viewer may ask for: they read, not write.
READ_ONLY_POSTS = {"/api/v1/validate"}


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation the application publishes (its OpenAPI schema)."""
    paths = client.get("/openapi.json").json()["paths"]
    found = [
        (method.upper(), path)
        for path, operations in sorted(paths.items())
        if path.startswith("/api/")
        for method in sorted(operations)
        if method in ("get", "post", "put", "patch", "delete")
    ]
    # Deletions last, so that every other route meets the objects they would remove.
    return sorted(found, key=lambda route: route[0] == "DELETE")


def _fill(path: str, names: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: names.get(m.group(1), "1"), path)


@pytest.fixture
def world(storage: Storage) -> dict[str, str]:
    record = storage.create_experiment(parse_experiment(experiment_doc("seen")))
    trial = storage.create_trial(record, {"x": "0.5"})
    storage.start_trial(trial.id, started_at=1.0)
    storage.finish_trial(trial.id, TrialResult(TrialState.SUCCEEDED, "ok", "", 2.0))
    return {"namespace": "default", "name": "seen", "experiment": "seen", "trial": trial.name,
            "token_id": "1", "id": "1"}


def test_every_route_enforces_its_roles(
    client: TestClient, storage: Storage, tokens: Tokens, world: dict[str, str]
) -> None:
    revoked_record, revoked = storage.create_token("gone", "default", "owner")
    storage.revoke_token(revoked_record.id)
    principals = {
        "none": None,
        "revoked": revoked,
        "stranger": tokens.owner("elsewhere"),
        "viewer": tokens.viewer(),
        "editor": tokens.editor(),
        "owner": tokens.owner(),
        "admin": tokens.admin,
    }
    secrets = [p for p in principals.values() if p]
    routes = _routes(client)
    assert len(routes) > 25, routes
    problems: list[str] = []
    for method, path in routes:
        url = _fill(path, world)
        for who, token in principals.items():
            headers = {} if token is None else bearer(token)
            body: Any = {} if method in ("POST", "PUT", "PATCH") else None
            r = client.request(method, url, json=body, headers=headers)
            where = f"{method} {path} as {who}: {r.status_code}"
            if r.status_code >= 500:
                problems.append(f"{where} (server error)")
            if any(secret in r.text for secret in secrets):
                problems.append(f"{where} (a token's secret in the response)")
            if path in PUBLIC:
                continue
            if who in ("none", "revoked") and r.status_code != 401:
                problems.append(f"{where} (expected 401)")
            if who == "stranger" and "{namespace}" in path and r.status_code < 400:
                problems.append(f"{where} (another namespace's token got in)")
            mutating = method in ("POST", "PUT", "PATCH", "DELETE")
            if who == "viewer" and mutating and path not in READ_ONLY_POSTS and r.status_code < 400:
                problems.append(f"{where} (a viewer changed something)")
    assert not problems, "\n".join(problems)
    stored = " ".join(
        e.message for r in storage.list_experiments() for e in storage.list_events(r.id)
    )
    stored += " ".join(str(a) for a in storage.list_audit())
    assert not any(secret in stored for secret in secrets)
