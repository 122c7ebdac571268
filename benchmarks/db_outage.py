"""A database outage during a run: PostgreSQL stopped for 30 s while `katib run` works.

Runs an experiment of 40 short trials (parallelTrialCount 4) on the PostgreSQL that
``.ci/postgres.sh`` prepares, stops the server (``pg_ctlcluster ... stop -m fast``) a few
seconds in, starts it again after ``--outage`` seconds, and checks what the run stored: every
trial finished, each with all of its metric points, none Running, none lost. Needs root (it
stops the machine's PostgreSQL) and shares nothing with the tests.

    python benchmarks/db_outage.py [--outage 30] [--trials 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import yaml

URL = os.environ.get(
    "KATIB_TEST_POSTGRES_URL", "postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test"
)
TRIAL = """
import sys, time
x = float(sys.argv[1])
for step in range(4):
    print(f"loss={x + 1 / (step + 1)}", flush=True)
    time.sleep(0.5)
"""


def cluster() -> tuple[str, str]:
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v))[-1]
    return version, "main"


def pg(action: str) -> None:
    version, name = cluster()
    args = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action]
    if action == "stop":
        args += ["-m", "fast"]
    subprocess.run(args, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    schema = f"outage_{uuid.uuid4().hex[:8]}"
    plain = URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = f"{URL}?options=-csearch_path%3D{schema}"
    folder = Path(tempfile.mkdtemp(prefix="katib-outage-"))
    (folder / "trial.py").write_text(TRIAL)
    exp = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "outage"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 4, "maxTrialCount": args.trials,
            "parameters": [{"name": "x", "parameterType": "double",
                            "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                    "spec": {"containers": [{"name": "main", "image": "python",
                                             "command": ["python3", "trial.py",
                                                         "${trialParameters.x}"]}],
                             "restartPolicy": "Never"}}}},
            },
        },
    }
    (folder / "exp.yaml").write_text(yaml.safe_dump(exp))
    env = dict(os.environ, KATIB_HOME=str(folder / "home"))
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "katib", "run", "exp.yaml", "--db", db, "-q"],
        cwd=folder, env=env, stderr=open(folder / "run.log", "wb"),  # noqa: SIM115
    )
    time.sleep(6)
    pg("stop")
    stopped_at = time.monotonic() - started
    time.sleep(args.outage)
    pg("start")
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0:
            break
        time.sleep(0.5)
    code = run.wait(timeout=900)
    took = time.monotonic() - started
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        states = dict(conn.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
        points = conn.execute(
            "SELECT t.name, count(o.id) FROM trials t LEFT JOIN observation_logs o "
            "ON o.trial_id = t.id AND o.metric_name = 'loss' GROUP BY t.name"
        ).fetchall()
        condition = conn.execute("SELECT condition FROM experiments").fetchone()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    short = {name: n for name, n in points if n != 4}
    result = {
        "outage_s": args.outage, "stopped_after_s": round(stopped_at, 1),
        "exit_code": code, "condition": condition[0] if condition else None,
        "trial_states": states, "trials_missing_points": short,
        "trials_lost": args.trials - states.get("Succeeded", 0), "run_s": round(took, 1),
    }
    print(json.dumps(result, indent=2))
    return 0 if code == 0 and not short and result["trials_lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
