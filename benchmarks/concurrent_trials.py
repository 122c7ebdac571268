"""Many trials at once: ``katib run`` of N sleeping trials at parallelTrialCount N.

Requirement (issue "Performance and scale"): 200 concurrent trials (sleeping processes) at
parallelTrialCount 200. Reports the controller's peak thread count (``/proc/<pid>/task``,
sampled every 0.3 s), the whole command's wall time, CPU (user + system) and peak RSS, and
the spread from the trial rows: first trial created to last trial completed, whose floor is
the sleep.

    python benchmarks/concurrent_trials.py                       # 200 trials of `sleep 5`
    python benchmarks/concurrent_trials.py --katib <venv>/bin/katib --trials 100 --sleep 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--katib", default=shutil.which("katib") or "katib")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--sleep", type=float, default=5.0)
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
        env["KATIB_HOME"] = tmp
        spec = Path(tmp) / "concurrent.yaml"
        spec.write_text(EXPERIMENT.format(n=args.trials, sleep=f"{args.sleep:g}"))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [args.katib, "run", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        threads = 0
        while proc.poll() is None:
            try:
                threads = max(threads, len(os.listdir(f"/proc/{proc.pid}/task")))
            except FileNotFoundError:
                pass
            time.sleep(0.3)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        db = sqlite3.connect(Path(tmp) / "katib.db")
        first, last, count, ok = db.execute(
            "SELECT min(created_at), max(completed_at), count(*), "
            "sum(state = 'Succeeded') FROM trials"
        ).fetchone()
        db.close()
    result = {
        "exit": proc.returncode,
        "trials": count,
        "succeeded": ok,
        "threads_peak": threads,
        "spread_s": last - first,
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb": after.ru_maxrss / 1024,
        "loadavg": os.getloadavg(),
    }
    print(
        f"{count} trials ({ok} Succeeded) of sleep {args.sleep:g} at parallelTrialCount "
        f"{args.trials}: peak threads {threads}, first created -> last completed "
        f"{result['spread_s']:.2f} s, whole command {wall:.2f} s, CPU {result['cpu_s']:.2f} s, "
        f"peak RSS {result['peak_rss_mb']:.1f} MB (of any child so far; load {os.getloadavg()})"
    )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"argv": sys.argv, **result}, indent=1))
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
