"""Reading a whole experiment of 10,000 trials: on the database, through a server, and Optuna.

    python benchmarks/remote_listing.py [--trials 10000] [--reps 5]
        [--postgres postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test]

What the CLI (``katib get trials NAME -o json``) and the SDK (``list_trials``) do in each mode,
timed side by side in one run, for each database (SQLite in WAL mode; PostgreSQL in a schema of
its own, dropped afterwards):

* ``database``: ``LocalBackend.list_trials``: one query, every trial as Katib JSON;
* ``server``: ``RemoteBackend.list_trials`` against ``katib server`` (a separate process on
  loopback): pages of 500 following the ``after`` cursor, JSON over HTTP;
* ``optuna``: the peer: ``optuna.load_study(...).get_trials(deepcopy=False)`` of a study with
  the same number of finished trials (two parameters, one value, one intermediate value) in
  Optuna's RDB storage on the same kind of database;
* ``katib get trials -o json``: the whole command as a user runs it, ``--db`` and ``--server``.

Medians of ``--reps`` runs; ratios are against the database backend's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_latency import (  # noqa: E402 - the benchmark next door populates and serves
    EXPERIMENT,
    NAMESPACE,
    TOKEN,
    populate,
    postgres_schema,
    server,
)

from katib.client import LocalBackend, RemoteBackend  # noqa: E402
from katib.storage import Storage  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def median_seconds(func: Callable[[], Any], reps: int) -> float:
    func()  # warm caches and connections
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def optuna_study(url: str, trials: int) -> Callable[[], Any]:
    """A study of ``trials`` finished trials; returns a reader of all of them."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="listing")
    distributions = {
        "lr": FloatDistribution(1e-4, 0.1, log=True),
        "layers": IntDistribution(1, 8),
    }
    batch = []
    for i in range(trials):
        batch.append(
            create_trial(
                params={"lr": 1e-3 + i * 1e-6, "layers": 1 + i % 8},
                distributions=distributions,
                value=i / trials,
                intermediate_values={0: i / trials},
                state=TrialState.COMPLETE,
            )
        )
    study.add_trials(batch)

    def read() -> int:
        loaded = optuna.load_study(study_name="listing", storage=url)
        return len(loaded.get_trials(deepcopy=False))

    assert read() == trials
    return read


def command_seconds(args: list[str], env: dict[str, str], reps: int) -> float:
    def run() -> None:
        subprocess.run(
            [sys.executable, "-m", "katib", *args], env=env, check=True, capture_output=True
        )

    return median_seconds(run, reps)


def bench(
    label: str, db_url: str, optuna_url: str, home: Path, args: argparse.Namespace
) -> list[str]:
    storage = Storage.open(db_url)
    populate(storage, args.trials)
    local = LocalBackend(storage)
    expected = args.trials + 1  # populate() adds one Running trial
    assert len(local.list_trials(NAMESPACE, EXPERIMENT)) == expected
    rows = []
    t_local = median_seconds(lambda: local.list_trials(NAMESPACE, EXPERIMENT), args.reps)
    env = dict(os.environ, KATIB_HOME=str(home), PYTHONPATH=str(REPO))
    env.pop("KATIB_SERVER", None)
    env.pop("KATIB_TOKEN", None)
    with server(db_url, home) as (url, _process):
        remote = RemoteBackend(url, TOKEN)
        assert len(remote.list_trials(NAMESPACE, EXPERIMENT)) == expected
        t_remote = median_seconds(lambda: remote.list_trials(NAMESPACE, EXPERIMENT), args.reps)
        remote.close()
        get = ["get", "trials", EXPERIMENT, "-n", NAMESPACE, "-o", "json"]
        t_cmd_db = command_seconds([*get, "--db", db_url], env, max(3, args.reps // 2))
        t_cmd_server = command_seconds(
            [*get, "--server", url, "--token", TOKEN], env, max(3, args.reps // 2)
        )
    storage.close()
    read_optuna = optuna_study(optuna_url, args.trials)
    t_optuna = median_seconds(read_optuna, args.reps)
    for what, seconds in (
        ("database (LocalBackend.list_trials)", t_local),
        ("server (RemoteBackend.list_trials, pages of 500)", t_remote),
        ("optuna load_study().get_trials()", t_optuna),
        ("`katib get trials -o json --db`", t_cmd_db),
        ("`katib get trials -o json --server`", t_cmd_server),
    ):
        rows.append(f"| {label} | {what} | {seconds * 1000:,.0f} | {seconds / t_local:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
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
        rows += bench(
            "SQLite (WAL)",
            f"sqlite:///{home / 'katib.db'}",
            f"sqlite:///{home / 'optuna.db'}",
            home,
            args,
        )
        if args.postgres:
            home = Path(tmp) / "postgres"
            home.mkdir()
            with postgres_schema(args.postgres) as ours, postgres_schema(args.postgres) as theirs:
                rows += bench("PostgreSQL", ours, theirs, home, args)
    print(f"{args.trials:,} finished trials, median of {args.reps} runs\n")
    print("| database | what | ms | ratio to database backend |")
    print("|---|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
