"""Trial endpoints: keyset pages (by creation and by objective), filters, get, logs, kill."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from katib.records import ExperimentRecord, MetricSummary, TrialResult, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from tests.katib.api.conftest import TestClient, Tokens, bearer, experiment_doc

EXPERIMENTS = "/api/v1/namespaces/default/experiments"
TRIALS = "/api/v1/namespaces/default/trials"


def experiment(storage: Storage, name: str = "exp") -> ExperimentRecord:
    return storage.create_experiment(parse_experiment(experiment_doc(name)))


def fill(storage: Storage, record: ExperimentRecord, count: int) -> dict[str, float | None]:
    """``count`` finished trials straight in the database: trial name → objective.

    Every seventh trial Failed without an objective; objectives repeat, to test ties.
    """
    rng = random.Random(7)
    out: dict[str, float | None] = {}
    for i in range(count):
        trial = storage.create_trial(record, {"x": str(i)})
        if i % 7 == 3:
            storage.finish_trial(trial.id, TrialResult(TrialState.FAILED, "Error", "", 1.0))
            out[trial.name] = None
            continue
        loss = round(rng.uniform(0, 1), 2)
        storage.finish_trial(
            trial.id,
            TrialResult(
                TrialState.SUCCEEDED, "TrialSucceeded", "", 1.0,
                objective=loss, metrics={"loss": MetricSummary("loss", loss, loss, loss)},
            ),
        )
        out[trial.name] = loss
    return out


def all_pages(client: TestClient, headers: dict[str, str], query: str, limit: int) -> list[str]:
    names: list[str] = []
    after = None
    while True:
        cursor = "" if after is None else f"&after={after}"
        body = client.get(f"{EXPERIMENTS}/exp/trials?limit={limit}{query}{cursor}", headers=headers)
        assert body.status_code == 200, body.text
        page = body.json()
        names += [t["metadata"]["name"] for t in page["items"]]
        if len(page["items"]) < limit:
            return names
        after = page["metadata"]["continue"]


def test_pages_by_creation_cover_every_trial_once(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    record = experiment(storage)
    trials = fill(storage, record, 350)
    created = list(trials)
    assert all_pages(client, admin, "", 100) == created
    assert all_pages(client, admin, "&sort=-created", 64) == created[::-1]


def test_pages_by_objective_are_sorted_with_missing_values_last(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    record = experiment(storage)
    trials = fill(storage, record, 300)
    order = list(trials)

    def key(descending: bool):  # type: ignore[no-untyped-def]
        def k(name: str) -> tuple[int, float, int]:
            value = trials[name]
            if value is None:
                return (1, 0.0, order.index(name))
            return (0, -value if descending else value, order.index(name))

        return k

    assert all_pages(client, admin, "&sort=objective", 45) == sorted(order, key=key(False))
    assert all_pages(client, admin, "&sort=-objective", 45) == sorted(order, key=key(True))


def test_incremental_fetch_returns_only_new_trials(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    record = experiment(storage)
    fill(storage, record, 5)
    first = client.get(f"{EXPERIMENTS}/exp/trials", headers=admin).json()
    cursor = first["metadata"]["continue"]
    assert len(first["items"]) == 5
    assert (
        client.get(f"{EXPERIMENTS}/exp/trials?after={cursor}", headers=admin).json()["items"] == []
    )
    new = storage.create_trial(record, {"x": "new"})
    later = client.get(f"{EXPERIMENTS}/exp/trials?after={cursor}", headers=admin).json()
    assert [t["metadata"]["name"] for t in later["items"]] == [new.name]
    assert later["items"][0]["status"]["condition"] == "Created"


def test_state_filter(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    record = experiment(storage)
    trials = fill(storage, record, 30)
    failed = [n for n, v in trials.items() if v is None]
    body = client.get(f"{EXPERIMENTS}/exp/trials?state=Failed", headers=admin).json()
    assert [t["metadata"]["name"] for t in body["items"]] == failed
    both = client.get(
        f"{EXPERIMENTS}/exp/trials?state=Failed&state=Succeeded&limit=500", headers=admin
    ).json()
    assert len(both["items"]) == 30


@pytest.mark.parametrize(
    "query", ["state=Sleeping", "sort=name", "limit=501", "limit=0", "after=x", "after=-5"]
)
def test_bad_trial_list_parameters(
    client: TestClient, admin: dict[str, str], storage: Storage, query: str
) -> None:
    experiment(storage)
    r = client.get(f"{EXPERIMENTS}/exp/trials?{query}", headers=admin)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


def test_objective_cursor_must_be_a_trial_of_the_experiment(
    client: TestClient, admin: dict[str, str], storage: Storage
) -> None:
    experiment(storage)
    other = experiment(storage, "other")
    stranger = storage.create_trial(other, {"x": "1"})
    r = client.get(f"{EXPERIMENTS}/exp/trials?sort=objective&after={stranger.id}", headers=admin)
    assert r.status_code == 404


def test_get_trial(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    record = experiment(storage)
    name = next(iter(fill(storage, record, 1)))
    body = client.get(f"{TRIALS}/{name}", headers=admin).json()
    assert body["kind"] == "Trial" and body["metadata"]["name"] == name
    assert body["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "exp"
    assert body["spec"]["parameterAssignments"] == [{"name": "x", "value": "0"}]
    assert body["status"]["condition"] == "Succeeded"
    missing = client.get(f"{TRIALS}/exp-nope", headers=admin)
    assert (
        missing.status_code == 404
        and missing.json()["detail"] == "trial default/exp-nope not found"
    )


def test_logs_and_tail(
    client: TestClient, admin: dict[str, str], storage: Storage, katib_home: Path
) -> None:
    record = experiment(storage)
    trial = storage.create_trial(record, {"x": "1"})
    url = f"{TRIALS}/{trial.name}/logs"
    assert client.get(url, headers=admin).status_code == 404  # no log yet
    folder = katib_home / "logs" / "default" / "exp"
    folder.mkdir(parents=True)
    lines = [f"line {i} " + "x" * (i % 50) for i in range(20000)]
    (folder / f"{trial.name}.log").write_text("\n".join(lines) + "\n")
    whole = client.get(url, headers=admin)
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("text/plain")
    assert whole.text.splitlines() == lines
    tail = client.get(f"{url}?tail=3", headers=admin)
    assert tail.text == "\n".join(lines[-3:]) + "\n"
    assert client.get(f"{url}?tail=0", headers=admin).text == ""
    assert client.get(f"{url}?tail=-1", headers=admin).status_code == 422


def test_logs_from_an_offset_are_the_bytes_as_written(
    client: TestClient, admin: dict[str, str], storage: Storage, katib_home: Path
) -> None:
    record = experiment(storage)
    trial = storage.create_trial(record, {"x": "1"})
    url = f"{TRIALS}/{trial.name}/logs"
    folder = katib_home / "logs" / "default" / "exp"
    folder.mkdir(parents=True)
    log = folder / f"{trial.name}.log"
    data = b"first\n\xff\xfe not utf-8\n"
    log.write_bytes(data)
    whole = client.get(url, headers=admin)
    assert whole.content == data and whole.headers["x-next-offset"] == str(len(data))
    rest = client.get(f"{url}?offset=6", headers=admin)
    assert rest.content == data[6:] and rest.headers["x-next-offset"] == str(len(data))
    with open(log, "ab") as f:
        f.write(b"more\n")
    more = client.get(f"{url}?offset={len(data)}", headers=admin)
    assert more.content == b"more\n"
    assert more.headers["x-next-offset"] == str(len(data) + 5)
    beyond = client.get(f"{url}?offset=10000", headers=admin)
    assert beyond.content == b"" and beyond.headers["x-next-offset"] == "10000"


def test_find_trials_by_name_in_visible_namespaces(
    client: TestClient, tokens: Tokens, storage: Storage
) -> None:
    record = experiment(storage)
    trial = storage.create_trial(record, {"x": "1"})
    r = client.get(f"/api/v1/trials?name={trial.name}", headers=bearer(tokens.admin))
    assert r.status_code == 200, r.text
    [found] = r.json()["items"]
    assert found["metadata"]["name"] == trial.name
    assert found["metadata"]["namespace"] == "default"
    assert found["metadata"]["labels"]["katib.kubeflow.org/experiment"] == "exp"
    other = bearer(tokens.viewer("team-b"))
    assert client.get(f"/api/v1/trials?name={trial.name}", headers=other).json()["items"] == []
    viewer = bearer(tokens.viewer("default"))
    assert len(client.get(f"/api/v1/trials?name={trial.name}", headers=viewer).json()["items"]) == 1
    assert client.get("/api/v1/trials", headers=viewer).status_code == 422


def test_kill(client: TestClient, admin: dict[str, str], storage: Storage) -> None:
    record = experiment(storage)
    done = next(iter(fill(storage, record, 1)))
    assert client.post(f"{TRIALS}/{done}/kill", headers=admin).status_code == 409
    waiting = storage.create_trial(record, {"x": "1"})
    # Nobody runs the experiment: the trial is recorded Killed at once.
    r = client.post(f"{TRIALS}/{waiting.name}/kill", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["condition"] == "Killed"
    assert r.json()["status"]["reason"] == "KilledByUser"
    assert storage.get_trial("default", waiting.name).state == TrialState.KILLED
    assert client.post(f"{TRIALS}/exp-nope/kill", headers=admin).status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/trials?name=a%00b", f"{TRIALS}/exp-%00", "{EXP}/ex%00p"])
def test_a_nul_character_in_a_name_is_the_callers_error(
    client: TestClient, admin: dict[str, str], storage: Storage, path: str
) -> None:
    """PostgreSQL refuses NUL in text; the answer is a 4xx problem naming it, never a 503."""
    experiment(storage)
    r = client.get(path.replace("{EXP}", EXPERIMENTS), headers=admin)
    assert r.status_code in (200, 400, 404), r.text  # a list is empty; a name is not found
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json"
    if r.status_code == 400:
        assert "NUL" in r.json()["detail"]
    # Nothing was lost: the experiment is still there.
    assert client.get(f"{EXPERIMENTS}/exp", headers=admin).status_code == 200
