"""Namespace limits through the API: admins set them, everyone with a role sees them."""

from __future__ import annotations

from fastapi.testclient import TestClient

from katib.storage import Storage


def test_admins_set_a_namespace_limit_that_others_see_but_cannot_change(
    client: TestClient, storage: Storage, admin: dict[str, str]
) -> None:
    _, owner = storage.create_token("o", "team", "owner")
    headers = {"Authorization": f"Bearer {owner}"}
    url = "/api/v1/namespaces/team/limits"
    refused = client.put(url, json={"maxRunningTrials": 5}, headers=headers)
    assert refused.status_code == 403 and "only admins" in refused.json()["detail"]
    bad = client.put(url, json={"maxRunningTrials": 0}, headers=admin)
    assert bad.status_code == 422
    ok = client.put(url, json={"maxRunningTrials": 5}, headers=admin)
    assert ok.status_code == 200 and ok.json()["maxRunningTrials"] == 5
    [team] = client.get("/api/v1/namespaces", headers=headers).json()["items"]
    assert (team["name"], team["maxRunningTrials"], team["runningTrials"]) == ("team", 5, 0)
    cleared = client.put(url, json={"maxRunningTrials": None}, headers=admin)
    assert cleared.json()["maxRunningTrials"] is None
    audit = client.get("/api/v1/audit", headers=admin).json()["items"]
    assert [a["action"] for a in audit if a["action"] == "namespace.limits"] == [
        "namespace.limits"] * 2


def test_rotating_a_token_revokes_it_and_keeps_its_name_role_and_expiry(
    client: TestClient, storage: Storage, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/tokens",
        json={"name": "ci", "namespace": "team", "role": "editor",
              "expiresAt": "2099-01-01T00:00:00Z"},
        headers=admin,
    ).json()
    old = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/v1/whoami", headers=old).status_code == 200
    rotated = client.post(f"/api/v1/tokens/{created['id']}/rotate", headers=admin)
    assert rotated.status_code == 201
    body = rotated.json()
    assert (body["name"], body["namespace"], body["role"], body["expiresAt"]) == (
        "ci", "team", "editor", created["expiresAt"])
    assert body["token"] != created["token"]
    assert client.get("/api/v1/whoami", headers=old).status_code == 401  # at once
    new = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/whoami", headers=new).json()["name"] == "ci"
    again = client.post(f"/api/v1/tokens/{created['id']}/rotate", headers=admin)
    assert again.status_code == 409 and "revoked" in again.json()["detail"]
