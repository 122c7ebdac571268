"""A 10,000-trial experiment in one ``katib run``: the controller's memory and time per trial.

Requirement (issue "Performance and scale"): a random-search experiment of 10,000 cheap
trials runs to completion in one ``katib run``; the controller's peak RSS grows by less than
100 MB from 1,000 to 10,000 trials, and the time per trial stays flat (within +-15 %) at
100, 1,000 and 10,000 trials.

* Trial: ``/bin/sh -c 'echo loss=$0' <x>``, the cheapest command that still goes through
  the StdOut collector (a process, its output read and parsed), at parallelTrialCount P (4).
* The ``katib run`` process's RSS is sampled with psutil every 0.2 s; each sample is matched
  to the number of trials completed by then (from the trial rows), so one 10,000-trial run
  gives the peak RSS up to the 1,000th trial and up to the 10,000th. Separate 1,000-trial
  runs give the same peak on their own.
* Time per trial: the whole command's wall time divided by N (raw); steady
  ``(T(N) - T(1)) / (N - 1)`` with a 1-trial run holding start-up and database creation;
  in-run, (last completion - first creation) / N from the trial rows; and the controller
  process's own CPU per trial, ``(CPU(N) - CPU(1)) / (N - 1)`` (psutil, sampled up to the
  last 0.2 s), which a busy machine disturbs least.
* Peer: a plain Python loop (a pool of P threads, ``subprocess.run``, stdout captured and
  parsed with the collector's regex) running the same N processes, in the same invocation,
  alternated with the katib runs.

    python benchmarks/scale_trials.py                          # 100 x3, 1,000 x3, 10,000 x1
    python benchmarks/scale_trials.py --sizes 100,1000 --reps 2 --parallel 4
    python benchmarks/scale_trials.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import yaml

#: The StdOut collector's default metrics regex, applied line by line.
METRIC_RE = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")
TRIAL = ("/bin/sh", "-c", "echo loss=$0")
RSS_GROWTH_LIMIT_MB = 100.0
FLAT_TOLERANCE = 0.15


def experiment_yaml(trials: int, parallel: int) -> str:
    doc = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "scale"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": "random",
                "algorithmSettings": [{"name": "random_state", "value": "1"}],
            },
            "parallelTrialCount": parallel,
            "maxTrialCount": trials,
            "maxFailedTrialCount": 0,
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
                            "command": [*TRIAL, "${trialParameters.x}"],
                        }],
                        "restartPolicy": "Never",
                    }}},
                },
            },
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def find_katib(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "katib"
    if beside.exists():
        return str(beside)
    found = shutil.which("katib")
    if found is None:
        sys.exit("katib is not installed (pip install -e .)")
    return found


def run_katib(katib: str, trials: int, parallel: int) -> dict[str, Any]:
    """One ``katib run``; RSS samples as (seconds since start, rss bytes)."""
    with tempfile.TemporaryDirectory(prefix="katib-scale-") as tmp:
        exp = Path(tmp) / "experiment.yaml"
        exp.write_text(experiment_yaml(trials, parallel))
        db = Path(tmp) / "x.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
        env["KATIB_HOME"] = str(Path(tmp) / "home")
        cmd = [katib, "run", str(exp), "--db", f"sqlite:///{db}", "--quiet"]
        wall0 = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        ps = psutil.Process(proc.pid)
        samples: list[tuple[float, int]] = []
        cpu = 0.0
        while proc.poll() is None:
            try:
                samples.append((time.time(), ps.memory_info().rss))
                times = ps.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.2)
        seconds = time.perf_counter() - t0
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"katib run failed ({proc.returncode}): {' '.join(cmd)}\n{stderr}")
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT created_at, completed_at, state FROM trials ORDER BY id"
            ).fetchall()
    succeeded = sum(1 for r in rows if r[2] == "Succeeded")
    if succeeded != trials:
        raise SystemExit(f"katib run: {succeeded} of {trials} trials succeeded")
    completions = sorted(r[1] for r in rows)

    def peak_until(n: int) -> float:
        """Peak RSS (MB) over the samples taken before the n-th trial completed."""
        limit = completions[min(n, len(completions)) - 1]
        rss = [r for t, r in samples if t <= limit] or [samples[0][1]]
        return max(rss) / 2**20

    marks = [n for n in (100, 1000, 2000, 5000, 10000) if n <= trials]
    tenths = []
    step = max(trials // 10, 1)
    for i in range(0, trials - step + 1, step):
        tenths.append((completions[i + step - 1] - completions[i]) / max(step - 1, 1) * 1000)
    return {
        "trials": trials,
        "seconds": seconds,
        "controller_cpu_s": cpu,
        "peak_rss_mb": max(r for _, r in samples) / 2**20 if samples else float("nan"),
        "peak_rss_until_mb": {str(n): peak_until(n) for n in marks},
        "in_run_ms_per_trial": (completions[-1] - rows[0][0]) / trials * 1000,
        "tenths_ms_per_trial": tenths,
        "rss_samples": [(round(t - wall0, 2), r) for t, r in samples],
    }


def run_loop(trials: int, parallel: int) -> dict[str, Any]:
    """The peer: the same processes from a pool of ``parallel`` threads."""
    rng = random.Random(1)
    values = [repr(rng.random()) for _ in range(trials)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="katib-scale-") as tmp:

        def one(x: str) -> float:
            proc = subprocess.run(
                [*TRIAL, x], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            for line in proc.stdout.decode(errors="replace").splitlines():
                m = METRIC_RE.search(line)
                if m and m.group(1) == "loss":
                    return float(m.group(2))
            raise SystemExit(f"loop trial failed: {proc.stdout!r}")

        me = psutil.Process()
        peak = [me.memory_info().rss]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                peak[0] = max(peak[0], me.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            results = list(pool.map(one, values))
        seconds = time.perf_counter() - t0
        done.set()
        sampler.join()
    assert len(results) == trials
    return {"trials": trials, "seconds": seconds, "peak_rss_mb": peak[0] / 2**20}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--katib", help="the katib console script (default: beside this python)")
    ap.add_argument("--sizes", default="100,1000,10000", help="trial counts (comma-separated)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of sizes below 10,000")
    ap.add_argument("--big-reps", type=int, default=1, help="repetitions of sizes >= 10,000")
    ap.add_argument("--parallel", type=int, default=4, help="parallelTrialCount (and workers)")
    ap.add_argument("--json", dest="json_path", help="write every sample to this file")
    args = ap.parse_args()
    katib = find_katib(args.katib)
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict[str, Any] = {"argv": sys.argv, "parallel": args.parallel, "load": [], "runs": []}
    out["load"].append(os.getloadavg())
    one = [run_katib(katib, 1, 1) for _ in range(3)]
    t1 = med([r["seconds"] for r in one])
    cpu1 = med([r["controller_cpu_s"] for r in one])
    out["one_trial"] = {"seconds": t1, "controller_cpu_s": cpu1}
    print(f"1-trial katib run: {t1:.2f} s, controller CPU {cpu1:.2f} s (medians of 3)",
          flush=True)
    for n in sizes:
        reps = args.big_reps if n >= 10000 else args.reps
        for rep in range(reps):
            k = run_katib(katib, n, args.parallel)
            b = run_loop(n, args.parallel)
            out["runs"].append({"n": n, "rep": rep, "katib": k, "loop": b,
                                "load": os.getloadavg()})
            print(
                f"N={n} rep {rep}: katib {k['seconds']:.1f} s (peak RSS {k['peak_rss_mb']:.1f} MB,"
                f" by trial {k['peak_rss_until_mb']}), loop {b['seconds']:.1f} s; "
                f"load {os.getloadavg()}", flush=True,
            )
    out["load"].append(os.getloadavg())

    print(f"\nparallelTrialCount {args.parallel}; 1-trial run {t1:.2f} s; medians over reps")
    print("| trials | reps | katib s | loop s | katib/loop | ms/trial raw | ms/trial steady "
          "| ms/trial in-run | loop ms/trial | peak RSS MB | controller CPU s "
          "| controller CPU ms/trial steady |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    steady: dict[int, float] = {}
    for n in sizes:
        runs = [r for r in out["runs"] if r["n"] == n]
        ks = med([r["katib"]["seconds"] for r in runs])
        ls = med([r["loop"]["seconds"] for r in runs])
        steady[n] = (ks - t1) / (n - 1) * 1000
        cpu = med([r["katib"]["controller_cpu_s"] for r in runs])
        print(
            f"| {n:,} | {len(runs)} | {ks:.1f} | {ls:.1f} | {ks / ls:.2f} | {ks / n * 1000:.2f} "
            f"| {steady[n]:.2f} | {med([r['katib']['in_run_ms_per_trial'] for r in runs]):.2f} "
            f"| {ls / n * 1000:.2f} | {med([r['katib']['peak_rss_mb'] for r in runs]):.1f} "
            f"| {cpu:.1f} | {(cpu - cpu1) / (n - 1) * 1000:.2f} |"
        )
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        ratio = steady[hi] / steady[lo]
        ok = abs(ratio - 1) <= FLAT_TOLERANCE
        print(f"\nsteady ms/trial at {hi:,} / at {lo:,}: {ratio:.2f} "
              f"(target within +-{FLAT_TOLERANCE:.0%}: {'met' if ok else 'not met'})")
        in_run = {n: med([r["katib"]["in_run_ms_per_trial"] for r in out["runs"] if r["n"] == n])
                  for n in sizes}
        ratio = in_run[hi] / in_run[lo]
        ok = abs(ratio - 1) <= FLAT_TOLERANCE
        print(f"in-run ms/trial at {hi:,} / at {lo:,}: {ratio:.2f} "
              f"(target within +-{FLAT_TOLERANCE:.0%}: {'met' if ok else 'not met'})")
    big = [r for r in out["runs"] if r["n"] == max(sizes)]
    if big and "1000" in big[0]["katib"]["peak_rss_until_mb"]:
        peaks = big[0]["katib"]["peak_rss_until_mb"]
        growth = peaks[str(max(sizes))] - peaks["1000"] if str(max(sizes)) in peaks else None
        print(f"inside the {max(sizes):,}-trial run: peak RSS by trial {peaks}")
        if growth is not None:
            print(f"growth from 1,000 to {max(sizes):,} trials: {growth:.1f} MB (target < "
                  f"{RSS_GROWTH_LIMIT_MB:.0f} MB: "
                  f"{'met' if growth < RSS_GROWTH_LIMIT_MB else 'not met'})")
        print("in-run ms/trial by tenth: "
              + " ".join(f"{x:.1f}" for x in big[0]["katib"]["tenths_ms_per_trial"]))
    print(f"load average: start {out['load'][0]}, end {out['load'][-1]}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
