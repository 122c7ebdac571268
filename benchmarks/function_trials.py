"""Function trials: ``KatibClient().tune()`` of a cheap Python function against Optuna.

Requirement (issue "Performance and scale"): 200 TPE trials of a cheap function at most 5 ms
per trial end to end with SQLite storage, at least 4x faster than Optuna with SQLite, in the
same run.

Each repetition runs, alternately and each in a fresh process and a fresh temporary folder:

* ``katib``: ``KatibClient().tune(...)`` embedded (SQLite in KATIB_HOME), TPE with
  ``random_state``, one trial at a time, the function returning its loss;
* ``optuna-sqlite``: ``optuna.create_study(storage="sqlite:///...")`` + ``study.optimize``
  with TPESampler(seed), the same function;
* ``optuna-memory``: the same study in memory.

The reported figure is the wall time of the whole ``tune()`` / ``optimize()`` call (imports
and the process start excluded, study / experiment creation included) divided by the trials;
medians over the repetitions.

    python benchmarks/function_trials.py                  # 200 trials, 3 repetitions
    python benchmarks/function_trials.py --trials 50 --reps 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KATIB = """
import json, sys, time
from katib import KatibClient, search

def objective(parameters):
    x, y = parameters["x"], parameters["y"]
    return (x - 0.3) ** 2 + (y + 0.2) ** 2

n = int(sys.argv[1])
client = KatibClient()
start = time.perf_counter()
client.tune("bench", objective, {"x": search.double(-1, 1), "y": search.double(-1, 1)},
            algorithm_name="tpe", algorithm_settings={"random_state": 1},
            objective_metric_name="loss", objective_type="minimize",
            max_trial_count=n, parallel_trial_count=1, max_failed_trial_count=0,
            show_progress=False)
seconds = time.perf_counter() - start
trials = client.list_trials("bench")
print(json.dumps({"seconds": seconds, "trials": len(trials)}))
"""

OPTUNA = """
import json, sys, time
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    x = trial.suggest_float("x", -1, 1)
    y = trial.suggest_float("y", -1, 1)
    return (x - 0.3) ** 2 + (y + 0.2) ** 2

n, storage = int(sys.argv[1]), sys.argv[2] or None
start = time.perf_counter()
study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=1))
study.optimize(objective, n_trials=n)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "trials": len(study.trials)}))
"""


def run(kind: str, trials: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KATIB_")}
        env["KATIB_HOME"] = tmp
        if kind == "katib":
            # tune() ships the function's source, so it must live in a file.
            script = Path(tmp) / "bench_katib.py"
            script.write_text(KATIB)
            argv = [sys.executable, str(script), str(trials)]
        else:
            storage = f"sqlite:///{tmp}/optuna.db" if kind == "optuna-sqlite" else ""
            argv = [sys.executable, "-c", OPTUNA, str(trials), storage]
        proc = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        if result["trials"] != trials:
            raise SystemExit(f"{kind} ran {result['trials']} trials, not {trials}")
        return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--kinds", default="katib,optuna-sqlite,optuna-memory")
    ap.add_argument("--json", dest="json_path")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    load_before = os.getloadavg()
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    for rep in range(args.reps):
        for kind in kinds if rep % 2 == 0 else reversed(kinds):
            seconds = run(kind, args.trials)["seconds"]
            samples[kind].append(seconds)
            print(
                f"  rep {rep + 1} {kind:14} {seconds:7.2f} s "
                f"({1000 * seconds / args.trials:.1f} ms/trial)",
                file=sys.stderr,
            )
    per_trial = {k: 1000 * statistics.median(v) / args.trials for k, v in samples.items()}
    print(
        f"{args.trials} TPE trials, {args.reps} alternated repetitions, medians; "
        f"load average {load_before} -> {os.getloadavg()}.\n"
    )
    print("| runner | ms / trial | vs katib |")
    print("|---|---:|---:|")
    for kind, ms in per_trial.items():
        ratio = ms / per_trial["katib"] if "katib" in per_trial else float("nan")
        print(f"| {kind} | {ms:.1f} | {ratio:.2f} |")
    if args.json_path:
        Path(args.json_path).write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                    "argv": sys.argv,
                    "trials": args.trials,
                    "samples_s": samples,
                    "ms_per_trial": per_trial,
                    "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg(),
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
