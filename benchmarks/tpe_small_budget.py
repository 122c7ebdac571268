"""TPE's ``gamma`` on small budgets: how often ``tpe`` gets near the optimum of a quadratic.

The quadratic of ``tests/katib/sdk/test_client.py`` ((x - 2)^2 + (y + 1)^2 on [-5, 5]^2);
success = the best trial within 1 of the optimum on both axes. Over seeds, for the unset
gamma (optuna's 10% split) and Katib's hyperopt default 0.25, one trial at a time and in
batches (the controller's call order: suggest a batch, report it running, then finished),
with Fisher's exact test between the two.

    python benchmarks/tpe_small_budget.py --seeds 60
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from suggestion import (  # noqa: E402 - after the path set-up above
    RUNNING,
    SUCCEEDED,
    Parameter,
    SearchSpace,
    TrialRecord,
    get_algorithm,
)

SPACE = SearchSpace(
    (Parameter("x", "double", min=-5, max=5), Parameter("y", "double", min=-5, max=5))
)


def succeeds(seed: int, gamma: str | None, batch: int, trials: int) -> bool:
    settings = {"random_state": str(seed)}
    if gamma is not None:
        settings["gamma"] = gamma
    algorithm = get_algorithm("tpe")(
        SPACE, maximize=False, settings=settings, max_trial_count=trials,
        parallel_trial_count=batch,
    )
    best: tuple[float, float, float] | None = None
    done = 0
    while done < trials:
        suggested = algorithm.suggest(min(batch, trials - done))
        names = [f"t{done + i}" for i in range(len(suggested))]
        algorithm.update([], [TrialRecord(n, s, RUNNING) for n, s in zip(names, suggested,
                                                                        strict=True)])
        finished = []
        for name, s in zip(names, suggested, strict=True):
            x, y = float(s["x"]), float(s["y"])
            value = (x - 2) ** 2 + (y + 1) ** 2
            finished.append(TrialRecord(name, s, SUCCEEDED, value))
            if best is None or value < best[0]:
                best = (value, x, y)
        done += len(suggested)
        algorithm.update(finished, [])
    assert best is not None
    return abs(best[1] - 2) < 1 and abs(best[2] + 1) < 1


def main(argv: Sequence[str] | None = None) -> int:
    from scipy.stats import fisher_exact

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=60)
    args = ap.parse_args(argv)
    print("| trials | batch | gamma unset (0.1 split) | gamma 0.25 | Fisher p |")
    print("|---|---|---|---|---|")
    for trials, batch in ((20, 1), (20, 3), (30, 1), (30, 3)):
        new = sum(succeeds(s, None, batch, trials) for s in range(args.seeds))
        old = sum(succeeds(s, "0.25", batch, trials) for s in range(args.seeds))
        p = fisher_exact([[new, args.seeds - new], [old, args.seeds - old]]).pvalue
        print(f"| {trials} | {batch} | {new}/{args.seeds} | {old}/{args.seeds} | {p:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
