"""Suggestion latency: how long one ``suggest(1)`` takes with 100, 1,000 and 10,000 finished
trials behind it, for every registered algorithm.

Requirement (issue "Suggestion algorithms"), 5 parameters:

* random, sobol, grid <= 5 ms at 10,000 trials; tpe and multivariate-tpe <= 50 ms at 1,000;
  cmaes <= 20 ms at 10,000; bayesianoptimization <= 0.3 s at 100 and <= 3 s at 1,000 (it is
  not run at 10,000), and its ratio to scikit-optimize's ``Optimizer`` in Katib's
  configuration (GP, gp_hedge, auto, 10 initial points), whose ask+tell is timed in the same
  run at 50 and 100 trials.

Each algorithm gets the first space it accepts (``validate_space``): ``mixed`` (3 doubles, one
log-uniform, 1 int, 1 categorical), else ``numeric`` (4 doubles, 1 int), else ``stepped`` (the
mixed space with steps on the doubles; grid); bayesianoptimization is timed on ``numeric`` as
well, where it polishes with L-BFGS-B. The history is N finished trials at random points of
that space with a smooth test objective, fed in one ``update`` (timed: that is what a
restarted controller does). Then ``--reps`` times: time ``suggest(1)``, report the suggestion
as a finished trial. The first call is shown on its own (a model-based algorithm fits from
scratch there); the figure held against the target is the median of the calls after it, and
their mean shows the amortized cost (bayesianoptimization refits its kernel once the history
has grown by a tenth, so 12 calls at 100 trials include one refit).

    python benchmarks/suggestion_latency.py                       # ~10 minutes on 2 cores
    python benchmarks/suggestion_latency.py --quick               # 100 and 1,000 only
    python benchmarks/suggestion_latency.py --algorithms bayesianoptimization --sizes 50,100
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suggestion import (  # noqa: E402 - after the path set-up above
    SUCCEEDED,
    Algorithm,
    Parameter,
    SearchSpace,
    TrialRecord,
    algorithm_names,
    get_algorithm,
)
from suggestion.algorithms.random import sample_parameter  # noqa: E402

SIZES = (100, 1_000, 10_000)
#: Largest history each algorithm is timed at (the GP's cost grows with n^2 to n^3).
SIZE_CAP = {"bayesianoptimization": 1_000}
#: Extra sizes for the comparison with scikit-optimize.
EXTRA_SIZES = {"bayesianoptimization": (50,)}
#: Further spaces timed for one algorithm (the GP polishes with L-BFGS-B only when every
#: parameter is numeric).
EXTRA_SPACES = {"bayesianoptimization": ("numeric",)}
SKOPT_SIZES = (50, 100)
#: (algorithm, history size) -> target seconds.
TARGETS: dict[tuple[str, int], float] = {
    ("random", 10_000): 0.005,
    ("sobol", 10_000): 0.005,
    ("grid", 10_000): 0.005,
    ("tpe", 1_000): 0.05,
    ("multivariate-tpe", 1_000): 0.05,
    ("cmaes", 10_000): 0.02,
    ("bayesianoptimization", 100): 0.3,
    ("bayesianoptimization", 1_000): 3.0,
}
#: Stop growing the history for an algorithm once one call takes longer than this.
GIVE_UP_SECONDS = 60.0

SPACES = {
    "mixed": SearchSpace(
        (
            Parameter("x", "double", min=-5.0, max=10.0),
            Parameter("y", "double", min=0.0, max=1.0),
            Parameter("lr", "double", min=1e-5, max=1e-1, distribution="logUniform"),
            Parameter("layers", "int", min=1, max=16),
            Parameter("act", "categorical", values=("relu", "tanh", "gelu")),
        )
    ),
    "numeric": SearchSpace(
        (
            Parameter("x", "double", min=-5.0, max=10.0),
            Parameter("y", "double", min=0.0, max=1.0),
            Parameter("lr", "double", min=1e-5, max=1e-1, distribution="logUniform"),
            Parameter("z", "double", min=-1.0, max=1.0),
            Parameter("layers", "int", min=1, max=16),
        )
    ),
    # 61 * 41 * 41 * 16 * 3 = 4.9 million points: room for 10,000 trials and more.
    "stepped": SearchSpace(
        (
            Parameter("x", "double", min=-5.0, max=10.0, step=0.25),
            Parameter("y", "double", min=0.0, max=1.0, step=0.025),
            Parameter("lr", "double", min=0.0, max=0.1, step=0.0025),
            Parameter("layers", "int", min=1, max=16),
            Parameter("act", "categorical", values=("relu", "tanh", "gelu")),
        )
    ),
}


def objective(space: SearchSpace, assignments: dict[str, str]) -> float:
    """A smooth bowl in the unit cube (log scale for log parameters) plus a category offset."""
    total = 0.0
    for param in space:
        text = assignments[param.name]
        if param.is_numeric:
            value, low, high = float(text), param.low, param.high
            if param.distribution == "logUniform":
                value, low, high = math.log(value), math.log(low), math.log(high)
            total += ((value - low) / (high - low) - 0.3) ** 2
        else:
            total += 0.1 * param.values.index(text)
    return total


def history(space: SearchSpace, size: int, seed: int = 0) -> list[TrialRecord]:
    rng = np.random.default_rng(seed)
    out: list[TrialRecord] = []
    for i in range(size):
        assignments = {p.name: sample_parameter(p, rng) for p in space}
        out.append(TrialRecord(f"h-{i:06d}", assignments, SUCCEEDED, objective(space, assignments)))
    return out


def settings_for(cls: type[Algorithm]) -> dict[str, str]:
    return {"random_state": "1"} if "random_state" in cls.settings_spec else {}


def choose_space(name: str, max_trials: int) -> tuple[str | None, str]:
    """The first space the algorithm accepts, or None and why it accepts none."""
    try:
        cls = get_algorithm(name)
    except Exception as e:  # a registered name whose module is missing
        return None, f"not loadable: {e}"
    settings = settings_for(cls)
    problems = cls.validate_settings(settings)
    if problems:
        return None, "; ".join(f"{k}: {m}" for k, m in problems)
    reasons: list[str] = []
    for space_name, space in SPACES.items():
        found = cls.validate_space(
            space, settings=settings, max_trial_count=max_trials, parallel_trial_count=1
        )
        if not found:
            return space_name, ""
        reasons.append(f"{space_name}: " + "; ".join(f"{k or 'space'}: {m}" for k, m in found))
    return None, " | ".join(reasons)[:200]


@dataclass
class Measurement:
    algorithm: str
    space: str
    size: int
    update_seconds: float
    first_seconds: float
    median_seconds: float
    mean_seconds: float
    samples: list[float]

    @property
    def target(self) -> float | None:
        return TARGETS.get((self.algorithm, self.size))


def measure(name: str, space_name: str, size: int, reps: int) -> Measurement:
    cls = get_algorithm(name)
    space = SPACES[space_name]
    algorithm = cls(
        space,
        maximize=False,
        settings=settings_for(cls),
        max_trial_count=size + reps + 1,
        parallel_trial_count=1,
    )
    trials = history(space, size)
    started = time.perf_counter()
    algorithm.update(trials, [])
    update_seconds = time.perf_counter() - started
    samples: list[float] = []
    for i in range(reps):
        started = time.perf_counter()
        suggestions = algorithm.suggest(1)
        samples.append(time.perf_counter() - started)
        if not suggestions:
            break
        value = objective(space, suggestions[0])
        algorithm.update([TrialRecord(f"n-{i:04d}", suggestions[0], SUCCEEDED, value)], [])
        if samples[-1] > GIVE_UP_SECONDS:
            break
    later = samples[1:] or samples
    return Measurement(
        name,
        space_name,
        size,
        update_seconds,
        samples[0],
        statistics.median(later),
        statistics.fmean(later),
        samples,
    )


def measure_skopt(size: int, reps: int, one_thread: bool) -> list[float]:
    """ask+tell of Katib's skopt Optimizer after ``size`` told trials, ``reps`` times."""
    from contextlib import nullcontext

    from skopt import Optimizer
    from skopt.space import Categorical, Integer, Real
    from threadpoolctl import threadpool_limits

    space = SPACES["mixed"]
    dims = [
        Real(-5.0, 10.0, name="x"),
        Real(0.0, 1.0, name="y"),
        Real(1e-5, 1e-1, prior="log-uniform", name="lr"),
        Integer(1, 16, name="layers"),
        Categorical(["relu", "tanh", "gelu"], name="act"),
    ]
    optimizer = Optimizer(
        dims,
        base_estimator="GP",
        acq_func="gp_hedge",
        acq_optimizer="auto",
        n_initial_points=10,
        random_state=1,
    )
    trials = history(space, size)
    points = [[space.parse(t.assignments)[p.name] for p in space] for t in trials]
    samples: list[float] = []
    limit = threadpool_limits(1) if one_thread else nullcontext()
    with warnings.catch_warnings(), limit:
        warnings.simplefilter("ignore")
        optimizer.tell(points, [t.objective for t in trials])
        for _ in range(reps):
            started = time.perf_counter()
            point = optimizer.ask()
            assignments = {p.name: str(v) for p, v in zip(space, point, strict=True)}
            optimizer.tell(point, objective(space, assignments))
            samples.append(time.perf_counter() - started)
    return samples


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="sizes 100 and 1,000, 3 calls each")
    ap.add_argument("--algorithms", default=None, help="comma-separated names (default all)")
    ap.add_argument("--sizes", default=None, help="history sizes (default 100,1000,10000)")
    ap.add_argument("--reps", type=int, default=None, help="suggest calls per size (default 12)")
    ap.add_argument("--skopt-reps", type=int, default=None, help="skopt ask+tell calls (5)")
    ap.add_argument("--no-skopt", action="store_true", help="skip the scikit-optimize reference")
    ap.add_argument("--json", dest="json_path", default=None, help="write results here")
    args = ap.parse_args(argv)

    sizes = (
        [int(s) for s in args.sizes.split(",") if s.strip()]
        if args.sizes
        else ([100, 1_000] if args.quick else list(SIZES))
    )
    reps = args.reps or (3 if args.quick else 12)
    skopt_reps = args.skopt_reps or (2 if args.quick else 5)
    names = (
        [a.strip() for a in args.algorithms.split(",") if a.strip()]
        if args.algorithms
        else algorithm_names()
    )

    started = time.time()
    load = os.getloadavg()
    results: list[Measurement] = []
    skipped: dict[str, str] = {}
    for name in names:
        space_name, reason = choose_space(name, max(sizes) + reps + 1)
        if space_name is None:
            skipped[name] = reason
            print(f"skip {name}: {reason}", file=sys.stderr, flush=True)
            continue
        cap = SIZE_CAP.get(name)
        own_sizes = sorted({*sizes, *EXTRA_SIZES.get(name, ())} if not args.sizes else sizes)
        for space in (space_name, *EXTRA_SPACES.get(name, ())):
            for size in own_sizes:
                if cap is not None and size > cap:
                    continue
                m = measure(name, space, size, reps)
                results.append(m)
                print(
                    f"{name} [{space}] n={size}: first {fmt(m.first_seconds)}, "
                    f"median {fmt(m.median_seconds)}, mean {fmt(m.mean_seconds)}, "
                    f"update {fmt(m.update_seconds)}",
                    file=sys.stderr,
                    flush=True,
                )
                if m.median_seconds > GIVE_UP_SECONDS:
                    break

    skopt: dict[str, dict[int, list[float]]] = {}
    if not args.no_skopt:
        for label, one_thread in (("default BLAS threads", False), ("1 BLAS thread", True)):
            skopt[label] = {}
            for size in SKOPT_SIZES:
                skopt[label][size] = measure_skopt(size, skopt_reps, one_thread)
                median = statistics.median(skopt[label][size])
                print(
                    f"skopt ({label}) n={size}: median {fmt(median)}",
                    file=sys.stderr,
                    flush=True,
                )

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Suggestion latency, {stamp}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} at start; "
        f"{reps} suggest calls per size; {time.time() - started:.0f}s wall\n"
    )
    print(
        "| algorithm | space | finished trials | bulk update | first call | median call "
        "| mean call | target | met |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for m in results:
        target = m.target
        met = "" if target is None else ("yes" if m.median_seconds <= target else "**no**")
        print(
            f"| {m.algorithm} | {m.space} | {m.size:,} | {fmt(m.update_seconds)} | "
            f"{fmt(m.first_seconds)} | {fmt(m.median_seconds)} | {fmt(m.mean_seconds)} | "
            f"{'≤ ' + fmt(target) if target else ''} | {met} |"
        )
    for name, reason in skipped.items():
        print(f"\n- skipped {name}: {reason}")

    ours = {
        m.size: m.median_seconds
        for m in results
        if m.algorithm == "bayesianoptimization" and m.space == "mixed"
    }
    if skopt:
        print(
            "\nscikit-optimize Optimizer, Katib's configuration, mixed space, "
            f"ask+tell median of {skopt_reps}:\n"
        )
        print(
            "| finished trials | skopt (default BLAS threads) | skopt (1 BLAS thread) "
            "| bayesianoptimization | ratio ours / skopt (default, 1 thread) |"
        )
        print("|---|---|---|---|---|")
        for size in SKOPT_SIZES:
            default = statistics.median(skopt["default BLAS threads"][size])
            single = statistics.median(skopt["1 BLAS thread"][size])
            mine = ours.get(size)
            ratio = "—" if mine is None else f"{mine / default:.3f}, {mine / single:.3f}"
            print(f"| {size} | {fmt(default)} | {fmt(single)} | {fmt(mine)} | {ratio} |")

    if args.json_path:
        payload = {
            "date": stamp,
            "load_average": load,
            "reps": reps,
            "skopt_reps": skopt_reps,
            "results": [m.__dict__ | {"target": m.target} for m in results],
            "skipped": skipped,
            "skopt": {k: {str(n): v for n, v in d.items()} for k, d in skopt.items()},
        }
        Path(args.json_path).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
