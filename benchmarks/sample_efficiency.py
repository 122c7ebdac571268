"""Sample efficiency: the best objective value each suggestion algorithm reaches after 20, 50 and
100 trials, beside the reference libraries used directly.

Requirement (issue "Suggestion algorithms"): every registered algorithm, driven in-process
through its contract (``suggest(1)``, evaluate, ``update``), on

* Branin (2-D, optimum 0.397887; ``branin-grid``: on a 31 x 31 grid), Hartmann6 (6-D,
  optimum -3.32237), Rosenbrock (5-D on [-5, 10]^5, optimum 0), and
* ``svc-digits``: an SVC on 600 samples of scikit-learn's ``load_digits`` (3-fold
  cross-validated error; C and gamma log-uniform, kernel categorical, degree int),

against optuna's TPESampler (its defaults, multivariate since optuna 5, and
``multivariate=False``), CmaEsSampler, QMCSampler (scrambled sobol) and RandomSampler and
scikit-optimize's ``Optimizer`` with Katib's configuration (GP, gp_hedge, auto, 10 initial
points; what Katib's ``bayesianoptimization`` service runs, ``gp_minimize``'s loop), all
minimizing. The figure is the median over seeds of the best value after N trials.

Algorithms whose ``validate_space`` or ``validate_settings({})`` refuse a problem (grid needs
steps, hyperband needs a resource parameter, ...) are listed as skipped with the reason.

    python benchmarks/sample_efficiency.py                      # 10 seeds (5 for slow ones)
    python benchmarks/sample_efficiency.py --quick              # smoke run, about a minute
    python benchmarks/sample_efficiency.py --algorithms bayesianoptimization,skopt-gp \\
        --problems branin,hartmann6 --seeds 5 --jobs 2 --json out.json
    python benchmarks/sample_efficiency.py --algorithms tpe,optuna-tpe-independent \\
        --problems hartmann6 --seeds 20 --compare tpe=optuna-tpe-independent

``--compare A=B`` adds, per problem and budget, whether A is as good as B over the seeds: the
medians, a 95% bootstrap interval of their difference, the probability that a seed of A beats
one of B, and Mann-Whitney U p-values (one-sided "A worse", and two-sided).
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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suggestion import (  # noqa: E402 - after the path set-up above
    SUCCEEDED,
    Parameter,
    SearchSpace,
    TrialRecord,
    algorithm_names,
    get_algorithm,
)

BUDGETS = (20, 50, 100)
#: Library references, driven directly (not through the contract).
REFERENCES = (
    "optuna-tpe",
    "optuna-tpe-independent",
    "optuna-cmaes",
    "optuna-sobol",
    "optuna-random",
    "skopt-gp",
)
#: Slow contenders get fewer seeds (``--slow-seeds``): a GP refit per trial.
SLOW = {"bayesianoptimization", "skopt-gp"}


# --- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    name: str
    space: SearchSpace
    evaluate: Callable[[Mapping[str, Any]], float]
    optimum: float | None
    slow: bool = False
    note: str = ""


def branin(p: Mapping[str, Any]) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi
    r, s, t = 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def rosenbrock5(p: Mapping[str, Any]) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(5)])
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


@cache
def _digits() -> tuple[Any, Any]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = rng.permutation(len(y))[:600]
    return x[keep] / 16.0, y[keep]


_SVC_CACHE: dict[tuple[Any, ...], float] = {}


def svc_digits(p: Mapping[str, Any]) -> float:
    """3-fold cross-validated error of an SVC; memoized (the same point costs once)."""
    key = (float(p["C"]), float(p["gamma"]), str(p["kernel"]), int(p["degree"]))
    if key not in _SVC_CACHE:
        from sklearn.model_selection import cross_val_score
        from sklearn.svm import SVC

        x, y = _digits()
        model = SVC(C=key[0], gamma=key[1], kernel=key[2], degree=key[3], max_iter=20000)
        _SVC_CACHE[key] = float(1.0 - cross_val_score(model, x, y, cv=3).mean())
    return _SVC_CACHE[key]


PROBLEMS: dict[str, Problem] = {
    "branin": Problem(
        "branin",
        SearchSpace(
            (
                Parameter("x1", "double", min=-5.0, max=10.0),
                Parameter("x2", "double", min=0.0, max=15.0),
            )
        ),
        branin,
        0.397887,
    ),
    "hartmann6": Problem(
        "hartmann6",
        SearchSpace(tuple(Parameter(f"x{i}", "double", min=0.0, max=1.0) for i in range(6))),
        hartmann6,
        -3.32237,
    ),
    "rosenbrock5": Problem(
        "rosenbrock5",
        SearchSpace(tuple(Parameter(f"x{i}", "double", min=-5.0, max=10.0) for i in range(5))),
        rosenbrock5,
        0.0,
    ),
    # Branin on a 31 x 31 grid (step 0.5), where grid search takes part; run it with a
    # budget much smaller than the grid (``--trials 16``) to see whether one corner or the
    # whole space is sampled.
    "branin-grid": Problem(
        "branin-grid",
        SearchSpace(
            (
                Parameter("x1", "double", min=-5.0, max=10.0, step=0.5),
                Parameter("x2", "double", min=0.0, max=15.0, step=0.5),
            )
        ),
        branin,
        0.397887,
        note="31 x 31 points",
    ),
    "svc-digits": Problem(
        "svc-digits",
        SearchSpace(
            (
                Parameter("C", "double", min=1e-2, max=1e3, distribution="logUniform"),
                Parameter("gamma", "double", min=1e-4, max=10.0, distribution="logUniform"),
                Parameter("kernel", "categorical", values=("rbf", "poly", "sigmoid")),
                Parameter("degree", "int", min=2, max=5),
            )
        ),
        svc_digits,
        None,
        slow=True,
        note="600 digits, 3-fold CV error",
    ),
}


# --- contenders -------------------------------------------------------------------------------


def run_algorithm(name: str, problem: Problem, seed: int, trials: int) -> list[float]:
    """Objective values in trial order, driving a registered algorithm through its contract."""
    cls = get_algorithm(name)
    settings = {"random_state": str(seed)} if "random_state" in cls.settings_spec else {}
    algorithm = cls(
        problem.space,
        maximize=False,
        settings=settings,
        max_trial_count=trials,
        parallel_trial_count=1,
    )
    values: list[float] = []
    for i in range(trials):
        suggestions = algorithm.suggest(1)
        if not suggestions:
            break
        assignments = suggestions[0]
        value = problem.evaluate(problem.space.parse(assignments))
        values.append(value)
        algorithm.update([TrialRecord(f"trial-{i:05d}", assignments, SUCCEEDED, value)], [])
    return values


def _optuna_distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in space:
        log = p.distribution in ("logUniform", "logNormal")
        if p.type == "double":
            out[p.name] = FloatDistribution(p.low, p.high, log=log)
        elif p.type == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=log)
        else:
            out[p.name] = CategoricalDistribution(list(p.values))
    return out


def run_optuna(kind: str, problem: Problem, seed: int, trials: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler: Any
    if kind == "optuna-tpe":  # the library's defaults: multivariate since optuna 5
        sampler = optuna.samplers.TPESampler(seed=seed)
    elif kind == "optuna-tpe-independent":  # one Parzen estimator per parameter, classic TPE
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=False)
    elif kind == "optuna-cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    elif kind == "optuna-sobol":
        # Scrambled, so that seeds differ (unscrambled, every seed walks the same sequence).
        sampler = optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False
        )
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler, direction="minimize")
    distributions = _optuna_distributions(problem.space)
    values: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            trial = study.ask(distributions)
            value = problem.evaluate(trial.params)
            study.tell(trial, value)
            values.append(value)
    return values


def skopt_dimensions(space: SearchSpace) -> list[Any]:
    from skopt.space import Categorical, Integer, Real

    dims: list[Any] = []
    for p in space:
        prior = "log-uniform" if p.distribution in ("logUniform", "logNormal") else "uniform"
        if p.type == "double":
            dims.append(Real(p.low, p.high, prior=prior, name=p.name))
        elif p.type == "int":
            dims.append(Integer(int(p.low), int(p.high), prior=prior, name=p.name))
        else:
            dims.append(Categorical(list(p.values), name=p.name))
    return dims


def katib_skopt_optimizer(space: SearchSpace, seed: int) -> Any:
    """scikit-optimize's Optimizer as Katib's bayesianoptimization service builds it."""
    from skopt import Optimizer

    return Optimizer(
        skopt_dimensions(space),
        base_estimator="GP",
        n_initial_points=10,
        acq_func="gp_hedge",
        acq_optimizer="auto",
        random_state=seed,
    )


def run_skopt(problem: Problem, seed: int, trials: int) -> list[float]:
    optimizer = katib_skopt_optimizer(problem.space, seed)
    names = problem.space.names
    values: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(trials):
            point = optimizer.ask()
            value = problem.evaluate(dict(zip(names, point, strict=True)))
            optimizer.tell(point, value)
            values.append(value)
    return values


def skip_reason(name: str, problem: Problem, trials: int) -> str | None:
    """Why a registered algorithm cannot run on a problem (None: it can)."""
    try:
        cls = get_algorithm(name)
    except Exception as e:  # a registered name whose module is missing
        return f"not loadable: {e}"
    settings = {"random_state": "1"} if "random_state" in cls.settings_spec else {}
    problems: list[Any] = list(cls.validate_settings(settings))
    problems += cls.validate_space(
        problem.space, settings=settings, max_trial_count=trials, parallel_trial_count=1
    )
    if problems:
        return "; ".join(f"{k or 'space'}: {m}" for k, m in problems)[:140]
    return None


def run_one(task: tuple[str, str, int, int]) -> dict[str, Any]:
    """One (contender, problem, seed) run; executed in a worker process."""
    contender, problem_name, seed, trials = task
    from threadpoolctl import threadpool_limits

    problem = PROBLEMS[problem_name]
    warnings.filterwarnings("ignore")  # convergence chatter from SVC, skopt, optuna
    started = time.perf_counter()
    with threadpool_limits(1):  # workers share 2 cores; small BLAS calls only lose on threads
        if contender == "skopt-gp":
            values = run_skopt(problem, seed, trials)
        elif contender.startswith("optuna-"):
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


def best_after(values: Sequence[float], n: int) -> float | None:
    if not values:
        return None
    return min(values[:n])


# --- reporting --------------------------------------------------------------------------------


@dataclass
class Table:
    problem: Problem
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def summarize(table: Table, budgets: Sequence[int]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for contender, runs in table.rows.items():
        row: dict[str, Any] = {"contender": contender, "seeds": len(runs)}
        for n in budgets:
            bests = [b for r in runs if (b := best_after(r["values"], n)) is not None]
            row[f"best@{n}"] = statistics.median(bests) if bests else None
        row["seconds_per_run"] = statistics.median(r["seconds"] for r in runs)
        out.append(row)
    return out


def render(table: Table, budgets: Sequence[int]) -> str:
    problem = table.problem
    optimum = "unknown" if problem.optimum is None else f"{problem.optimum:g}"
    head = f"### {problem.name} (optimum {optimum}{'; ' + problem.note if problem.note else ''})"
    cols = ["contender", "seeds", *[f"median best @{n}" for n in budgets], "s / run"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in summarize(table, budgets):
        cells = [row["contender"], str(row["seeds"])]
        cells += ["—" if row[f"best@{n}"] is None else f"{row[f'best@{n}']:.4g}" for n in budgets]
        cells.append(f"{row['seconds_per_run']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    for name, reason in table.skipped.items():
        lines.append(f"\n- skipped {name}: {reason}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """Whether contender ``a`` is as good as ``b`` on one problem after ``n`` trials.

    Over seeds, each side's best value after ``n`` trials (minimizing). ``p_worse`` is the
    one-sided Mann-Whitney U p-value of "a's values are larger (worse) than b's", ``p_two`` the
    two-sided one; ``a_better`` is the probability that a random seed of ``a`` beats one of
    ``b`` (U / (n_a n_b), ties counting half; 0.5 = no difference). ``ci`` is a 95% bootstrap
    interval of median(a) - median(b).
    """

    problem: str
    a: str
    b: str
    n: int
    seeds: tuple[int, int]
    median_a: float
    median_b: float
    p_worse: float
    p_two: float
    a_better: float
    ci: tuple[float, float]

    @property
    def verdict(self) -> str:
        if self.p_two >= 0.05:
            return "no significant difference"
        return f"{self.a} better" if self.a_better > 0.5 else f"{self.b} better"


def compare(
    problem: str, a: Sequence[float], b: Sequence[float], names: tuple[str, str], n: int,
    *, resamples: int = 10_000, seed: int = 0, maximize: bool = False,
) -> Comparison:
    """Compare two contenders' values over seeds; ``maximize``: larger is better (then
    "worse" means smaller, and the medians and interval are in the values' own sign)."""
    from scipy.stats import mannwhitneyu

    sign = -1.0 if maximize else 1.0
    xa, xb = sign * np.asarray(a, dtype=float), sign * np.asarray(b, dtype=float)
    worse = mannwhitneyu(xa, xb, alternative="greater")
    two = mannwhitneyu(xa, xb, alternative="two-sided")
    # U of "b > a": how often a's value is the smaller (better) one.
    better = float(mannwhitneyu(xb, xa, alternative="greater").statistic) / (len(xa) * len(xb))
    rng = np.random.default_rng(seed)
    diffs = np.median(rng.choice(xa, (resamples, len(xa))), axis=1) - np.median(
        rng.choice(xb, (resamples, len(xb))), axis=1
    )
    low, high = sorted(sign * np.percentile(diffs, [2.5, 97.5]))
    return Comparison(
        problem, names[0], names[1], n, (len(xa), len(xb)),
        sign * float(np.median(xa)), sign * float(np.median(xb)),
        float(worse.pvalue), float(two.pvalue), better, (float(low), float(high)),
    )


def comparisons(
    tables: Mapping[str, Table], pairs: Sequence[tuple[str, str]], budgets: Sequence[int]
) -> list[Comparison]:
    out: list[Comparison] = []
    for name, table in tables.items():
        for a, b in pairs:
            if a not in table.rows or b not in table.rows:
                continue
            for n in budgets:
                va = [v for r in table.rows[a] if (v := best_after(r["values"], n)) is not None]
                vb = [v for r in table.rows[b] if (v := best_after(r["values"], n)) is not None]
                if len(va) >= 2 and len(vb) >= 2:
                    out.append(compare(name, va, vb, (a, b), n))
    return out


def render_comparisons(found: Sequence[Comparison]) -> str:
    cols = [
        "problem", "A", "B", "trials", "seeds", "median A", "median B",
        "95% CI median(A)-median(B)", "P(A beats B)", "p (A worse)", "p (two-sided)", "verdict",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for c in found:
        cells = [
            c.problem, c.a, c.b, str(c.n), f"{c.seeds[0]}/{c.seeds[1]}",
            f"{c.median_a:.4g}", f"{c.median_b:.4g}", f"[{c.ci[0]:.3g}, {c.ci[1]:.3g}]",
            f"{c.a_better:.2f}", f"{c.p_worse:.3f}", f"{c.p_two:.3f}", c.verdict,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 20 and 50 trials")
    ap.add_argument(
        "--algorithms",
        default=None,
        help="comma-separated registered names and references "
        f"({', '.join(REFERENCES)}); default all",
    )
    ap.add_argument("--problems", default=None, help=f"default {','.join(PROBLEMS)}")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per contender (default 10)")
    ap.add_argument(
        "--slow-seeds",
        type=int,
        default=None,
        help="seeds for bayesianoptimization, skopt-gp and slow problems (default 5)",
    )
    ap.add_argument(
        "--seeds-for",
        action="append",
        default=[],
        metavar="NAME=N",
        help="seeds for one contender, overriding --seeds / --slow-seeds; repeatable",
    )
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 100)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    ap.add_argument("--json", dest="json_path", default=None, help="write raw results here")
    ap.add_argument(
        "--reuse",
        action="append",
        default=[],
        metavar="JSON",
        help="take runs (same contender, problem, seed, trials) from an earlier --json file "
        "instead of running them again; repeatable",
    )
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="A=B",
        help="after the tables, compare contender A with B over seeds at each budget "
        "(Mann-Whitney U, bootstrap CI of the median difference); repeatable",
    )
    args = ap.parse_args(argv)
    pairs = [(a.strip(), b.strip()) for a, _, b in (item.partition("=") for item in args.compare)]

    trials = args.trials or (50 if args.quick else max(BUDGETS))
    budgets = [b for b in BUDGETS if b <= trials] or [trials]
    seeds = args.seeds or (3 if args.quick else 10)
    slow_seeds = min(seeds, args.slow_seeds or (2 if args.quick else 5))
    seeds_for = {k: int(v) for k, _, v in (item.partition("=") for item in args.seeds_for)}
    contenders = (
        [a.strip() for a in args.algorithms.split(",") if a.strip()]
        if args.algorithms
        else [*algorithm_names(), *REFERENCES]
    )
    problem_names = (
        [p.strip() for p in args.problems.split(",") if p.strip()]
        if args.problems
        else list(PROBLEMS)
    )

    tables = {name: Table(PROBLEMS[name]) for name in problem_names}
    tasks: list[tuple[str, str, int, int]] = []
    for problem_name in problem_names:
        problem = PROBLEMS[problem_name]
        for contender in contenders:
            if contender not in REFERENCES:
                reason = skip_reason(contender, problem, trials)
                if reason:
                    tables[problem_name].skipped[contender] = reason
                    continue
            n = slow_seeds if (contender in SLOW or problem.slow) else seeds
            n = seeds_for.get(contender, n)
            tasks += [(contender, problem_name, seed, trials) for seed in range(n)]
    # Slow ones first, so that the pool's tail is short.
    tasks.sort(key=lambda t: (t[0] not in SLOW, not PROBLEMS[t[1]].slow))
    reused: list[dict[str, Any]] = []
    for path in args.reuse:
        earlier = json.loads(Path(path).read_text())
        for run in earlier["runs"]:
            task = (run["contender"], run["problem"], run["seed"], earlier["trials"])
            if task in tasks:
                tasks.remove(task)
                reused.append(run)

    started = time.time()
    print(
        f"{len(tasks)} runs ({len(reused)} reused) of {trials} trials on {os.cpu_count()} cores, "
        f"{args.jobs} worker(s); load {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
        flush=True,
    )
    results: list[dict[str, Any]] = []
    for result in reused:
        results.append(result)
        tables[result["problem"]].rows.setdefault(result["contender"], []).append(result)

    def save(final: bool) -> None:
        if not args.json_path:
            return
        payload = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "complete": final,
            "trials": trials,
            "seeds": seeds,
            "slow_seeds": slow_seeds,
            "summary": {name: summarize(t, budgets) for name, t in tables.items()},
            "skipped": {name: t.skipped for name, t in tables.items()},
            "runs": results,
        }
        Path(args.json_path).write_text(json.dumps(payload, indent=1))

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, task) for task in tasks]
        for i, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results.append(result)
            tables[result["problem"]].rows.setdefault(result["contender"], []).append(result)
            best = best_after(result["values"], trials)
            print(
                f"[{i}/{len(tasks)} {time.time() - started:.0f}s] {result['problem']} "
                f"{result['contender']} seed {result['seed']}: best {best} "
                f"({result['seconds']:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            save(final=False)  # a long run interrupted keeps what it has (see --reuse)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Sample efficiency, {stamp}, {platform.python_version()}, {os.cpu_count()} cores; "
        f"seeds {seeds} (slow {slow_seeds}), {trials} trials; "
        f"{time.time() - started:.0f}s wall\n"
    )
    for table in tables.values():
        # Contenders in the order given (registered algorithms first, then the references),
        # each one's runs by seed.
        table.rows = {
            c: sorted(table.rows[c], key=lambda r: r["seed"]) for c in contenders if c in table.rows
        }
        print(render(table, budgets) + "\n")
    if pairs:
        print("### Comparisons over seeds (minimizing; A as good as B unless p (A worse) < 0.05)\n")
        print(render_comparisons(comparisons(tables, pairs, budgets)) + "\n")
    save(final=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
