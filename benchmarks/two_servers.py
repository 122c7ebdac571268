"""Two `katib server` processes on one PostgreSQL: duplicate launches and takeover time.

Creates 20 experiments of 50 trials each (1,000 trials, parallelTrialCount 3) through the
first server while a second one serves the same database; each trial appends its name to a
shared file when it starts. Halfway, the first server is killed with SIGKILL. Reports:
duplicate launches (a trial started twice other than the reruns of trials the dead server
left running, which the survivor reports in ControllerGone events), how long until the
survivor owned every experiment the dead one had, and the wall time.

    python benchmarks/two_servers.py [--experiments 20] [--trials 50] [--no-kill]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import yaml

URL = os.environ.get(
    "KATIB_TEST_POSTGRES_URL", "postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test"
)
TOKEN = "bench-admin-token-0123456789abcdef"
TRIAL = """
import os, sys, time
with open(os.environ["LAUNCHES"], "a") as f:
    f.write(os.environ["KATIB_TRIAL_NAME"] + "\\n")
time.sleep(0.2)
print(f"loss={float(sys.argv[1])}")
"""


def experiment(name: str, trials: int) -> dict[str, object]:
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 3, "maxTrialCount": trials,
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


def start(folder: Path, db: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "katib", "server", "--port", str(port), "--db", db],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("a server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=20)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--no-kill", action="store_true")
    args = ap.parse_args()
    schema = f"two_{uuid.uuid4().hex[:8]}"
    plain = URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    db = f"{URL}?options=-csearch_path%3D{schema}"
    folder = Path(tempfile.mkdtemp(prefix="katib-two-"))
    (folder / "trial.py").write_text(TRIAL)
    launches = folder / "launches.txt"
    env = dict(os.environ, KATIB_HOME=str(folder / "home"), KATIB_ADMIN_TOKEN=TOKEN,
               LAUNCHES=str(launches))
    first, url = start(folder, db, env)
    second, _ = start(folder, db, env)
    began = time.monotonic()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"}
    for i in range(args.experiments):
        r = httpx.post(f"{url}/api/v1/namespaces/default/experiments", headers=headers,
                       content=yaml.safe_dump(experiment(f"two-{i}", args.trials)).encode(),
                       params={"sourceDir": str(folder)}, timeout=30)
        assert r.status_code == 201, r.text
    total = args.experiments * args.trials
    takeover = None

    def query(sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            return conn.execute(sql).fetchall()

    killed = args.no_kill
    while True:
        done = query("SELECT count(*) FROM trials WHERE state = 'Succeeded'")[0][0]
        if not killed and done >= total // 2:
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
            killed = True
            dead = f":{first.pid}:"
        if killed and not args.no_kill and takeover is None:
            owners = [o for (o,) in query("SELECT owner FROM experiments WHERE owner IS NOT NULL")]
            unfinished = query("SELECT count(*) FROM experiments WHERE condition IN "
                               "('Created', 'Running', 'Restarting')")[0][0]
            if not any(dead in o for o in owners) and (owners or not unfinished):
                takeover = time.monotonic() - killed_at
        finished = query("SELECT count(*) FROM experiments WHERE condition IN "
                         "('Succeeded', 'Failed')")[0][0]
        if finished == args.experiments:
            break
        time.sleep(0.2)
    took = time.monotonic() - began
    reported = " ".join(m for (m,) in query(
        "SELECT message FROM events WHERE reason = 'ControllerGone'"))
    counts = Counter(launches.read_text().split())
    twice = [name for name, n in counts.items() if n > 1]
    duplicates = [name for name in twice if name not in reported]
    states = dict(query("SELECT state, count(*) FROM trials GROUP BY state"))
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    print(json.dumps({
        "trials": total, "launches": sum(counts.values()), "reruns_reported": len(twice),
        "duplicate_launches": len(duplicates), "takeover_s": None if takeover is None
        else round(takeover, 2), "trial_states": states, "wall_s": round(took, 1),
    }, indent=2))
    return 0 if not duplicates else 1


if __name__ == "__main__":
    sys.exit(main())
