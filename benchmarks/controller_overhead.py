"""Controller overhead: ``katib run`` against a plain loop that runs the same processes.

Requirement (issue "Foundation"): the controller must add almost nothing to a trial.

* ``katib run`` of N (200) trials whose command prints one metric at once, against a plain
  Python loop that launches the same N processes one by one (``subprocess.run``, stdout
  captured, ``loss=`` parsed with the StdOut collector's regex), in the same invocation,
  interleaved (A B A B ...) to cancel drift, medians of several repetitions.
* Target: katib / baseline <= 1.15 at parallelTrialCount 1; katib at P=2 takes <= 0.6 of
  its own time at P=1.
* The fixed cost of the CLI (imports, database creation) is measured on its own with a
  1-trial experiment, so that the steady-state per-trial overhead
  ``(T(N) - T(1)) / (N - 1)`` can be compared with the baseline's time per trial.
* Flatness: time per trial at 100, 500 and 2,000 trials (``sh`` trial, P=1), plus the
  cycle time of the first and the last 100 trials inside the largest run, read from the
  trial timestamps in the database.

Each ``katib run`` gets a fresh KATIB_HOME and database in a temporary directory.

    python benchmarks/controller_overhead.py                 # default, 11-16 min on 2 busy CPUs
    python benchmarks/controller_overhead.py --quick         # smoke run, well under a minute
    python benchmarks/controller_overhead.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The StdOut collector's default metrics regex (see DESIGN.md), applied line by line.
METRIC_RE = re.compile(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)")

PY_SOURCE = "import sys; print('loss=' + sys.argv[1])"

TARGET_RATIO_P1 = 1.15
TARGET_P2_OVER_P1 = 0.6
#: "Flat" per-trial time: the largest size may cost at most this much more per trial.
FLAT_TOLERANCE = 1.25


@dataclass(frozen=True)
class TrialKind:
    """A trial command, as written in the experiment and as the baseline runs it."""

    key: str
    label: str
    #: The container command with ``${trialParameters.x}`` in it.
    template: tuple[str, ...]
    #: The argv the baseline runs for a value of x (same process as the launcher starts).
    argv: Callable[[str], list[str]]


def trial_kinds(python: str) -> dict[str, TrialKind]:
    # The local launcher replaces a bare python/python3 by its own sys.executable, which is
    # the interpreter in the katib console script's shebang: the baseline runs that one.
    return {
        "python": TrialKind(
            "python", "python3 -c (site on)",
            ("python3", "-c", PY_SOURCE, "${trialParameters.x}"),
            lambda x: [python, "-c", PY_SOURCE, x],
        ),
        "python-S": TrialKind(
            "python-S", "python3 -S -c",
            ("python3", "-S", "-c", PY_SOURCE, "${trialParameters.x}"),
            lambda x: [python, "-S", "-c", PY_SOURCE, x],
        ),
        "sh": TrialKind(
            "sh", "/bin/sh -c 'echo loss=$0'",
            ("/bin/sh", "-c", "echo loss=$0", "${trialParameters.x}"),
            lambda x: ["/bin/sh", "-c", "echo loss=$0", x],
        ),
    }


# Experiment files ---------------------------------------------------------------------------


def experiment_yaml(kind: TrialKind, trials: int, parallel: int, seed: int = 1) -> str:
    doc = {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "overhead"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": "random",
                "algorithmSettings": [{"name": "random_state", "value": str(seed)}],
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
                "trialParameters": [{"name": "x", "description": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {"template": {"spec": {
                        "containers": [{
                            "name": "main", "image": "busybox", "command": list(kind.template),
                        }],
                        "restartPolicy": "Never",
                    }}},
                },
            },
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


# The two contenders -------------------------------------------------------------------------


def find_katib(explicit: str | None) -> list[str]:
    """The katib console script itself (not a pyenv/asdf shim, whose start-up would count)."""
    if explicit:
        return [explicit]
    beside = Path(sys.executable).parent / "katib"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("katib")
    if found is None:
        sys.exit("katib is not installed (pip install -e .)")
    return [found]


def katib_interpreter(katib: Sequence[str]) -> str:
    """The interpreter that runs katib, i.e. the one a ``python3`` trial command becomes."""
    try:
        first = Path(katib[0]).read_bytes().split(b"\n", 1)[0].decode()
    except (OSError, UnicodeDecodeError):
        return sys.executable
    if first.startswith("#!") and "python" in first:
        interpreter = first[2:].strip().split()[0]
        if os.access(interpreter, os.X_OK):
            return interpreter
    return sys.executable


@dataclass
class Timing:
    seconds: float
    #: CPU time (user + sys) of the process tree: katib or the loop's children, and trials.
    cpu: float
    #: Median time per trial inside the run: katib's created -> next created at P=1 (no
    #: start-up, no shutdown), the baseline's time per loop iteration.
    per_trial: float
    #: katib only: trial timestamps (created, started, completed) in id order.
    times: list[tuple[float, float | None, float | None]]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_katib(katib: Sequence[str], kind: TrialKind, trials: int, parallel: int) -> Timing:
    with tempfile.TemporaryDirectory(prefix="katib-overhead-") as tmp:
        exp = Path(tmp) / "experiment.yaml"
        exp.write_text(experiment_yaml(kind, trials, parallel))
        db = Path(tmp) / "x.db"
        env = dict(os.environ)
        env.pop("KATIB_DB", None)
        env["KATIB_HOME"] = str(Path(tmp) / "home")
        cmd = [*katib, "run", str(exp), "--db", f"sqlite:///{db}", "--quiet"]
        c0 = _children_cpu()
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        cpu = _children_cpu() - c0
        if proc.returncode != 0:
            raise SystemExit(
                f"katib run failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        with sqlite3.connect(db) as conn:
            succeeded = conn.execute(
                "SELECT count(*) FROM trials WHERE state = 'Succeeded'"
            ).fetchone()[0]
            times = conn.execute(
                "SELECT created_at, started_at, completed_at FROM trials ORDER BY id"
            ).fetchall()
        if succeeded != trials:
            raise SystemExit(f"katib run: {succeeded} of {trials} trials succeeded")
        created = [t[0] for t in times]
        cycles = [b - a for a, b in zip(created, created[1:], strict=False)]
        return Timing(seconds, cpu, med(cycles) if cycles else math.nan, times)


def run_baseline(kind: TrialKind, trials: int, seed: int = 1, parallel: int = 1) -> Timing:
    """The plain loop: the same processes one by one, output captured and parsed.

    With ``parallel`` > 1, that many threads each run such a loop over a shared queue: the
    speed-up this machine can give at that parallelism, to judge katib's against.
    """
    rng = random.Random(seed)
    values = [repr(rng.random()) for _ in range(trials)]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # as the launcher sets it
    with tempfile.TemporaryDirectory(prefix="katib-overhead-") as tmp:

        def one(x: str) -> tuple[float, float]:
            lap = time.perf_counter()
            proc = subprocess.run(
                kind.argv(x), cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            loss = None
            for line in proc.stdout.decode(errors="replace").splitlines():
                m = METRIC_RE.search(line)
                if m and m.group(1) == "loss":
                    loss = float(m.group(2))
            if proc.returncode != 0 or loss is None:
                raise SystemExit(f"baseline trial failed: {kind.argv(x)}: {proc.stdout!r}")
            return loss, time.perf_counter() - lap

        c0 = _children_cpu()
        t0 = time.perf_counter()
        if parallel == 1:
            results = [one(x) for x in values]
        else:
            with ThreadPoolExecutor(parallel) as pool:
                results = list(pool.map(one, values))
        seconds = time.perf_counter() - t0
        cpu = _children_cpu() - c0
    assert len(results) == trials
    return Timing(seconds, cpu, med([lap for _, lap in results]), [])


# Analysis -----------------------------------------------------------------------------------


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def in_run_cycles(times: Sequence[tuple[float, Any, Any]], window: int) -> dict[str, float]:
    """Median trial cycle (created -> next created) and controller gap (completed -> next
    created) over the first and the last ``window`` trials of one run, in ms."""
    created = [t[0] for t in times]
    completed = [t[2] for t in times]
    cycles = [b - a for a, b in zip(created, created[1:], strict=False)]
    gaps = [c - d for d, c in zip(completed, created[1:], strict=False) if d is not None]
    w = min(window, max(1, len(cycles) // 2))
    # The controller gap in ten consecutive blocks, and its least-squares trend: a query over
    # the whole history would show as a steady climb, a busy neighbour as scatter.
    size = max(1, len(gaps) // 10)
    blocks = [1000 * med(gaps[i:i + size]) for i in range(0, size * 10, size)
              if gaps[i:i + size]]
    xs = [size * (i + 0.5) for i in range(len(blocks))]
    mx, my = statistics.fmean(xs), statistics.fmean(blocks)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, blocks, strict=True)) / sxx if sxx else 0
    return {
        "first_cycle_ms": 1000 * med(cycles[:w]),
        "last_cycle_ms": 1000 * med(cycles[-w:]),
        "first_gap_ms": 1000 * med(gaps[:w]),
        "last_gap_ms": 1000 * med(gaps[-w:]),
        "window": w,
        "gap_blocks_ms": blocks,
        "gap_trend_ms_per_1000_trials": 1000 * slope,
    }


def fmt_s(xs: Sequence[float]) -> str:
    return f"{med(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**NOT met**"


def check(x: float, limit: float) -> str:
    return "(n/a)" if math.isnan(x) else verdict(x <= limit)


# Main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5; quick 2)")
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 200)")
    ap.add_argument("--flat-sizes", default=None,
                    help="comma-separated sizes for flatness (default 100,500,2000)")
    ap.add_argument("--flat-reps", type=int, default=None,
                    help="repetitions per flatness size (default 3; 2 for sizes >= 500)")
    ap.add_argument("--kinds", default="python,python-S,sh",
                    help="trial kinds: python, python-S, sh (default all three)")
    ap.add_argument("--quick", action="store_true", help="small numbers for a smoke run")
    ap.add_argument("--katib", default=None, help="path of the katib executable")
    ap.add_argument("--json", dest="json_path", default=None, help="write results here")
    args = ap.parse_args(argv)

    reps = args.reps or (2 if args.quick else 5)
    trials = args.trials or (20 if args.quick else 200)
    sizes = sorted({int(s) for s in (args.flat_sizes or ("10,50" if args.quick else
                                                         "100,500,2000")).split(",") if s.strip()})
    if trials < 2 or reps < 1 or any(n < 2 for n in sizes):
        ap.error("--trials and flatness sizes must be >= 2, --reps >= 1")
    katib = find_katib(args.katib)
    python = katib_interpreter(katib)
    all_kinds = trial_kinds(python)
    kinds = [all_kinds[k.strip()] for k in args.kinds.split(",") if k.strip()]

    started = time.time()
    load_before = os.getloadavg()
    print(f"katib: {' '.join(katib)}; trial interpreter: {python}", file=sys.stderr)
    print(f"{len(kinds)} kinds x {reps} reps x {trials} trials; flatness {sizes}",
          file=sys.stderr)

    # Warm-up: page cache, .pyc files, first sqlite file creation.
    for kind in kinds:
        run_katib(katib, kind, 2, 1)
        run_baseline(kind, 5)

    # Overhead and parallelism, interleaved: each repetition runs every job once, in an
    # order rotated by one each time so that no job always follows the same neighbour.
    samples: dict[tuple[str, str], list[Timing]] = {}
    jobs: list[tuple[str, TrialKind]] = []
    for kind in kinds:
        jobs += [("baseline", kind), ("katib_p1", kind), ("baseline_p2", kind),
                 ("katib_p2", kind), ("katib_1", kind)]
    for rep in range(reps):
        k = rep % len(jobs)
        for job, kind in jobs[k:] + jobs[:k]:
            if job == "baseline":
                t = run_baseline(kind, trials, seed=rep + 1)
            elif job == "baseline_p2":
                t = run_baseline(kind, trials, seed=rep + 1, parallel=2)
            elif job == "katib_p1":
                t = run_katib(katib, kind, trials, 1)
            elif job == "katib_p2":
                t = run_katib(katib, kind, trials, 2)
            else:
                t = run_katib(katib, kind, 1, 1)
            t.times = []  # only the flatness runs keep them
            samples.setdefault((kind.key, job), []).append(t)
            print(f"  rep {rep + 1}/{reps} {kind.key:9} {job:9} {t.seconds:7.3f} s "
                  f"cpu {t.cpu:7.3f} s", file=sys.stderr)

    # Flatness: sh trial, P=1; each repetition also runs a 1-trial experiment to subtract.
    flat_kind = all_kinds["sh"]
    flat: dict[int, list[Timing]] = {n: [] for n in sizes}
    flat_one: list[Timing] = []
    flat_reps = {n: args.flat_reps or (2 if n >= 500 else 3) for n in sizes}
    if args.quick and not args.flat_reps:
        flat_reps = dict.fromkeys(sizes, 1)
    for rep in range(max(flat_reps.values())):
        flat_one.append(run_katib(katib, flat_kind, 1, 1))
        for n in sizes:
            if rep >= flat_reps[n]:
                continue
            res = run_katib(katib, flat_kind, n, 1)
            if n != max(sizes):
                res.times = []
            flat[n].append(res)
            print(f"  flat rep {rep + 1} n={n:5} {res.seconds:7.3f} s "
                  f"({1000 * res.seconds / n:.2f} ms/trial raw, in-run cycle "
                  f"{1000 * res.per_trial:.2f} ms)", file=sys.stderr)

    # Results ----------------------------------------------------------------------------
    rows = [summarize(kind, samples, trials) for kind in kinds]
    one_flat = med([t.seconds for t in flat_one])
    flat_rows = []
    for n in sizes:
        secs = [t.seconds for t in flat[n]]
        flat_rows.append({
            "trials": n, "seconds": secs, "ms_per_trial_raw": 1000 * med(secs) / n,
            "ms_per_trial_steady": 1000 * (med(secs) - one_flat) / (n - 1),
            "cycle_ms": 1000 * med([t.per_trial for t in flat[n]]),
        })
    first, last = flat_rows[0], flat_rows[-1]
    flat_ratio_steady = ratio_or_nan(last["ms_per_trial_steady"], first["ms_per_trial_steady"])
    flat_ratio_cycle = last["cycle_ms"] / first["cycle_ms"]
    biggest = next((t for t in reversed(flat[sizes[-1]]) if t.times), None)
    cycles = in_run_cycles(biggest.times, 100) if biggest is not None else None
    elapsed = time.time() - started

    report = render(rows, flat_rows, cycles, flat_kind, trials, reps, one_flat, len(flat_one),
                    flat_ratio_steady, flat_ratio_cycle, elapsed, load_before)
    print(report)
    if args.json_path:
        payload = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "argv": sys.argv, "katib": katib, "interpreter": python,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
            "reps": reps, "trials": trials, "overhead": rows,
            "flatness": {"kind": flat_kind.key,
                         "one_trial_s": [t.seconds for t in flat_one], "sizes": flat_rows,
                         "ratio_steady": flat_ratio_steady, "ratio_cycle": flat_ratio_cycle,
                         "in_run": cycles},
            "elapsed_s": elapsed,
        }
        Path(args.json_path).write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def ratio_or_nan(a: float, b: float) -> float:
    """a / b, or NaN when noise made either (a difference of medians) non-positive."""
    return a / b if a > 0 and b > 0 else math.nan


def summarize(kind: TrialKind, samples: dict[tuple[str, str], list[Timing]],
              trials: int) -> dict[str, Any]:
    base = samples[(kind.key, "baseline")]
    p1 = samples[(kind.key, "katib_p1")]
    p2 = samples[(kind.key, "katib_p2")]
    base2 = samples[(kind.key, "baseline_p2")]
    one = samples[(kind.key, "katib_1")]

    def secs(ts: list[Timing]) -> list[float]:
        return [t.seconds for t in ts]

    def cpus(ts: list[Timing]) -> list[float]:
        return [t.cpu for t in ts]

    b, k1, k2, o = (med(secs(x)) for x in (base, p1, p2, one))
    # Steady state: the 1-trial run holds the CLI's start-up and the database creation.
    katib_steady = (k1 - o) / (trials - 1)
    base_per_trial = b / trials
    katib_cycle = med([t.per_trial for t in p1])
    base_lap = med([t.per_trial for t in base])
    cpu_katib_steady = (med(cpus(p1)) - med(cpus(one))) / (trials - 1)
    cpu_base = med(cpus(base)) / trials
    return {
        "kind": kind.key, "label": kind.label, "command": list(kind.template),
        "baseline_s": secs(base), "baseline_p2_s": secs(base2), "katib_p1_s": secs(p1),
        "katib_p2_s": secs(p2), "katib_1trial_s": secs(one),
        "katib_p1_cycle_ms": [1000 * t.per_trial for t in p1],
        "baseline_lap_ms_samples": [1000 * t.per_trial for t in base],
        "baseline_cpu_s": cpus(base), "katib_p1_cpu_s": cpus(p1), "katib_1trial_cpu_s": cpus(one),
        # Raw: the whole `katib run` (start-up included) over the whole loop.
        "ratio_p1": k1 / b,
        # Paired by repetition: less sensitive to slow drift than a ratio of medians.
        "ratio_p1_paired": med([a.seconds / c.seconds for a, c in zip(p1, base, strict=True)]),
        "katib_ms_per_trial_steady": 1000 * katib_steady,
        "baseline_ms_per_trial": 1000 * base_per_trial,
        "ratio_steady": ratio_or_nan(katib_steady, base_per_trial),
        # In-run: median created -> next created in katib's db vs median loop iteration.
        "katib_cycle_ms": 1000 * katib_cycle,
        "baseline_lap_ms": 1000 * base_lap,
        "overhead_ms_per_trial": 1000 * (katib_cycle - base_lap),
        "ratio_cycle": katib_cycle / base_lap,
        "cpu_ms_per_trial_baseline": 1000 * cpu_base,
        "cpu_ms_per_trial_katib_steady": 1000 * cpu_katib_steady,
        "cpu_ratio_steady": ratio_or_nan(cpu_katib_steady, cpu_base),
        "katib_1trial_cpu_median_s": med(cpus(one)),
        "p2_over_p1": k2 / k1,
        "p2_over_p1_paired": med([a.seconds / c.seconds for a, c in zip(p2, p1, strict=True)]),
        "p2_over_p1_steady": ratio_or_nan(k2 - o, k1 - o),
        # What the machine gives: the plain loop with 2 workers over the plain loop.
        "baseline_p2_over_p1": med(secs(base2)) / b,
    }


def num(x: float, spec: str = ".2f") -> str:
    return "n/a (noise)" if math.isnan(x) else format(x, spec)


def render(rows: list[dict[str, Any]], flat_rows: list[dict[str, Any]],
           cycles: dict[str, float] | None, flat_kind: TrialKind, trials: int, reps: int,
           one_flat: float, n_one: int, flat_ratio_steady: float, flat_ratio_cycle: float,
           elapsed: float, load_before: tuple[float, float, float]) -> str:
    out: list[str] = []
    out.append(f"Wall time, N={trials} trials, {reps} repetitions: median (min–max) seconds. "
               "Ratios: of medians (median of per-repetition ratios).\n")
    out.append("| trial command | baseline loop | katib P=1 | katib 1-trial | katib/baseline "
               "P=1 | katib P=2 | katib P2/P1 | katib P2/P1 steady | baseline 2 workers "
               "| baseline P2/P1 |")
    out.append("|" + "---|" * 10)
    for r in rows:
        out.append(
            f"| `{r['label']}` | {fmt_s(r['baseline_s'])} | {fmt_s(r['katib_p1_s'])} "
            f"| {fmt_s(r['katib_1trial_s'])} | {r['ratio_p1']:.2f} ({r['ratio_p1_paired']:.2f}) "
            f"| {fmt_s(r['katib_p2_s'])} | {r['p2_over_p1']:.2f} ({r['p2_over_p1_paired']:.2f}) "
            f"| {num(r['p2_over_p1_steady'])} | {fmt_s(r['baseline_p2_s'])} "
            f"| {r['baseline_p2_over_p1']:.2f} |"
        )
    out.append("")
    out.append("Per trial at P=1, ms. *steady* = (T(N) − T(1)) / (N − 1), the 1-trial run "
               "holding the CLI start-up and database creation; *in-run* = median time from "
               "one trial's creation to the next one's (db timestamps) against the median "
               "loop iteration; CPU = user+sys of the whole process tree.\n")
    out.append("| trial command | baseline | katib steady | ratio steady | katib in-run "
               "| ratio in-run | overhead in-run | CPU baseline | CPU katib steady | CPU ratio |")
    out.append("|" + "---|" * 10)
    for r in rows:
        out.append(
            f"| `{r['label']}` | {r['baseline_ms_per_trial']:.1f} "
            f"| {r['katib_ms_per_trial_steady']:.1f} | {num(r['ratio_steady'])} "
            f"| {r['katib_cycle_ms']:.1f} | {r['ratio_cycle']:.2f} "
            f"| {r['overhead_ms_per_trial']:+.1f} | {r['cpu_ms_per_trial_baseline']:.1f} "
            f"| {r['cpu_ms_per_trial_katib_steady']:.1f} | {num(r['cpu_ratio_steady'])} |"
        )
    out.append("")
    out.append(f"Flatness: `{flat_kind.label}` trial, P=1; 1-trial run {one_flat:.2f} s "
               f"(median of {n_one}).\n")
    out.append("| trials | reps | median s | ms/trial raw | ms/trial steady | in-run cycle ms |")
    out.append("|---|---|---|---|---|---|")
    for f in flat_rows:
        out.append(f"| {f['trials']} | {len(f['seconds'])} | {med(f['seconds']):.2f} "
                   f"| {f['ms_per_trial_raw']:.2f} | {num(f['ms_per_trial_steady'])} "
                   f"| {f['cycle_ms']:.2f} |")
    out.append("")
    big, small = flat_rows[-1]["trials"], flat_rows[0]["trials"]
    out.append(f"Per-trial time at {big} / at {small}: steady {num(flat_ratio_steady)}, "
               f"in-run cycle {flat_ratio_cycle:.2f}.")
    if cycles is not None:
        out.append(
            f"Inside one {big}-trial run (medians over {cycles['window']} trials): cycle "
            f"{cycles['first_cycle_ms']:.2f} ms (first) vs {cycles['last_cycle_ms']:.2f} ms "
            f"(last); controller gap, trial completed → next created, "
            f"{cycles['first_gap_ms']:.2f} ms vs {cycles['last_gap_ms']:.2f} ms; gap by tenth "
            f"of the run {' '.join(f'{b:.2f}' for b in cycles['gap_blocks_ms'])} ms, trend "
            f"{cycles['gap_trend_ms_per_1000_trials']:+.2f} ms per 1,000 trials."
        )
    out.append("")
    out.append("Targets:")
    for r in rows:
        out.append(
            f"- `{r['label']}`: katib/baseline at P=1 ≤ {TARGET_RATIO_P1}: raw "
            f"{r['ratio_p1']:.2f} {check(r['ratio_p1'], TARGET_RATIO_P1)}, steady "
            f"{num(r['ratio_steady'])} {check(r['ratio_steady'], TARGET_RATIO_P1)}, "
            f"in-run {r['ratio_cycle']:.2f} {check(r['ratio_cycle'], TARGET_RATIO_P1)}; "
            f"P2/P1 ≤ {TARGET_P2_OVER_P1}: raw {r['p2_over_p1']:.2f} "
            f"{check(r['p2_over_p1'], TARGET_P2_OVER_P1)}, steady "
            f"{num(r['p2_over_p1_steady'])} "
            f"{check(r['p2_over_p1_steady'], TARGET_P2_OVER_P1)} (the plain loop with 2 "
            f"workers: {r['baseline_p2_over_p1']:.2f})"
        )
    # Judged across sizes (independent runs, medians of whole cycles); the trend inside the
    # largest run is reported above, as on a shared machine its ends see different loads.
    flat_ok = flat_ratio_cycle <= FLAT_TOLERANCE
    detail = f"in-run cycle {big}/{small} {flat_ratio_cycle:.2f}"
    out.append(f"- per-trial time flat from {small} to {big} trials (≤ {FLAT_TOLERANCE}×; "
               f"{detail}): {verdict(flat_ok)}")
    out.append("")
    out.append(f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
               f"{platform.python_version()}; load average before "
               f"{', '.join(f'{x:.2f}' for x in load_before)}, after "
               f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; benchmark took "
               f"{elapsed / 60:.1f} min.")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
