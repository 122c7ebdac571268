"""50 experiments at once in one ``katib server``, and ``wrk`` against the API meanwhile.

Requirement (issue "Performance and scale"): one server runs 50 experiments at once and every
one of them progresses (none starved); with those running, the trial listing and the metric
push endpoints keep answering (requests per second, p99 latency, no request over 1 s).

For each database (a SQLite file; PostgreSQL in a schema of its own, dropped afterwards):

* ``katib server --port 0`` is started as users start it (``KATIB_ADMIN_TOKEN``, ``KATIB_DB``,
  the local launcher) and 50 experiments are created through the REST API (JSON bodies),
  each random search over one double with ``maxTrialCount`` T (30) at ``parallelTrialCount``
  P (2), trial ``/bin/sh -c 'sleep S; echo loss=$0'`` (S = 3 s), plus one more experiment,
  ``wrk-target``, whose single trial sleeps for an hour so that metric pushes have a running
  trial to go to.
* Every 2 s the experiments' ``trialsSucceeded`` counts are read (``GET .../experiments``):
  the timeline, the time by which every experiment had finished a trial, and each one's
  finishing time.
* Meanwhile ``wrk`` runs twice, D (15) s each, C (8) connections, 2 threads: (a) ``GET
  /api/v1/namespaces/bench/experiments/load-00/trials`` (one page: its trials so far), (b)
  ``POST /api/v1/namespaces/bench/trials/{wrk-target's trial}/observations`` with one point,
  as a trial pushes (Lua script for the body and headers). Requests/s, p50, p99 and max
  latency, and non-2xx answers, from ``wrk --latency``.
* ``--profile DIR`` also records the server with ``py-spy record --format raw`` during each
  wrk run (collapsed stacks, one file per database and endpoint).

    python benchmarks/server_load.py                      # SQLite, then PostgreSQL
    python benchmarks/server_load.py --databases sqlite --experiments 10 --wrk-duration 5
    python benchmarks/server_load.py --profile /tmp/prof --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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

TOKEN = "bench-admin-token-0123456789"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
NAMESPACE = "bench"
LATENCY_LIMIT_MS = 1000.0


def experiment(name: str, trials: int, parallel: int, sleep: float) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": trials,
            "parameters": [{
                "name": "x", "parameterType": "double",
                "feasibleSpace": {"min": "0", "max": "1"},
            }],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {
                        "containers": [{
                            "name": "main", "image": "busybox",
                            "command": ["/bin/sh", "-c", f"sleep {sleep:g}; echo loss=$0",
                                        "${trialParameters.x}"],
                        }],
                        "restartPolicy": "Never",
                    }}},
                },
            },
        },
    }


@contextmanager
def server(db_url: str, home: Path) -> Iterator[tuple[str, psutil.Process]]:
    """``katib server`` on a free loopback port; yields its URL and process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
    env.update(KATIB_HOME=str(home), KATIB_ADMIN_TOKEN=TOKEN, KATIB_DB=db_url)
    log_path = home / "server.log"
    log = open(log_path, "w+b")  # noqa: SIM115 - closed below
    katib = Path(sys.executable).parent / "katib"
    proc = subprocess.Popen(
        [str(katib), "server", "--port", "0"], cwd=home, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = ""
        deadline = time.monotonic() + 60
        while not url:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(log_path.read_text())
            found = re.search(rb"listening on (http://\S+)", log_path.read_bytes())
            url = found.group(1).decode() if found else ""
            time.sleep(0.05)
        while httpx.get(f"{url}/readyz").status_code != 200:
            time.sleep(0.05)
        yield url, psutil.Process(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextmanager
def postgres_schema(url: str) -> Iterator[str]:
    import psycopg

    admin = url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"katib_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    line = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    dist = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if not (line and rps and total):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    return {
        "requests": int(total.group(1)),
        "rps": float(rps.group(1)),
        "mean_ms": _ms(line.group(1)),
        "max_ms": _ms(line.group(3)),
        "p50_ms": _ms(dist["50"]),
        "p99_ms": _ms(dist["99"]),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def run_wrk(
    url: str, script: Path | None, args: argparse.Namespace, profile: Path | None, pid: int
) -> dict[str, Any]:
    cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.wrk_connections),
           "-d", f"{args.wrk_duration}s", "--timeout", "10s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    else:
        cmd += ["-H", f"Authorization: Bearer {TOKEN}"]
    spy = None
    if profile is not None:
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--duration", str(args.wrk_duration),
             "--format", "raw", "--rate", "50", "--nonblocking", "-o", str(profile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    before = psutil.Process(pid).cpu_times()
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    after = psutil.Process(pid).cpu_times()
    if spy is not None:
        spy.wait(timeout=120)
    result = parse_wrk(out)
    cpu = after.user + after.system - before.user - before.system
    result["server_cpu_ms_per_request"] = cpu * 1000 / max(result["requests"], 1)
    result["command"] = " ".join([*cmd, url])
    return result


def run_database(label: str, db_url: str, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    names = [f"load-{i:02d}" for i in range(args.experiments)]
    result: dict[str, Any] = {"database": label, "load_start": os.getloadavg()}
    with server(db_url, home) as (url, proc), httpx.Client(
        base_url=url, headers=HEADERS, timeout=60
    ) as client:
        r = client.post("/api/v1/namespaces", json={"name": NAMESPACE})
        assert r.status_code in (200, 201, 409), r.text
        base = f"/api/v1/namespaces/{NAMESPACE}"
        r = client.post(f"{base}/experiments", json=experiment("wrk-target", 1, 1, 3600))
        assert r.status_code == 201, r.text
        t0 = time.monotonic()
        for name in names:
            r = client.post(
                f"{base}/experiments",
                json=experiment(name, args.trials, args.parallel, args.sleep),
            )
            assert r.status_code == 201, r.text
        result["create_s"] = time.monotonic() - t0
        timeline: list[tuple[float, dict[str, int], dict[str, int], float, float]] = []
        finished: dict[str, float] = {}
        stop = threading.Event()

        def sample() -> None:
            with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as c:
                while not stop.is_set():
                    got = c.get(f"{base}/experiments", params={"limit": 500}).json()["items"]
                    now = time.monotonic() - t0
                    done = {e["metadata"]["name"]: e["status"]["trialsSucceeded"] for e in got}
                    running = {e["metadata"]["name"]: e["status"]["trialsRunning"] for e in got}
                    for e in got:
                        n = e["metadata"]["name"]
                        ended = e["status"]["condition"] in ("Succeeded", "Failed")
                        if ended and n not in finished:
                            finished[n] = now
                    cpu = proc.cpu_times()
                    timeline.append((now, done, running, cpu.user + cpu.system,
                                     proc.memory_info().rss / 2**20))
                    if all(n in finished for n in names):
                        return
                    stop.wait(2.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wrk: dict[str, Any] = {}
        if not args.no_wrk:
            target = ""
            deadline = time.monotonic() + 120
            while not target and time.monotonic() < deadline:
                items = client.get(f"{base}/experiments/wrk-target/trials").json()["items"]
                target = next((t["metadata"]["name"] for t in items
                               if t["status"]["condition"] == "Running"), "")
                time.sleep(0.5)
            if not target:
                raise RuntimeError("wrk-target's trial never ran")
            time.sleep(args.wrk_delay)
            prof = Path(args.profile) if args.profile else None
            if prof:
                prof.mkdir(parents=True, exist_ok=True)
            wrk["window_start_s"] = time.monotonic() - t0
            wrk["list"] = run_wrk(
                f"{url}{base}/experiments/load-00/trials", None, args,
                prof / f"{label}-list.txt" if prof else None, proc.pid,
            )
            body = json.dumps({"observations": [{"name": "loss", "value": 0.5, "step": 1}]})
            lua = home / "push.lua"
            lua.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(body)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
            )
            wrk["push"] = run_wrk(
                f"{url}{base}/trials/{target}/observations", lua, args,
                prof / f"{label}-push.txt" if prof else None, proc.pid,
            )
            wrk["window_end_s"] = time.monotonic() - t0
        sampler.join(timeout=args.timeout)
        stop.set()
        result["wrk"] = wrk
        result["finished_s"] = finished
        result["timeline"] = timeline
        result["server_threads"] = proc.num_threads()
    result["load_end"] = os.getloadavg()
    return result


def summarize(res: dict[str, Any], args: argparse.Namespace) -> None:
    names = [f"load-{i:02d}" for i in range(args.experiments)]
    timeline = res["timeline"]
    label = res["database"]
    print(f"\n## {label}: {args.experiments} experiments x {args.trials} trials "
          f"(parallel {args.parallel}, sleep {args.sleep:g} s); created in {res['create_s']:.1f} s")
    every_one = next((t for t, done, *_ in timeline if all(done.get(n, 0) >= 1 for n in names)),
                     None)
    print(f"every experiment had a finished trial by {every_one:.1f} s" if every_one is not None
          else "some experiment never finished a trial")
    fin = [res["finished_s"].get(n) for n in names]
    done = [f for f in fin if f is not None]
    if done:
        print(f"finished: {len(done)}/{len(names)}; finish time min {min(done):.1f} s, median "
              f"{statistics.median(done):.1f} s, max {max(done):.1f} s")
    print("| t s | succeeded min / median / max per experiment | running trials (all) | "
          "experiments with 0 finished | server CPU s | RSS MB |")
    print("|---:|---|---:|---:|---:|---:|")
    step = max(len(timeline) // 12, 1)
    for t, done_n, running, cpu, rss in timeline[::step] + timeline[-1:]:
        counts = [done_n.get(n, 0) for n in names]
        print(f"| {t:.0f} | {min(counts)} / {statistics.median(counts):g} / {max(counts)} | "
              f"{sum(running.values())} | {sum(1 for c in counts if c == 0)} | {cpu:.1f} | "
              f"{rss:.0f} |")
    wrk = res["wrk"]
    if wrk:
        print(f"wrk window {wrk['window_start_s']:.0f}-{wrk['window_end_s']:.0f} s")
        inside = [x for x in timeline if wrk["window_start_s"] <= x[0] <= wrk["window_end_s"]]
        first_end = min(res["finished_s"].values(), default=float("inf"))
        after = [x for x in timeline if wrk["window_end_s"] < x[0] <= first_end]
        if len(inside) >= 2:
            a, b = inside[0], inside[-1]
            moved = sum(1 for n in names if b[1].get(n, 0) > a[1].get(n, 0)
                        or n in res["finished_s"] and res["finished_s"][n] <= b[0])
            print(f"experiments that finished a trial during the wrk window: {moved}/{len(names)}")

        def rate(seg: list[Any]) -> str:
            if len(seg) < 2:
                return "-"
            done = sum(seg[-1][1].get(n, 0) - seg[0][1].get(n, 0) for n in names)
            return f"{done / len(names) / (seg[-1][0] - seg[0][0]) * 60:.1f}"

        print(f"trials finished per experiment per minute: during wrk {rate(inside)}, after it "
              f"(until the first experiment ends) {rate(after)}; at most "
              f"{60 * args.parallel / args.sleep:.0f} (P / sleep)")
        print("| endpoint | requests/s | p50 ms | p99 ms | max ms | non-2xx | server CPU "
              "ms/request | max <= 1 s |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        listing = f"GET trials (one page: up to {args.trials} trials)"
        for key, what in (("list", listing), ("push", "POST observations")):
            w = wrk[key]
            print(f"| {what} | {w['rps']:.0f} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} | "
                  f"{w['max_ms']:.0f} | {w['non_2xx']} | {w['server_cpu_ms_per_request']:.1f} | "
                  f"{'yes' if w['max_ms'] <= LATENCY_LIMIT_MS else 'no'} |")
    print(f"load average {res['load_start']} -> {res['load_end']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--databases", default="sqlite,postgres")
    ap.add_argument("--postgres",
                    default="postgresql+psycopg://katib:katib@127.0.0.1:5432/katib_test")
    ap.add_argument("--experiments", type=int, default=50)
    ap.add_argument("--trials", type=int, default=30, help="maxTrialCount of each experiment")
    ap.add_argument("--parallel", type=int, default=2, help="parallelTrialCount of each")
    ap.add_argument("--sleep", type=float, default=3.0, help="seconds each trial sleeps")
    ap.add_argument("--wrk-duration", type=int, default=15)
    ap.add_argument("--wrk-connections", type=int, default=8)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-delay", type=float, default=3.0,
                    help="seconds to wait, once trials run, before the first wrk run")
    ap.add_argument("--no-wrk", action="store_true", help="only the 50 experiments")
    ap.add_argument("--timeout", type=float, default=900, help="give up on the experiments after")
    ap.add_argument("--profile", help="folder for py-spy's collapsed stacks during each wrk run")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()
    if not args.no_wrk and shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk), or pass --no-wrk")
    results = []
    for label in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="katib-load-") as tmp:
            home = Path(tmp)
            if label == "sqlite":
                results.append(run_database("sqlite", f"sqlite:///{home / 'katib.db'}", home, args))
            elif label == "postgres":
                with postgres_schema(args.postgres) as url:
                    results.append(run_database("postgres", url, home, args))
            else:
                sys.exit(f"unknown database {label!r}")
        summarize(results[-1], args)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"argv": sys.argv, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
