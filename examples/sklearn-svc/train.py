"""Cross-validates an SVC on scikit-learn's bundled digits dataset (no download).

After each fold it prints the mean accuracy so far, so progress shows up while the trial
runs; the last ``accuracy=`` line is the mean over every fold, which the experiment reads
with the ``latest`` metric strategy.
"""

import argparse
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--C", type=float, required=True, help="regularization strength")
    parser.add_argument("--gamma", type=float, required=True, help="kernel coefficient")
    parser.add_argument("--kernel", choices=["rbf", "poly", "sigmoid"], default="rbf")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=0)
    scores: list[float] = []
    fit_seconds = 0.0
    for fold, (train, test) in enumerate(folds.split(x, y), start=1):
        model = make_pipeline(StandardScaler(), SVC(C=args.C, gamma=args.gamma, kernel=args.kernel))
        start = time.perf_counter()
        model.fit(x[train], y[train])
        fit_seconds += time.perf_counter() - start
        scores.append(model.score(x[test], y[test]))
        # flush: stdout is a pipe, and the collector should see each fold as it ends.
        print(
            f"fold={fold} accuracy={sum(scores) / fold:.4f} fit-time={fit_seconds / fold:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
