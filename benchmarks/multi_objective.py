"""Multi-objective tuning: the hypervolume each algorithm's trials reach on ZDT1 and DTLZ2,
beside optuna's samplers used directly.

Requirement (issue "Beyond Katib"): compare multi-objective runs with optuna's NSGA-II on a
standard problem by hypervolume, >= 10 seeds. Registered algorithms are driven in-process
through their contract (``suggest(1)``, evaluate, ``update`` with every objective's value),
as the controller drives them; the references are optuna studies (``ask``/``tell``).

* ``zdt1``: ZDT1 with 6 variables on [0, 1] (two objectives, both minimized; the front is
  f2 = 1 - sqrt(f1)); hypervolume against the reference point (1.1, 11).
* ``dtlz2``: DTLZ2 with 3 objectives and 7 variables (the front is the positive octant of
  the unit sphere); reference point (2.5, 2.5, 2.5).

The figure is the hypervolume of all trials after 50, 100 and 200 trials (larger is
better), median over seeds; ``--compare A=B`` adds Mann-Whitney U tests and a bootstrap
interval over seeds, as ``sample_efficiency.py`` does.

    python benchmarks/multi_objective.py --seeds 10 --jobs 2 \\
        --compare nsga2=optuna-nsga2 --compare nsga3=optuna-nsga3 --compare tpe=optuna-motpe
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_efficiency import (  # noqa: E402 - after the path set-up above
    Comparison,
    compare,
    render_comparisons,
)

from suggestion import SUCCEEDED, Parameter, SearchSpace, TrialRecord, get_algorithm  # noqa: E402

BUDGETS = (50, 100, 200)
REFERENCES = ("optuna-nsga2", "optuna-nsga3", "optuna-motpe", "optuna-random")
DEFAULT = ("nsga2", "nsga3", "tpe", "random", *REFERENCES)


@dataclass(frozen=True)
class Problem:
    name: str
    space: SearchSpace
    evaluate: Callable[[Mapping[str, float]], tuple[float, ...]]
    reference: tuple[float, ...]


def zdt1(p: Mapping[str, float]) -> tuple[float, ...]:
    x = [float(p[f"x{i}"]) for i in range(6)]
    g = 1 + 9 * sum(x[1:]) / 5
    return x[0], g * (1 - math.sqrt(x[0] / g))


def dtlz2(p: Mapping[str, float]) -> tuple[float, ...]:
    x = [float(p[f"x{i}"]) for i in range(7)]
    g = sum((xi - 0.5) ** 2 for xi in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return (
        (1 + g) * math.cos(a) * math.cos(b),
        (1 + g) * math.cos(a) * math.sin(b),
        (1 + g) * math.sin(a),
    )


def _unit_space(n: int) -> SearchSpace:
    return SearchSpace(tuple(Parameter(f"x{i}", "double", min=0.0, max=1.0) for i in range(n)))


PROBLEMS = {
    "zdt1": Problem("zdt1", _unit_space(6), zdt1, (1.1, 11.0)),
    "dtlz2": Problem("dtlz2", _unit_space(7), dtlz2, (2.5, 2.5, 2.5)),
}


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Hypervolume (all objectives minimized) of ``points`` against ``reference``."""
    from optuna._hypervolume import compute_hypervolume

    ref = np.asarray(reference, dtype=float)
    inside = [p for p in points if all(v < r for v, r in zip(p, ref, strict=True))]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.asarray(inside, dtype=float), ref))


def run_algorithm(name: str, problem: Problem, seed: int, trials: int) -> list[list[float]]:
    cls = get_algorithm(name)
    settings = {"random_state": str(seed)} if "random_state" in cls.settings_spec else {}
    n = len(problem.reference)
    algorithm = cls(
        problem.space, maximize=False, settings=settings, max_trial_count=trials,
        parallel_trial_count=1, directions=(False,) * n,
    )
    out: list[list[float]] = []
    for i in range(trials):
        [assignments] = algorithm.suggest(1)
        values = problem.evaluate(problem.space.parse(assignments))  # type: ignore[arg-type]
        out.append(list(values))
        algorithm.update(
            [TrialRecord(f"t{i:05d}", assignments, SUCCEEDED, values[0], values=values)], []
        )
    return out


def run_optuna(kind: str, problem: Problem, seed: int, trials: int) -> list[list[float]]:
    import optuna
    from optuna.distributions import FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler: Any
    if kind == "optuna-nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    elif kind == "optuna-nsga3":
        sampler = optuna.samplers.NSGAIIISampler(seed=seed)
    elif kind == "optuna-motpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    n = len(problem.reference)
    study = optuna.create_study(sampler=sampler, directions=["minimize"] * n)
    distributions = {p.name: FloatDistribution(p.low, p.high) for p in problem.space}
    out: list[list[float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            trial = study.ask(distributions)
            values = problem.evaluate(trial.params)
            study.tell(trial, list(values))
            out.append(list(values))
    return out


def run_one(task: tuple[str, str, int, int]) -> dict[str, Any]:
    contender, problem_name, seed, trials = task
    from threadpoolctl import threadpool_limits

    problem = PROBLEMS[problem_name]
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    with threadpool_limits(1):
        if contender.startswith("optuna-"):
            values = run_optuna(contender, problem, seed, trials)
        else:
            values = run_algorithm(contender, problem, seed, trials)
    return {
        "contender": contender,
        "problem": problem_name,
        "seed": seed,
        "values": values,
        "seconds": time.perf_counter() - started,
    }


def hv_after(run: Mapping[str, Any], n: int) -> float:
    return hypervolume(run["values"][:n], PROBLEMS[run["problem"]].reference)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algorithms", default=",".join(DEFAULT))
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=max(BUDGETS))
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--compare", action="append", default=[], metavar="A=B")
    ap.add_argument("--json", dest="json_path", default=None)
    args = ap.parse_args(argv)

    contenders = [c.strip() for c in args.algorithms.split(",") if c.strip()]
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    budgets = [b for b in BUDGETS if b <= args.trials] or [args.trials]
    tasks = [(c, p, s, args.trials) for p in problems for c in contenders
             for s in range(args.seeds)]
    print(f"{len(tasks)} runs of {args.trials} trials, {args.jobs} worker(s), load "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    started = time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(run_one, tasks))

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Multi-objective, {stamp}, {args.seeds} seeds, {args.trials} trials; "
          f"{time.time() - started:.0f}s wall\n")
    for problem in problems:
        ref = PROBLEMS[problem].reference
        print(f"### {problem} (hypervolume against {ref}; larger is better)\n")
        cols = ["contender", "seeds", *[f"median HV @{n}" for n in budgets], "s / run"]
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for contender in contenders:
            mine = [r for r in runs if r["problem"] == problem and r["contender"] == contender]
            cells = [contender, str(len(mine))]
            cells += [f"{statistics.median(hv_after(r, n) for r in mine):.4f}" for n in budgets]
            cells.append(f"{statistics.median(r['seconds'] for r in mine):.1f}")
            print("| " + " | ".join(cells) + " |")
        print()
    found: list[Comparison] = []
    for item in args.compare:
        a, _, b = item.partition("=")
        for problem in problems:
            for n in budgets:
                va = [hv_after(r, n) for r in runs if r["problem"] == problem
                      and r["contender"] == a]
                vb = [hv_after(r, n) for r in runs if r["problem"] == problem
                      and r["contender"] == b]
                if len(va) >= 2 and len(vb) >= 2:
                    found.append(compare(problem, va, vb, (a, b), n, maximize=True))
    if found:
        print("### Comparisons of hypervolume over seeds (larger is better; A as good as B "
              "unless p (A worse) < 0.05)\n")
        print(render_comparisons(found) + "\n")
    if args.json_path:
        import json

        Path(args.json_path).write_text(json.dumps({"date": stamp, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
