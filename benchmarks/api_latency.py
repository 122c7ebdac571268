"""REST API latency of trial pages at 10,000 trials, and batched metric push throughput.

    python benchmarks/api_latency.py [--trials 10000] [--requests 300] [--points 50000]
        [--batch 500] [--postgres postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test]

For each database (a SQLite file in WAL mode; PostgreSQL in a schema of its own, dropped
afterwards) this starts ``katib server`` as a separate process on loopback, inserts one
experiment with ``--trials`` finished trials straight into the database, then measures from
an HTTP client (httpx, one keep-alive connection per client):

* ``page``: ``GET .../experiments/{name}/trials?limit=100&after=<cursor>`` at random cursors
  (sorted by creation, and by objective value), p50 and p99 of the wall time per request;
* ``push``: ``POST .../trials/{trial}/observations`` with batches of ``--batch`` points from
  one client, then from four clients at once; points stored per second.

Each row also gives the server process's CPU time per request (user + system), which a
machine loaded by other work disturbs much less than wall times.

Targets: p50 <= 30 ms for a 100-row page, >= 5,000 points/s pushed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import insert

from katib.records import ExperimentCondition, TrialState
from katib.spec import parse_experiment
from katib.storage import Storage
from katib.storage._schema import TrialRow

REPO = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-admin-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
NAMESPACE = "bench"
EXPERIMENT = "latency"


def experiment_doc() -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": EXPERIMENT, "namespace": NAMESPACE},
        "spec": {
            "objective": {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["accuracy"],
            },
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 20000,
            "parallelTrialCount": 4,
            "parameters": [
                {
                    "name": "lr",
                    "parameterType": "double",
                    "feasibleSpace": {"min": "0.0001", "max": "0.1"},
                },
                {
                    "name": "layers",
                    "parameterType": "int",
                    "feasibleSpace": {"min": "1", "max": "8"},
                },
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [
                    {"name": "lr", "reference": "lr"},
                    {"name": "layers", "reference": "layers"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "main",
                                        "image": "python:3.11",
                                        "command": [
                                            "python3",
                                            "train.py",
                                            "--lr=${trialParameters.lr}",
                                            "--layers=${trialParameters.layers}",
                                        ],
                                    }
                                ],
                            }
                        }
                    },
                },
            },
        },
    }


def populate(storage: Storage, trials: int) -> tuple[str, dict[str, list[int]]]:
    """The experiment (Succeeded, so the server's controller leaves it alone) with
    ``trials`` finished trials; returns a Running trial's name and the trial ids in each
    order that is measured."""
    record = storage.create_experiment(parse_experiment(experiment_doc()))
    rng = random.Random(1)
    now = time.time()
    rows = []
    for i in range(trials):
        loss, acc = rng.random(), rng.random()
        rows.append(
            {
                "experiment_id": record.id,
                "namespace": NAMESPACE,
                "name": f"{EXPERIMENT}-{i:08d}",
                "assignments": {
                    "lr": f"{rng.uniform(1e-4, 0.1):.6f}",
                    "layers": str(rng.randint(1, 8)),
                },
                "state": TrialState.SUCCEEDED.value,
                "reason": "TrialSucceeded",
                "message": "Trial has succeeded",
                "created_at": now + i,
                "started_at": now + i,
                "completed_at": now + i + 30,
                "exit_code": 0,
                "pid": None,
                "objective": loss,
                "metrics": {
                    "loss": {"name": "loss", "min": loss, "max": loss + 0.5, "latest": loss},
                    "accuracy": {"name": "accuracy", "min": acc, "max": acc, "latest": acc},
                },
                "labels": {"katib.kubeflow.org/experiment": EXPERIMENT},
            }
        )
    with storage.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(TrialRow), rows[start : start + 1000])
    storage.update_experiment(record.id, condition=ExperimentCondition.SUCCEEDED)
    live = storage.create_trial(record, {"lr": "0.01", "layers": "2"})
    storage.start_trial(live.id, started_at=time.time())
    orders = {
        sort: [t.id for t in storage.list_trials_page(record.id, sort=sort, limit=trials + 10)]
        for sort in ("created", "objective")
    }
    return live.name, orders


@contextmanager
def server(db_url: str, home: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``katib server`` on a free loopback port; yields its URL and process."""
    env = dict(
        os.environ,
        KATIB_HOME=str(home),
        KATIB_ADMIN_TOKEN=TOKEN,
        KATIB_DB=db_url,
        PYTHONPATH=str(REPO),
    )
    log = open(home / "server.log", "w+b")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "katib", "server", "--port", "0"],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = ""
        deadline = time.monotonic() + 30
        while not url:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((home / "server.log").read_text())
            found = re.search(rb"listening on (http://\S+)", (home / "server.log").read_bytes())
            url = found.group(1).decode() if found else ""
            time.sleep(0.05)
        while httpx.get(f"{url}/readyz").status_code != 200:
            time.sleep(0.05)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_pages(url: str, ids: list[int], sort: str, requests: int) -> tuple[float, float]:
    path = f"{url}/api/v1/namespaces/{NAMESPACE}/experiments/{EXPERIMENT}/trials"
    rng = random.Random(2)
    times = []
    with httpx.Client(headers=HEADERS) as client:
        for i in range(requests + 20):
            after = rng.choice(ids[: len(ids) - 100])
            start = time.perf_counter()
            r = client.get(path, params={"limit": 100, "after": after, "sort": sort})
            elapsed = time.perf_counter() - start
            assert r.status_code == 200 and len(r.json()["items"]) == 100, r.text[:500]
            if i >= 20:  # the first requests warm caches and connections
                times.append(elapsed * 1000)
    return statistics.median(times), percentile(times, 0.99)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def bench_push(url: str, trial: str, points: int, batch: int, clients: int) -> tuple[float, int]:
    """Points stored per second, and the number of requests sent."""
    path = f"{url}/api/v1/namespaces/{NAMESPACE}/trials/{trial}/observations"
    now = time.time()
    body = json.dumps(
        {
            "observations": [
                {"name": "loss", "value": j / batch, "step": j, "timestamp": now}
                for j in range(batch)
            ]
        }
    ).encode()
    per_client = points // batch // clients

    def push() -> None:
        with httpx.Client(headers={**HEADERS, "Content-Type": "application/json"}) as client:
            for _ in range(per_client):
                r = client.post(path, content=body)
                assert r.status_code == 200, r.text

    threads = [threading.Thread(target=push) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return per_client * clients * batch / elapsed, per_client * clients


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    import psycopg

    admin = url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"katib_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def run(label: str, db_url: str, home: Path, args: argparse.Namespace) -> list[tuple[Any, ...]]:
    storage = Storage.open(db_url)
    trial, orders = populate(storage, args.trials)
    storage.close()
    rows: list[tuple[Any, ...]] = []
    with server(db_url, home) as (url, process):
        for sort in ("created", "objective"):
            before = cpu_seconds(process)
            p50, p99 = bench_pages(url, orders[sort], sort, args.requests)
            cpu = (cpu_seconds(process) - before) / (args.requests + 20) * 1000
            rows.append(
                (
                    label,
                    f"page of 100, sort={sort}",
                    f"{p50:.1f}",
                    f"{p99:.1f}",
                    f"{cpu:.1f}",
                    "",
                    "yes" if p50 <= 30 else "no",
                )
            )
        for clients in (1, 4):
            before = cpu_seconds(process)
            rate, batches = bench_push(url, trial, args.points, args.batch, clients)
            cpu = (cpu_seconds(process) - before) / batches * 1000
            rows.append(
                (
                    label,
                    f"push, {args.batch}/batch, {clients} client(s)",
                    "",
                    "",
                    f"{cpu:.1f}",
                    f"{rate:,.0f}",
                    "yes" if rate >= 5000 else "no",
                )
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test",
        help="PostgreSQL URL ('' to skip).",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "sqlite"
        home.mkdir()
        rows += run("SQLite (WAL)", f"sqlite:///{home / 'katib.db'}", home, args)
        if args.postgres:
            home = Path(tmp) / "postgres"
            home.mkdir()
            with postgres_schema(args.postgres) as url:
                rows += run("PostgreSQL", url, home, args)
    print(
        f"\n{args.trials:,} trials; {args.requests} page requests per row; "
        f"{args.points:,} points pushed per push row\n"
    )
    print(
        "| database | request | p50 ms | p99 ms | server CPU ms/request | points/s | meets target |"
    )
    print("|---|---|---:|---:|---:|---:|:---:|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
