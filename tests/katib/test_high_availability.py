"""Two ``katib server`` processes on one database; SQLite readers during a run.

Both servers scan the same database for experiments to drive. Ownership of an experiment is
a lease (the ``owner`` column, claimed with a conditional UPDATE, renewed by heartbeats), so
exactly one server drives each experiment. When one server is killed with SIGKILL, the other
sees its owner gone (on this host: its pid; elsewhere: a heartbeat older than 30 s) and takes
its experiments over at its next scan; the trials the dead one left running are stopped, run
again, and named in a ``ControllerGone`` event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml

from katib.records import ExperimentCondition, TrialState
from katib.storage import Storage
from tests.katib.api.test_server import HEADERS, TOKEN, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Records each launch (name, pid, start and end time, the launching server's pid) in a shared
# file, one line each.
TRIAL = """
import os, sys, time
name = os.environ["KATIB_TRIAL_NAME"]
start, parent = time.time(), os.getppid()
time.sleep(0.4)
with open(os.environ["LAUNCHES"], "a") as f:
    f.write(f"{name} {os.getpid()} {start} {time.time()} {parent}\\n")
print(f"loss={float(sys.argv[1])}")
"""


def doc(name: str, trials: int) -> dict[str, object]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": 2,
            "maxTrialCount": trials,
            "parameters": [{"name": "x", "parameterType": "double",
                            "feasibleSpace": {"min": "0", "max": "1"}}],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {
                    "spec": {"containers": [{
                        "name": "main", "image": "python:3.11",
                        "command": ["python3", "trial.py", "${trialParameters.x}"],
                    }], "restartPolicy": "Never"}}}},
            },
        },
    }


class Servers:
    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.folder = tmp_path / "project"
        self.folder.mkdir()
        (self.folder / "trial.py").write_text(TRIAL)
        self.launches = tmp_path / "launches.txt"
        self.db_url = db_url
        self.home = tmp_path / "home"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> str:
        port = free_port()
        env = dict(os.environ, KATIB_HOME=str(self.home), KATIB_ADMIN_TOKEN=TOKEN,
                   PYTHONPATH=str(REPO), LAUNCHES=str(self.launches))
        log = open(self.folder / f"server-{port}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "katib", "server", "--port", str(port), "--db", self.db_url],
            cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("a server did not start")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            for log in sorted(self.folder.glob("server-*.log"))
        )

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def create(url: str, name: str, trials: int, folder: Path) -> None:
    r = httpx.post(
        f"{url}/api/v1/namespaces/default/experiments",
        content=yaml.safe_dump(doc(name, trials)).encode(),
        headers={**HEADERS, "Content-Type": "application/yaml"},
        params={"sourceDir": str(folder)}, timeout=30,
    )
    assert r.status_code == 201, r.text


def test_of_two_servers_one_takes_over_from_a_killed_one(
    tmp_path: Path, db_url: str
) -> None:
    servers = Servers(tmp_path, db_url)
    names = [f"ha-{i}" for i in range(4)]
    try:
        a = servers.start()
        b = servers.start()
        urls = dict(zip(servers.procs, (a, b), strict=True))
        for name in names:
            create(a, name, 8, servers.folder)
        storage = Storage.open(db_url)
        # Let the servers take experiments and run a few trials, then kill one that owns an
        # unfinished experiment (which server takes which is a race: either may take all).
        deadline = time.monotonic() + 120
        while True:
            records = storage.list_experiments()
            active = [r.owner for r in records if r.owner and not r.condition.is_finished]
            done = sum(storage.count_trials(r.id).get(TrialState.SUCCEEDED, 0) for r in records)
            if active and done >= 4:
                break
            assert time.monotonic() < deadline, f"no server took the work: {records}"
            time.sleep(0.1)
        victim = next(p for p in servers.procs if any(f":{p.pid}:" in o for o in active))
        survivor = urls[next(p for p in servers.procs if p is not victim)]
        dead_prefix = f":{victim.pid}:"
        victim.kill()
        victim.wait()
        killed_at = time.monotonic()
        killed_wall = time.time()
        taken_over_after = None
        deadline = time.monotonic() + 180
        while True:
            records = storage.list_experiments()
            # Taken over: no unfinished experiment is left to the dead server (one it finished
            # as it was killed may keep its name).
            if taken_over_after is None and not any(
                r.owner and dead_prefix in r.owner and not r.condition.is_finished
                for r in records
            ):
                taken_over_after = time.monotonic() - killed_at
            if all(r.condition.is_finished for r in records):
                break
            assert time.monotonic() < deadline, (
                "the surviving server did not finish the work: "
                f"{[(r.name, r.owner, r.condition, storage.count_trials(r.id)) for r in records]}"
                f"\n{servers.logs()}"
            )
            time.sleep(0.2)
        assert httpx.get(f"{survivor}/readyz", timeout=5).status_code == 200
        assert taken_over_after is not None and taken_over_after < 15

        records = storage.list_experiments()
        assert {r.condition for r in records} == {ExperimentCondition.SUCCEEDED}
        rerun_ok: set[str] = set()
        for record in records:
            trials = storage.list_trials(record.id)
            assert sum(1 for t in trials if t.state == TrialState.SUCCEEDED) == 8, [
                (t.name, t.state, t.reason, t.message) for t in trials
            ] + [(e.reason, e.message) for e in storage.list_events(record.id)]
            for event in storage.list_events(record.id):
                if event.reason == "ControllerGone":
                    rerun_ok |= {t.name for t in trials if t.name in event.message}
        lines = [line.split() for line in servers.launches.read_text().splitlines()]
        launches = Counter(name for name, *_ in lines)
        twice = {name for name, n in launches.items() if n > 1}
        # Only trials the dead server left running ran again, and each was reported.
        assert twice <= rerun_ok, (twice, rerun_ok)
        # Never more than parallelTrialCount trials of one experiment at a time among those
        # the live servers launched.
        by_experiment: dict[str, list[tuple[float, float]]] = {}
        for name, _pid, start, end, parent in lines:
            if int(parent) == victim.pid:
                # The killed server's own trials: they outlive it only until the survivor's
                # takeover stops them (or they end), a moment after the kill.
                assert float(end) < killed_wall + 5, (name, float(end) - killed_wall)
                continue
            by_experiment.setdefault(name.rsplit("-", 1)[0], []).append((float(start), float(end)))
        for spans in by_experiment.values():
            for start, _ in spans:
                assert sum(1 for s, e in spans if s <= start < e) <= 2
        storage.close()
    finally:
        servers.stop_all()


def test_readers_never_see_a_locked_sqlite_database_during_a_run(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trial.py").write_text(TRIAL.replace("time.sleep(0.4)", "time.sleep(0.3)"))
    experiment = doc("busy", 60)
    experiment["spec"]["parallelTrialCount"] = 4  # type: ignore[index]
    (folder / "exp.yaml").write_text(yaml.safe_dump(experiment))
    env = dict(os.environ, KATIB_HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO),
               LAUNCHES=str(tmp_path / "launches.txt"))
    env.pop("KATIB_DB", None)
    run = subprocess.Popen([sys.executable, "-m", "katib", "run", "exp.yaml", "-q"],
                           cwd=folder, env=env)
    reads = 0
    try:
        while run.poll() is None:
            got = subprocess.run([sys.executable, "-m", "katib", "get", "trials", "busy"],
                                 cwd=folder, env=env, capture_output=True, text=True)
            if "not found" in got.stderr:
                continue  # not created yet
            assert got.returncode == 0 and "locked" not in got.stderr.lower(), got.stderr
            reads += 1
    finally:
        run.wait(timeout=300)
    assert run.returncode == 0
    assert reads >= 3
