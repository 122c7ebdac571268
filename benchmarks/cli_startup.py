"""CLI start-up: how long the read commands take on a local database, whole processes.

Requirement (issue "Performance and scale"): ``katib get``, ``describe``, ``best`` and
``logs`` in at most 0.3 s on a local database. Each command runs ``--runs`` times (default 5)
after one warm-up, beside ``python3 -c pass`` (the interpreter's own start) and ``katib
--help``; the report gives the median wall time and the median CPU time (user + system of
the child, which a busy shared machine disturbs less than wall time), then the slowest
imports of one ``describe`` (``python -X importtime``), grouped by top-level package.

The database is made in a temporary KATIB_HOME by a 20-trial ``katib run`` (random search,
``sh`` trials), so the commands read real rows.

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --katib /path/to/venv/bin/katib --runs 9 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXPERIMENT = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: startup
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: random, algorithmSettings: [{name: random_state, value: "1"}]}
  parallelTrialCount: 2
  maxTrialCount: 20
  maxFailedTrialCount: 0
  parameters:
    - {name: x, parameterType: double, feasibleSpace: {min: "0", max: "1"}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: busybox
                command: [/bin/sh, -c, "echo loss=${trialParameters.x}"]
            restartPolicy: Never
"""

TARGET_SECONDS = 0.3
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def import_profile(katib: str, env: dict[str, str], args: list[str]) -> list[tuple[str, float]]:
    """Milliseconds of import time per top-level package for ``katib ARGS`` (own time summed),
    under the interpreter of the ``katib`` script (its shebang), so that its packages count."""
    first = Path(katib).read_text(errors="replace").splitlines()[0]
    python = first[2:].strip() if first.startswith("#!") else sys.executable
    err = subprocess.run(
        [python, "-X", "importtime", "-m", "katib", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    totals: dict[str, float] = {}
    for m in _IMPORT_LINE.finditer(err):
        top = m.group(4).split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(m.group(1)) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--katib", default=shutil.which("katib") or "katib", help="katib executable")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()
    katib = [args.katib]

    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
        env["KATIB_HOME"] = tmp
        spec = Path(tmp) / "startup.yaml"
        spec.write_text(EXPERIMENT)
        subprocess.run([*katib, "run", str(spec)], env=env, stdout=subprocess.DEVNULL, check=True)
        trials = json.loads(
            subprocess.run(
                [*katib, "get", "trials", "startup", "-o", "json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["items"]
        trial = trials[0]["metadata"]["name"]
        commands = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "katib --help": [*katib, "--help"],
            "katib get experiments": [*katib, "get", "experiments"],
            "katib get trials startup": [*katib, "get", "trials", "startup"],
            "katib describe experiment startup": [*katib, "describe", "experiment", "startup"],
            "katib best startup": [*katib, "best", "startup"],
            "katib logs TRIAL": [*katib, "logs", trial],
        }
        results: dict[str, dict[str, Any]] = {}
        for name, argv in commands.items():
            timed(argv, env)  # warm-up: page cache, .pyc files
            samples = [timed(argv, env) for _ in range(args.runs)]
            wall = statistics.median(s[0] for s in samples)
            cpu = statistics.median(s[1] for s in samples)
            results[name] = {
                "wall_s": [s[0] for s in samples],
                "cpu_s": [s[1] for s in samples],
                "wall_median": wall,
                "cpu_median": cpu,
            }
            print(
                f"{name:36} wall {wall * 1000:7.1f} ms  cpu {cpu * 1000:7.1f} ms", file=sys.stderr
            )
        profile = import_profile(args.katib, env, ["describe", "experiment", "startup"])

    print(f"Medians of {args.runs} runs after a warm-up; load average {os.getloadavg()}.\n")
    print("| command | wall ms | CPU ms | ≤ 0.3 s |")
    print("|---|---:|---:|---|")
    for name, r in results.items():
        ok = (
            ""
            if not name.startswith("katib") or name == "katib --help"
            else ("yes" if r["wall_median"] <= TARGET_SECONDS else "no")
        )
        print(f"| `{name}` | {r['wall_median'] * 1000:.0f} | {r['cpu_median'] * 1000:.0f} | {ok} |")
    print("\nImport time of `katib describe experiment` by package (ms, own time summed):\n")
    print(", ".join(f"{name} {ms:.0f}" for name, ms in profile[:12]))
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                    "argv": sys.argv,
                    "loadavg": os.getloadavg(),
                    "runs": args.runs,
                    "results": results,
                    "imports_ms": profile,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
