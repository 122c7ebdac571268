"""Linear regression by mini-batch SGD with momentum on synthetic data, one line per epoch.

Prints ``epoch=N loss=VALIDATION_MSE`` after every epoch, which Katib's default StdOut
collector reads as intermediate values of ``loss``: what an early-stopping rule judges.

    python3 train.py --lr 0.05 --momentum 0.9
"""

import argparse
import time

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--momentum", type=float, required=True)
parser.add_argument("--epochs", type=int, default=27)
parser.add_argument("--epoch-seconds", type=float, default=0.1, help="pause per epoch")
args = parser.parse_args()

rng = np.random.default_rng(0)
features = rng.normal(size=(600, 20)) * np.linspace(0.2, 3.0, 20)  # badly conditioned
truth = rng.normal(size=20)
target = features @ truth + rng.normal(scale=0.5, size=600)
train_x, valid_x, train_y, valid_y = features[:500], features[500:], target[:500], target[500:]

weights, velocity = np.zeros(20), np.zeros(20)
for epoch in range(1, args.epochs + 1):
    order = rng.permutation(len(train_y))
    for start in range(0, len(order), 25):
        batch = order[start : start + 25]
        gradient = train_x[batch].T @ (train_x[batch] @ weights - train_y[batch]) / len(batch)
        velocity = args.momentum * velocity - args.lr * gradient
        weights = weights + velocity
    with np.errstate(over="ignore", invalid="ignore"):
        loss = float(np.mean((valid_x @ weights - valid_y) ** 2))
    # A diverged run reports a large number (NaN and infinity are not metric values).
    print(f"epoch={epoch} loss={min(loss, 1e6) if loss == loss else 1e6:.6g}", flush=True)
    time.sleep(args.epoch_seconds)
