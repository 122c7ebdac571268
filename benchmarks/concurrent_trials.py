"""Many trials at once: ``katib run`` of N sleeping trials at parallelTrialCount N.

Requirement (issue "Performance and scale"): 200 concurrent trials (sleeping processes) at
parallelTrialCount 200. Reports the controller's peak thread count (``/proc/<pid>/task``,
sampled every 0.3 s), the whole command's wall time, CPU (user + system: of the process
tree from ``getrusage``, and of the controller alone) and its peak RSS (psutil), the
time for all trials to start (first trial created to last trial started, from the trial rows;
and from the command's start to the last trial started), and the spread: first trial created
to last trial completed, whose floor is the sleep. ``--reps`` repeats the run; the last
line gives the medians.

    python benchmarks/concurrent_trials.py                       # 200 trials of `sleep 5`
    python benchmarks/concurrent_trials.py --katib <venv>/bin/katib --trials 100 --sleep 2
    python benchmarks/concurrent_trials.py --reps 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: concurrent
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random, algorithmSettings: [{{name: random_state, value: "1"}}]}}
  parallelTrialCount: {n}
  maxTrialCount: {n}
  maxFailedTrialCount: 0
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: [/bin/sh, -c, "sleep {sleep}; echo loss=${{trialParameters.x}}"]
            restartPolicy: Never
"""


def default_katib() -> str:
    beside = Path(sys.executable).parent / "katib"
    return str(beside) if beside.exists() else shutil.which("katib") or "katib"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--katib", default=default_katib())
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=5.0)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()
    results = [run_once(args) for _ in range(args.reps)]
    if args.reps > 1:
        keys = ("threads_peak", "start_all_s", "command_to_last_start_s", "spread_s", "wall_s",
                "cpu_s",
                "controller_cpu_s", "peak_rss_mb")
        print("medians: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in results):.2f}" for k in keys))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"argv": sys.argv, "runs": results}, indent=1))
    return 0 if all(r["exit"] == 0 for r in results) else 1


def run_once(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
        env["KATIB_HOME"] = tmp
        spec = Path(tmp) / "concurrent.yaml"
        spec.write_text(EXPERIMENT.format(n=args.trials, sleep=f"{args.sleep:g}"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [args.katib, "run", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        threads = 0
        rss = 0
        controller_cpu = 0.0
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                threads = max(threads, len(os.listdir(f"/proc/{proc.pid}/task")))
                rss = max(rss, ps.memory_info().rss)
                cpu_times = ps.cpu_times()
                controller_cpu = cpu_times.user + cpu_times.system
            except (FileNotFoundError, psutil.Error):
                pass
            time.sleep(0.3)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        db = sqlite3.connect(Path(tmp) / "katib.db")
        first, last_start, last, count, ok = db.execute(
            "SELECT min(created_at), max(started_at), max(completed_at), count(*), "
            "sum(state = 'Succeeded') FROM trials"
        ).fetchone()
        db.close()
    result = {
        "exit": proc.returncode,
        "trials": count,
        "succeeded": ok,
        "threads_peak": threads,
        "start_all_s": last_start - first,
        "command_to_last_start_s": last_start - wall0,
        "spread_s": last - first,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "controller_cpu_s": controller_cpu,
        "peak_rss_mb": rss / 2**20,
        "loadavg": os.getloadavg(),
    }
    print(
        f"{count} trials ({ok} Succeeded) of sleep {args.sleep:g} at parallelTrialCount "
        f"{args.trials}: peak threads {threads}, first created -> last started "
        f"{result['start_all_s']:.2f} s (command start -> last started "
        f"{result['command_to_last_start_s']:.2f} s), first created -> last completed "
        f"{result['spread_s']:.2f} s, whole command {wall:.2f} s, CPU {result['cpu_s']:.2f} s "
        f"(controller {controller_cpu:.2f} s), controller's peak RSS {result['peak_rss_mb']:.1f} MB"
        f" (sampled; load {os.getloadavg()})"
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
