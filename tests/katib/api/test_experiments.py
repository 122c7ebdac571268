"""Experiment endpoints: create (JSON, YAML), list, get, delete, stop, restart, edit, archive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from katib.records import ExperimentCondition, MetricSummary, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, Tokens, bearer, experiment_doc

EXPERIMENTS = "/api/v1/namespaces/default/experiments"
PROBLEM = "application/problem+json"


def finished(storage: Storage, name: str, **spec: Any) -> int:
    """A stored experiment that Succeeded with two trials; returns its id."""
    record = storage.create_experiment(parse_experiment(experiment_doc(name, **spec)))
    for x, loss in (("0.5", 0.5), ("0.2", 0.2)):
        trial = storage.create_trial(record, {"x": x})
        storage.finish_trial(
            trial.id,
            TrialResult(
                TrialState.SUCCEEDED, "TrialSucceeded", "", 1.0,
                objective=loss, metrics={"loss": MetricSummary("loss", loss, loss, loss)},
            ),
        )
    storage.update_experiment(record.id, condition=ExperimentCondition.SUCCEEDED)
    return record.id


# create ------------------------------------------------------------------------------------


def test_create_from_json(client: TestClient, admin: dict[str, str], work_dir: Path) -> None:
    r = client.post(EXPERIMENTS, json=experiment_doc("from-json"), headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{EXPERIMENTS}/from-json"
    body = r.json()
    assert body["kind"] == "Experiment"
    assert body["metadata"]["name"] == "from-json"
    assert body["metadata"]["namespace"] == "default"
    assert body["spec"]["resumePolicy"] == "Never"  # defaulted as Katib does
    assert body["status"]["condition"] == "Created"
    assert body["status"]["trials"] == 0 and body["status"]["archived"] is False
    stored = client.app.state.storage.get_experiment("default", "from-json")
    assert stored.source_dir == str(work_dir)


def test_source_dir_picks_the_folder_trials_resolve_against(
    client: TestClient, admin: dict[str, str], work_dir: Path
) -> None:
    (work_dir / "sub").mkdir()
    r = client.post(f"{EXPERIMENTS}?sourceDir=sub", json=experiment_doc("rel"), headers=admin)
    assert r.status_code == 201, r.text
    storage = client.app.state.storage
    assert storage.get_experiment("default", "rel").source_dir == str(work_dir / "sub")
    absolute = f"{EXPERIMENTS}?sourceDir={work_dir}"
    assert client.post(absolute, json=experiment_doc("abs"), headers=admin).status_code == 201
    assert storage.get_experiment("default", "abs").source_dir == str(work_dir)
    for bad in ("missing", "trial.py", "a%00b"):
        r = client.post(f"{EXPERIMENTS}?sourceDir={bad}", json=experiment_doc("x"), headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["path"] == "sourceDir"
    # Nothing was stored by the refusals.
    assert [e.name for e in storage.list_experiments()] == ["rel", "abs"]


def test_events(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("ev")))
    storage.add_event(record.id, "TrialCreated", "trial ev-1 created", trial_name="ev-1")
    storage.add_event(record.id, "Done", "finished", type="Warning")
    r = client.get(f"{EXPERIMENTS}/ev/events", headers=admin)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(e["type"], e["reason"], e["trialName"]) for e in items] == [
        ("Normal", "TrialCreated", "ev-1"),
        ("Warning", "Done", None),
    ]
    assert items[0]["message"] == "trial ev-1 created" and items[0]["time"].endswith("Z")
    assert client.get(f"{EXPERIMENTS}/nope/events", headers=admin).status_code == 404


def test_create_from_yaml_into_the_url_namespace(client: TestClient, admin: dict[str, str]) -> None:
    text = yaml.safe_dump(experiment_doc("from-yaml"), sort_keys=False)
    r = client.post(
        "/api/v1/namespaces/team-a/experiments",
        content=text,
        headers={**admin, "Content-Type": "application/yaml"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["namespace"] == "team-a"
    assert (
        client.get("/api/v1/namespaces/team-a/experiments/from-yaml", headers=admin).json()[
            "metadata"
        ]["name"]
        == "from-yaml"
    )


def test_invalid_experiment_lists_every_field_error(
    client: TestClient, admin: dict[str, str]
) -> None:
    doc = experiment_doc("bad")
    doc["spec"]["maxTrialCount"] = 0
    doc["spec"]["parameters"][0]["feasibleSpace"]["min"] = "abc"
    doc["spec"]["algorithm"]["algorithmName"] = "nope"
    r = client.post(EXPERIMENTS, json=doc, headers=admin)
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    assert body["status"] == 422
    paths = {e["path"] for e in body["errors"]}
    assert {
        "spec.maxTrialCount",
        "spec.parameters[0].feasibleSpace.min",
        "spec.algorithm.algorithmName",
    } <= paths
    assert client.get(f"{EXPERIMENTS}/bad", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("content", "media_type"),
    [
        (b'{"apiVersion": ', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"metadata: {name: x\nspec: [", "application/yaml"),
        (b"- just\n- a list\n", "application/yaml"),
        (b"", "application/yaml"),
    ],
)
def test_bad_json_and_yaml_are_problems_not_errors(
    client: TestClient, admin: dict[str, str], content: bytes, media_type: str
) -> None:
    r = client.post(EXPERIMENTS, content=content, headers={**admin, "Content-Type": media_type})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["errors"] and all("message" in e for e in r.json()["errors"])


def test_several_yaml_documents_are_refused(client: TestClient, admin: dict[str, str]) -> None:
    text = yaml.safe_dump_all([experiment_doc("a"), experiment_doc("b")])
    r = client.post(EXPERIMENTS, content=text, headers={**admin, "Content-Type": "text/yaml"})
    assert r.status_code == 422
    assert "one at a time" in r.json()["errors"][0]["message"]


def test_other_media_types_and_huge_bodies(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post(EXPERIMENTS, content=b"x", headers={**admin, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM
    huge = b"#" * (10 * 1024 * 1024 + 1)
    r = client.post(
        EXPERIMENTS, content=huge, headers={**admin, "Content-Type": "application/yaml"}
    )
    assert r.status_code == 413


def test_namespace_must_match_the_url(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post(EXPERIMENTS, json=experiment_doc("x", namespace="other"), headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "metadata.namespace"
    same = client.post(EXPERIMENTS, json=experiment_doc("x", namespace="default"), headers=admin)
    assert same.status_code == 201


def test_existing_name_conflicts(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post(EXPERIMENTS, json=experiment_doc("dup"), headers=admin).status_code == 201
    r = client.post(EXPERIMENTS, json=experiment_doc("dup"), headers=admin)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    assert "already exists" in r.json()["detail"]


def test_nas_experiments_are_accepted(client: TestClient, admin: dict[str, str]) -> None:
    doc = experiment_doc("nas")
    del doc["spec"]["parameters"]
    doc["spec"]["algorithm"] = {"algorithmName": "enas"}
    doc["spec"]["nasConfig"] = {
        "graphConfig": {"numLayers": 2, "inputSizes": [8, 8, 1], "outputSizes": [10]},
        "operations": [
            {
                "operationType": "convolution",
                "parameters": [
                    {
                        "name": "filter_size",
                        "parameterType": "categorical",
                        "feasibleSpace": {"list": ["3", "5"]},
                    }
                ],
            }
        ],
    }
    for parameter in doc["spec"]["trialTemplate"]["trialParameters"]:
        parameter["reference"] = "architecture"
    valid = client.post("/api/v1/validate", json=doc, headers=admin).json()
    assert valid == {"valid": True, "errors": []}
    r = client.post(EXPERIMENTS, json=doc, headers=admin)
    assert r.status_code == 201, r.text


# list and get ------------------------------------------------------------------------------


def test_list_filters_and_pages(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    for i in range(5):
        storage.create_experiment(parse_experiment(experiment_doc(f"e{i}")))
    done = finished(storage, "done")
    storage.create_experiment(parse_experiment(experiment_doc("elsewhere", namespace="team-b")))

    r = client.get(f"{EXPERIMENTS}?limit=2", headers=admin)
    first = r.json()
    assert [e["metadata"]["name"] for e in first["items"]] == ["e0", "e1"]
    after = first["metadata"]["continue"]
    second = client.get(f"{EXPERIMENTS}?limit=2&after={after}", headers=admin).json()
    assert [e["metadata"]["name"] for e in second["items"]] == ["e2", "e3"]
    rest = client.get(
        f"{EXPERIMENTS}?limit=10&after={second['metadata']['continue']}", headers=admin
    ).json()
    assert [e["metadata"]["name"] for e in rest["items"]] == ["e4", "done"]
    # An empty page keeps the cursor, so that a live view polls with it again.
    empty = client.get(f"{EXPERIMENTS}?after={rest['metadata']['continue']}", headers=admin).json()
    assert empty["items"] == [] and empty["metadata"]["continue"] == rest["metadata"]["continue"]

    succeeded = client.get(f"{EXPERIMENTS}?condition=Succeeded", headers=admin).json()
    assert [e["metadata"]["name"] for e in succeeded["items"]] == ["done"]
    assert succeeded["items"][0]["status"]["trials"] == 2
    assert (
        succeeded["items"][0]["status"]["currentOptimalTrial"]["observation"]["metrics"][0][
            "latest"
        ]
        == 0.2
    )
    everywhere = client.get("/api/v1/experiments", headers=admin).json()
    assert {e["metadata"]["namespace"] for e in everywhere["items"]} == {"default", "team-b"}
    assert storage.get_experiment_by_id(done).name == "done"


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "after=-1", "condition=Sleeping", "archived=maybe"]
)
def test_bad_list_parameters(client: TestClient, admin: dict[str, str], query: str) -> None:
    r = client.get(f"{EXPERIMENTS}?{query}", headers=admin)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert r.json()["errors"][0]["path"].startswith("query.")


def test_unknown_names_are_404(client: TestClient, admin: dict[str, str]) -> None:
    for method, path in [
        ("GET", f"{EXPERIMENTS}/nope"),
        ("DELETE", f"{EXPERIMENTS}/nope"),
        ("POST", f"{EXPERIMENTS}/nope/stop"),
        ("POST", f"{EXPERIMENTS}/nope/archive"),
        ("GET", f"{EXPERIMENTS}/nope/best"),
        ("GET", f"{EXPERIMENTS}/nope/trials"),
    ]:
        r = client.request(method, path, headers=admin)
        assert r.status_code == 404, (method, path)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["detail"] == "experiment default/nope not found"
    r = client.request("PATCH", f"{EXPERIMENTS}/nope", json={"maxTrialCount": 5}, headers=admin)
    assert r.status_code == 404
    bad_namespace = client.get("/api/v1/namespaces/Not_A_Label/experiments", headers=admin)
    assert bad_namespace.status_code == 422


def test_best_trial(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    finished(storage, "done")
    best = client.get(f"{EXPERIMENTS}/done/best", headers=admin).json()
    assert best["experiment"] == "done" and best["condition"] == "Succeeded"
    assert best["parameterAssignments"] == [{"name": "x", "value": "0.2"}]
    storage.create_experiment(parse_experiment(experiment_doc("fresh")))
    none = client.get(f"{EXPERIMENTS}/fresh/best", headers=admin).json()
    assert none["bestTrialName"] is None and none["parameterAssignments"] == []


# stop, delete, restart, edit, archive ------------------------------------------------------


def test_stop_an_experiment_nobody_runs(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    record = storage.create_experiment(parse_experiment(experiment_doc("idle")))
    trial = storage.create_trial(record, {"x": "0.5"})
    r = client.post(f"{EXPERIMENTS}/idle/stop", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["condition"] == "Succeeded"
    assert "stopped by the user" in r.json()["status"]["message"]
    assert storage.get_trial("default", trial.name).state == TrialState.KILLED
    assert storage.get_experiment("default", "idle").owner is None
    again = client.post(f"{EXPERIMENTS}/idle/stop", headers=admin)
    assert again.status_code == 409


def test_stop_of_an_experiment_another_process_runs_is_a_request(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    import os
    import socket

    record = storage.create_experiment(parse_experiment(experiment_doc("busy")))
    parent = f"{socket.gethostname()}:{os.getppid()}:abc"  # a live process, not this one
    assert storage.claim(record.id, parent, expected=None)
    r = client.post(f"{EXPERIMENTS}/busy/stop", headers=admin)
    assert r.status_code == 202
    assert r.json()["status"]["condition"] == "Created"
    assert storage.get_experiment("default", "busy").stop_requested
    deleting = client.delete(f"{EXPERIMENTS}/busy", headers=admin)
    assert deleting.status_code == 409 and "stop it first" in deleting.json()["detail"]


def test_delete(
    client: TestClient, admin: dict[str, str], storage: Storage, katib_home: Path
) -> None:
    finished(storage, "gone")
    logs = katib_home / "logs" / "default" / "gone"
    logs.mkdir(parents=True)
    (logs / "t.log").write_text("hello")
    r = client.delete(f"{EXPERIMENTS}/gone", headers=admin)
    assert r.status_code == 204 and r.content == b""
    assert client.get(f"{EXPERIMENTS}/gone", headers=admin).status_code == 404
    assert not logs.exists()


def test_edit_budget(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    storage.create_experiment(parse_experiment(experiment_doc("edit")))
    r = client.patch(f"{EXPERIMENTS}/edit", json={"maxTrialCount": 9}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["maxTrialCount"] == 9
    assert storage.get_experiment("default", "edit").spec.spec.max_trial_count == 9
    # Counts are checked as a whole spec: parallel may not exceed the maximum.
    r = client.patch(f"{EXPERIMENTS}/edit", json={"parallelTrialCount": 10}, headers=admin)
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "spec.parallelTrialCount"
    for body in ({}, {"maxTrialCount": 0}, {"maxTrialCount": "many"}, {"color": "red"}):
        bad = client.patch(f"{EXPERIMENTS}/edit", json=body, headers=admin)
        assert bad.status_code == 422, body
    assert storage.get_experiment("default", "edit").spec.spec.parallel_trial_count == 2


def test_edit_budget_of_a_finished_experiment_follows_the_one_rule(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    """As `katib edit` and `edit_experiment_budget`: restart where resumePolicy allows it,
    else refuse (409) saying how to continue; never store counts that nothing runs."""
    finished(storage, "never")
    r = client.patch(f"{EXPERIMENTS}/never", json={"maxTrialCount": 9}, headers=admin)
    assert r.status_code == 409, r.text
    assert "resumePolicy Never" in r.json()["detail"]
    assert "resumePolicy: LongRunning" in r.json()["detail"]
    assert storage.get_experiment("default", "never").spec.spec.max_trial_count == 3
    finished(storage, "long", resumePolicy="LongRunning")
    small = client.patch(f"{EXPERIMENTS}/long", json={"maxTrialCount": 2}, headers=admin)
    assert small.status_code == 422
    r = client.patch(f"{EXPERIMENTS}/long", json={"maxTrialCount": 6}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["condition"] == "Restarting"
    assert storage.get_experiment("default", "long").spec.spec.max_trial_count == 6


def test_restart_rules(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    storage.create_experiment(parse_experiment(experiment_doc("running")))
    r = client.post(f"{EXPERIMENTS}/running/restart", json={"maxTrialCount": 9}, headers=admin)
    assert r.status_code == 409 and "has not finished" in r.json()["detail"]

    finished(storage, "never")  # resumePolicy defaults to Never
    r = client.post(f"{EXPERIMENTS}/never/restart", json={"maxTrialCount": 9}, headers=admin)
    assert r.status_code == 409 and "Never" in r.json()["detail"]

    finished(storage, "long", resumePolicy="LongRunning")
    small = client.post(f"{EXPERIMENTS}/long/restart", json={"maxTrialCount": 2}, headers=admin)
    assert small.status_code == 422
    assert small.json()["errors"][0]["path"] == "spec.maxTrialCount"
    r = client.post(
        f"{EXPERIMENTS}/long/restart",
        json={"maxTrialCount": 6, "parallelTrialCount": 1},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"]["condition"] == "Restarting"
    stored = storage.get_experiment("default", "long")
    assert stored.condition == ExperimentCondition.RESTARTING
    assert (stored.spec.spec.max_trial_count, stored.spec.spec.parallel_trial_count) == (6, 1)
    assert stored.completed_at is None


def test_archive_hides_from_lists(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    finished(storage, "old")
    storage.create_experiment(parse_experiment(experiment_doc("new")))
    refused = client.post(f"{EXPERIMENTS}/new/archive", headers=admin)
    assert refused.status_code == 409
    r = client.post(f"{EXPERIMENTS}/old/archive", headers=admin)
    assert r.status_code == 200 and r.json()["status"]["archived"] is True

    def names(query: str = "") -> list[str]:
        body = client.get(f"{EXPERIMENTS}{query}", headers=admin).json()
        return [e["metadata"]["name"] for e in body["items"]]

    assert names() == ["new"]
    assert names("?archived=true") == ["old"]
    assert client.get(f"{EXPERIMENTS}/old", headers=admin).json()["status"]["archived"] is True
    r = client.post(f"{EXPERIMENTS}/old/unarchive", headers=admin)
    assert r.status_code == 200 and r.json()["status"]["archived"] is False
    assert names() == ["old", "new"]


def test_responses_are_the_cli_json_shapes(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    from katib.controller import best_trial
    from katib.views import experiment_json

    finished(storage, "same")
    record = storage.get_experiment("default", "same")
    api = client.get(f"{EXPERIMENTS}/same", headers=admin).json()
    cli = json.loads(
        json.dumps(
            experiment_json(record, storage.count_trials(record.id), best_trial(storage, record))
        )
    )
    # The service adds what only it knows: archived, and whether anything still drives it.
    api["status"].pop("archived")
    assert api["status"].pop("interrupted") is False
    assert api == cli


def test_viewer_headers_work_for_reads(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    storage.create_experiment(parse_experiment(experiment_doc("seen")))
    r = client.get(f"{EXPERIMENTS}/seen", headers=bearer(tokens.viewer()))
    assert r.status_code == 200


def test_a_text_metric_is_served_as_text(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    # DARTS' trials report their objective as text (Best-Genotype=Genotype(...)).
    record = storage.create_experiment(parse_experiment(experiment_doc("genotype")))
    trial = storage.create_trial(record, {"x": "0.5"})
    genotype = "Genotype(normal=[[('skip_connection', 0)]], normal_concat=range(1, 2))"
    storage.finish_trial(
        trial.id,
        TrialResult(
            TrialState.SUCCEEDED, "TrialSucceeded", "", 1.0,
            metrics={"loss": MetricSummary.of_text("loss", genotype)},
        ),
    )
    r = client.get(f"/api/v1/namespaces/default/trials/{trial.name}", headers=admin)
    assert r.status_code == 200, r.text
    (metric,) = r.json()["status"]["observation"]["metrics"]
    assert metric == {"name": "loss", "min": None, "max": None, "latest": genotype}
    listed = client.get(f"{EXPERIMENTS}/genotype/trials", headers=admin)
    assert listed.status_code == 200, listed.text
