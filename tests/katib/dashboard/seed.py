"""Finished experiments written straight into a database, for dashboard tests and benchmarks.

The experiment is created through :class:`~katib.storage.Storage` and marked Succeeded; its
trials, observation logs and events are bulk-inserted rows (10,000 trials take about a
second), as if a controller had run them.
"""

from __future__ import annotations

import math
import random
import secrets
import string
from typing import Any

from sqlalchemy import MetaData, insert, update

from katib.records import ExperimentCondition
from katib.spec import parse_experiment
from katib.storage import Storage

ALPHABET = string.ascii_lowercase + string.digits


def branin(x1: float, x2: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    return a * (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def spec(name: str, *, algorithm: str = "random", max_trials: int = 10_000, parallel: int = 4,
         namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "objective": {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["accuracy"],
            },
            "algorithm": {"algorithmName": algorithm},
            "parallelTrialCount": parallel,
            "maxTrialCount": max_trials,
            "maxFailedTrialCount": max_trials,
            "parameters": [
                {"name": "x1", "parameterType": "double",
                 "feasibleSpace": {"min": "-5", "max": "10"}},
                {"name": "x2", "parameterType": "double",
                 "feasibleSpace": {"min": "0", "max": "15"}},
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}},
                {"name": "optimizer", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["adam", "sgd", "rmsprop"]}},
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": n, "reference": n}
                                    for n in ("x1", "x2", "lr", "optimizer")],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                        "name": "main", "image": "python:3.11", "command": ["python3", "t.py"],
                        "args": ["${trialParameters.x1}", "${trialParameters.x2}",
                                 "${trialParameters.lr}", "${trialParameters.optimizer}"],
                    }]}}},
                },
            },
        },
    }


def trial_row(experiment_id: int, namespace: str, name: str, rng: random.Random, t: float,
              *, state: str | None = None) -> dict[str, Any]:
    """One finished trial's row (Succeeded, or Failed one time in 50)."""
    x1, x2 = rng.uniform(-5, 10), rng.uniform(0, 15)
    lr = 10 ** rng.uniform(-4, -1)
    opt = rng.choice(["adam", "sgd", "rmsprop"])
    loss = branin(x1, x2) + {"adam": 0.0, "sgd": 2.0, "rmsprop": 1.0}[opt] + abs(math.log10(lr) + 2)
    failed = state == "Failed" or (state is None and rng.random() < 0.02)
    acc = 1 / (1 + loss)
    return {
        "experiment_id": experiment_id,
        "namespace": namespace,
        "name": f"{name}-{''.join(rng.choice(ALPHABET) for _ in range(8))}",
        "assignments": {"x1": repr(x1), "x2": repr(x2), "lr": repr(lr), "optimizer": opt},
        "state": "Failed" if failed else (state or "Succeeded"),
        "reason": "TrialFailed" if failed else "TrialSucceeded",
        "message": "exit code 1" if failed else "Trial has succeeded",
        "created_at": t,
        "started_at": t + 0.01,
        "completed_at": None if state == "Running" else t + 0.5 + rng.random(),
        "exit_code": 1 if failed else 0,
        "pid": None,
        "objective": None if failed or state == "Running" else loss,
        "metrics": {} if failed or state == "Running" else {
            "loss": {"min": loss, "max": loss * 1.5, "latest": loss},
            "accuracy": {"min": acc * 0.8, "max": acc, "latest": acc},
        },
        "labels": {},
    }


def seed(storage: Storage, name: str, trials: int, *, seed: int = 0, namespace: str = "default",
         algorithm: str = "random", curves: int = 100) -> int:
    """A Succeeded experiment with ``trials`` finished trials; returns its id.

    The first ``curves`` trials also get an observation log of 10 steps of each metric.
    """
    record = storage.create_experiment(
        parse_experiment(spec(name, algorithm=algorithm, max_trials=max(trials, 1),
                              namespace=namespace))
    )
    rng = random.Random(seed)
    t0 = record.created_at
    rows = [trial_row(record.id, namespace, name, rng, t0 + i * 0.25) for i in range(trials)]
    meta = MetaData()
    meta.reflect(storage.engine, only=["experiments", "trials", "observation_logs", "events"])
    with storage.engine.begin() as conn:
        if rows:
            conn.execute(insert(meta.tables["trials"]), rows)
        ids = [r[0] for r in conn.exec_driver_sql(
            "SELECT id FROM trials WHERE experiment_id = ? ORDER BY id" if
            storage.engine.dialect.name == "sqlite" else
            "SELECT id FROM trials WHERE experiment_id = %s ORDER BY id", (record.id,)).all()]
        points = []
        for trial_id, row in list(zip(ids, rows, strict=True))[:curves]:
            if row["objective"] is None:
                continue
            for step in range(10):
                for metric in ("loss", "accuracy"):
                    final = row["metrics"][metric]["latest"]
                    scale = 1 + (9 - step) / 5 if metric == "loss" else (step + 1) / 10
                    value = final * scale
                    points.append({"trial_id": trial_id, "metric_name": metric, "value": value,
                                   "step": step, "timestamp": row["started_at"] + step * 0.05})
        if points:
            conn.execute(insert(meta.tables["observation_logs"]), points)
        conn.execute(insert(meta.tables["events"]), [{
            "experiment_id": record.id, "trial_name": None, "type": "Normal",
            "reason": "ExperimentSucceeded", "message": "seeded", "created_at": t0 + trials * 0.25,
        }])
        experiments = meta.tables["experiments"]
        conn.execute(
            update(experiments)
            .where(experiments.c.id == record.id)
            .values(condition=ExperimentCondition.SUCCEEDED.value, started_at=t0,
                    completed_at=t0 + trials * 0.25 + 1)
        )
    return record.id


def new_suffix() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(8))


def set_row(storage: Storage, table: str, row_id: int, **values: Any) -> None:
    """Set columns of one row as a controller would have (tests drive states this way, below
    the storage's typed writers)."""
    meta = MetaData()
    meta.reflect(storage.engine, only=[table])
    rows = meta.tables[table]
    with storage.engine.begin() as conn:
        conn.execute(update(rows).where(rows.c.id == row_id).values(**values))
