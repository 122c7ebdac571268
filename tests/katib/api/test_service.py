"""Algorithm catalogue, validation, health, readiness, Prometheus metrics and the schema."""

from __future__ import annotations

import yaml

from katib.spec import parse_experiment
from katib.storage import Storage
from suggestion import algorithm_names
from tests.katib.api.conftest import TestClient, experiment_doc


def test_algorithm_catalogue(client: TestClient, admin: dict[str, str]) -> None:
    body = client.get("/api/v1/algorithms", headers=admin).json()
    by_name = {a["name"]: a for a in body["algorithms"]}
    assert set(by_name) == set(algorithm_names())
    bayes = {s["name"]: s for s in by_name["bayesianoptimization"]["settings"]}
    assert bayes["base_estimator"]["default"] == "GP"
    assert bayes["n_initial_points"]["default"] == "10"
    assert all(s["description"] for s in bayes.values())
    assert by_name["hyperband"]["settings"]
    early = {e["name"]: e for e in body["earlyStopping"]}
    assert set(early) == {"medianstop", "asha", "percentile", "threshold"}
    assert all(e["description"] for e in early.values())
    median = early["medianstop"]
    assert {s["name"]: s["default"] for s in median["settings"]} == {
        "min_trials_required": "3",
        "start_step": "4",
    }


def test_validate(client: TestClient, admin: dict[str, str]) -> None:
    good = client.post("/api/v1/validate", json=experiment_doc("ok"), headers=admin)
    assert good.json() == {"valid": True, "errors": []}
    doc = experiment_doc("bad")
    doc["spec"]["parallelTrialCount"] = 9
    text = yaml.safe_dump_all([experiment_doc("fine"), doc])
    r = client.post(
        "/api/v1/validate", content=text, headers={**admin, "Content-Type": "application/yaml"}
    )
    assert r.status_code == 200
    assert r.json()["valid"] is False
    assert r.json()["errors"][0]["path"] == "documents[1].spec.parallelTrialCount"
    broken = client.post(
        "/api/v1/validate", content=b"{", headers={**admin, "Content-Type": "application/json"}
    )
    assert broken.json()["valid"] is False and "JSON" in broken.json()["errors"][0]["message"]
    # Validation creates nothing.
    assert client.get("/api/v1/experiments", headers=admin).json()["items"] == []


def test_health_and_readiness(client: TestClient, storage: Storage) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    storage.engine.dispose()
    broken_url = storage.engine.url.set(
        database="/nonexistent/dir/katib.db"
        if storage.engine.url.get_backend_name() == "sqlite"
        else "no_such_database"
    )
    from sqlalchemy import create_engine

    storage.engine = create_engine(broken_url)
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["status"] == "unavailable"
    assert client.get("/healthz").status_code == 200


def test_metrics(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("m")))
    for _ in range(3):
        storage.create_trial(record, {"x": "1"})
    client.get("/api/v1/namespaces/default/experiments/m", headers=admin)
    client.get("/api/v1/namespaces/default/experiments/m", headers=admin)
    client.get("/api/v1/namespaces/default/experiments/unknown", headers=admin)
    client.get("/no/such/route")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'katib_experiments{condition="Created"} 1.0' in text
    assert 'katib_experiments{condition="Succeeded"} 0.0' in text
    assert 'katib_trials{state="Created"} 3.0' in text
    assert "katib_database_up 1.0" in text
    route = "/api/v1/namespaces/{namespace}/experiments/{name}"
    assert f'katib_api_request_duration_seconds_count{{method="GET",route="{route}"}} 3.0' in text
    assert 'route="unmatched"' in text
    assert '/experiments/m"' not in text  # raw paths never become labels


def test_openapi_and_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Katib"
    paths = schema["paths"]
    create = paths["/api/v1/namespaces/{namespace}/experiments"]["post"]
    assert set(create["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert len([p for p in paths if p.startswith("/api/v1")]) >= 16
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    r = client.get("/api/v1/nothing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = client.put("/healthz")
    assert r.status_code == 405 and r.json()["status"] == 405
