"""Observation points stored per second: direct batched writes and the push path, per database.

    python benchmarks/storage_ingestion.py [--points 50000] [--batch 500] [--repeat 3]
        [--postgres postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test]

* ``store``: ``Storage.add_observations`` in batches (what the controller does with the points
  a running trial reported since the last batch).
* ``push``: a client posting batches to the loopback push endpoint of ``katib run``
  (``katib._push.push_observations``), the controller thread storing what arrives — the whole
  path of ``katib.report_metrics`` / ``python -m trial_runner``.

Prints a markdown table: median points/s over the repetitions. Target: >= 5,000 points/s
stored.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from katib.controller._push_server import PushServer
from katib.spec import Experiment
from katib.storage import ObservationPoint, Storage
from trial_runner import MetricsReported, Observation


def _experiment() -> Experiment:
    return Experiment.model_validate({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": f"bench-{uuid.uuid4().hex[:6]}"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                 "algorithm": {"algorithmName": "random"}},
    }).with_defaults()


def bench_store(storage: Storage, points: int, batch: int) -> float:
    record = storage.create_experiment(_experiment())
    trial = storage.create_trial(record, {"x": "1"})
    now = time.time()
    batches = [
        [ObservationPoint("loss", float(i + j), i + j, now) for j in range(batch)]
        for i in range(0, points, batch)
    ]
    start = time.perf_counter()
    for chunk in batches:
        storage.add_observations(trial.id, chunk)
    return points / (time.perf_counter() - start)


def bench_push(storage: Storage, points: int, batch: int) -> float:
    from katib import push_observations

    record = storage.create_experiment(_experiment())
    trial = storage.create_trial(record, {"x": "1"})
    events: queue.Queue[MetricsReported | None] = queue.Queue()

    def deliver(namespace: str, name: str, observations: list[Observation]) -> bool:
        if name != trial.name:
            return False
        events.put(MetricsReported(name, observations))
        return True

    server = PushServer(deliver)
    url = server.start()
    stored = 0

    def consume() -> None:
        nonlocal stored
        while (event := events.get()) is not None:
            assert isinstance(event, MetricsReported)
            now = time.time()
            storage.add_observations(trial.id, [
                ObservationPoint(o.name, o.value, o.step, o.timestamp or now)
                for o in event.observations
            ])
            stored += len(event.observations)

    consumer = threading.Thread(target=consume)
    consumer.start()
    body = [{"name": "loss", "value": float(j), "step": j, "timestamp": None}
            for j in range(batch)]
    start = time.perf_counter()
    for _ in range(points // batch):
        push_observations(body, url=url, namespace="default", trial=trial.name,
                          token=server.token)
    while stored < (points // batch) * batch:
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    events.put(None)
    consumer.join()
    server.stop()
    return stored / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default="postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        databases = {"SQLite (WAL)": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if args.postgres:
            databases["PostgreSQL"] = args.postgres
        rows = []
        for label, url in databases.items():
            storage = Storage.open(url)
            for name, bench in (("store", bench_store), ("push", bench_push)):
                rates = [bench(storage, args.points, args.batch) for _ in range(args.repeat)]
                rows.append((label, name, statistics.median(rates), min(rates), max(rates)))
            storage.close()
    print(f"\n{args.points} points in batches of {args.batch}, median of {args.repeat}\n")
    print("| database | path | points/s (median) | min | max | >= 5,000/s |")
    print("|---|---|---:|---:|---:|:---:|")
    for label, name, median, low, high in rows:
        ok = "yes" if median >= 5000 else "no"
        print(f"| {label} | {name} | {median:,.0f} | {low:,.0f} | {high:,.0f} | {ok} |")


if __name__ == "__main__":
    main()
