"""A decision tree on scikit-learn's bundled digits: accuracy against size.

Prints ``error=...`` (1 - the 3-fold cross-validated accuracy) and ``leaves=...`` (the number
of leaves of the tree fitted on all the data): a small tree is easy to read and fast to
evaluate, a large one fits better. No single tree is best at both; the experiment's result
is the Pareto front of the trade-off.

    python3 train.py --max-depth 8 --min-samples-leaf 2 --ccp-alpha 0.001
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.tree import DecisionTreeClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--max-depth", type=int, required=True)
parser.add_argument("--min-samples-leaf", type=int, required=True)
parser.add_argument("--ccp-alpha", type=float, required=True)
args = parser.parse_args()

x, y = load_digits(return_X_y=True)
model = DecisionTreeClassifier(
    max_depth=args.max_depth,
    min_samples_leaf=args.min_samples_leaf,
    ccp_alpha=args.ccp_alpha,
    random_state=0,
)
accuracy = cross_val_score(model, x, y, cv=3).mean()
leaves = model.fit(x, y).get_n_leaves()
print(f"error={1 - accuracy:.6f}")
print(f"leaves={leaves}")
