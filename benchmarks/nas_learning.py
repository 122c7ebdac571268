"""Does ENAS' controller learn? ENAS against random architectures on a synthetic reward.

The space has 3 layers of 7 operation choices with skip connections (343 * 8 = 2744
architectures). A trial's reward is the share of its layers that use operation 6, plus
Gaussian noise (σ 0.1): one operation is best, and the controller has to find it from noisy
rewards alone. Trials run 4 at a time (each suggestion asks for 4 and reports them all).
Reported per algorithm, over seeds: the mean reward (noise-free) of the first and of the
last 20 trials, and the probability the controller gives operation 6 at the end.

    python benchmarks/nas_learning.py [--trials 100] [--seeds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from suggestion import SUCCEEDED, NasOperation, NasSpace, Parameter, SearchSpace, TrialRecord
from suggestion.algorithms.enas import ENAS

CONV = NasOperation(
    "convolution",
    (
        Parameter("filter_size", "categorical", values=("3", "5")),
        Parameter("num_filter", "int", min=32, max=64, step=16),
    ),
)
POOL = NasOperation("reduction", (Parameter("reduction_type", "categorical", values=("max",)),))
SPACE = SearchSpace(nas=NasSpace(3, (32, 32, 3), (10,), (CONV, POOL)))
BEST = 6


def value(assignments: dict[str, str]) -> float:
    layers = json.loads(assignments["architecture"])
    return sum(layer[0] == BEST for layer in layers) / len(layers)


def run(settings: dict[str, str] | None, trials: int, seed: int) -> tuple[list[float], float]:
    """Noise-free values of the trials in order, and the final probability of BEST."""
    rng = np.random.default_rng(seed)
    values: list[float] = []
    if settings is None:  # random architectures
        for _ in range(trials):
            values.append(float(np.mean(rng.integers(0, 7, size=3) == BEST)))
        return values, 1 / 7
    algorithm = ENAS(SPACE, maximize=True, settings={"random_state": str(seed), **settings})
    completed: list[TrialRecord] = []
    while len(values) < trials:
        for assignments in algorithm.suggest(4):
            v = value(assignments)
            values.append(v)
            noisy = v + float(rng.normal(0, 0.1))
            completed.append(TrialRecord(f"t{len(values)}", assignments, SUCCEEDED, noisy))
        algorithm.update(completed, [])
    trace = algorithm.controller.evaluate(((BEST,), (BEST, 0), (BEST, 0, 0)))
    probability = float(np.mean([p[BEST] for p in algorithm.controller.probabilities(trace)]))
    return values[:trials], probability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    variants: dict[str, dict[str, str] | None] = {
        "random architectures": None,
        "enas, Katib's defaults": {},
        "enas, learning rate 0.02, 10 steps": {
            "controller_learning_rate": "0.02", "controller_train_steps": "10",
            "controller_hidden_size": "16",
        },
    }
    print("| algorithm | first 20 trials | last 20 trials | P(best op) at the end | s/run |")
    print("|---|---:|---:|---:|---:|")
    for name, settings in variants.items():
        first, last, probs, seconds = [], [], [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            values, probability = run(settings, args.trials, seed)
            seconds.append(time.perf_counter() - start)
            first.append(statistics.mean(values[:20]))
            last.append(statistics.mean(values[-20:]))
            probs.append(probability)

        def fmt(xs: list[float]) -> str:
            return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}"

        print(f"| {name} | {fmt(first)} | {fmt(last)} | {fmt(probs)} | "
              f"{statistics.median(seconds):.2f} |")


if __name__ == "__main__":
    main()
