"""Builds the network an ENAS trial is given and trains it on scikit-learn's digits.

A Katib ENAS trial reads two parameters: ``architecture``, one list per layer (the
operation's id, then a 0/1 per earlier layer: whether that layer's output is concatenated
into this layer's input), and ``nn_config``, which maps each operation id used to its type
and parameters. Both are JSON written with single quotes, as Katib writes them.

The operations here are small, so that the trial runs in a second with numpy alone:
``dense`` (a fully connected layer of ``units`` with ``activation``) and ``identity``.
Katib's own operation types stand in as vector operations, so that Katib's published
``enas-cpu.yaml`` runs with this script in place of its image: every ``*convolution`` is a
relu dense layer of ``num_filter`` units and ``reduction`` is the identity. The digits'
64 pixels are the input whatever ``input_sizes`` says. The network is trained with Adam on
80 % of the 1797 digits and prints the accuracy on the other 20 % after every epoch
(``Validation-Accuracy=...``, as Katib's ENAS examples do).

Run by hand to rebuild any architecture the search proposed, e.g. the best one::

    python train.py --architecture "[[1], [4, 1], [0, 0, 1]]" --nn_config "{...}"
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from sklearn.datasets import load_digits


def katib_json(text: str) -> Any:
    # Katib's examples pass ``--architecture="${...}"`` without a shell: the quotes stay.
    return json.loads(text.strip('"').replace("'", '"'))


class Network:
    """The layers of one architecture, with Adam's state."""

    def __init__(
        self, architecture: list[list[int]], config: dict[str, Any], rng: np.random.Generator
    ) -> None:
        self.architecture = architecture
        self.ops = [config["embedding"][str(layer[0])] for layer in architecture]
        inputs = 64  # the digits' pixels
        self.widths: list[int] = []  # output width of each layer
        self.weights: list[tuple[np.ndarray, np.ndarray] | None] = []
        for index, (layer, op) in enumerate(zip(architecture, self.ops, strict=True)):
            width_in = self._input_width(index, layer, inputs)
            if op["opt_type"] == "dense" or op["opt_type"].endswith("convolution"):
                units = int(op["opt_params"].get("units", op["opt_params"].get("num_filter", 32)))
                scale = np.sqrt(2.0 / width_in)
                self.weights.append((rng.normal(0, scale, (width_in, units)), np.zeros(units)))
                self.widths.append(units)
            elif op["opt_type"] in ("identity", "reduction"):
                self.weights.append(None)
                self.widths.append(width_in)
            else:
                raise SystemExit(f"unknown operation type {op['opt_type']!r}")
        classes = 10  # the digits' classes
        last = self.widths[-1]
        self.head = (rng.normal(0, np.sqrt(1.0 / last), (last, classes)), np.zeros(classes))
        self.params = [p for w in [*self.weights, self.head] if w is not None for p in w]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def _input_width(self, index: int, layer: list[int], inputs: int) -> int:
        width = inputs if index == 0 else self.widths[index - 1]
        skips = layer[1:]
        return width + sum(self.widths[j] for j, bit in enumerate(skips) if bit and j < index - 1)

    def _inputs(self, index: int, x: np.ndarray, outs: list[np.ndarray]) -> np.ndarray:
        # Layer 0 reads the image; layer l the previous layer's output and the outputs of
        # the earlier layers it has a skip connection from (the previous one is there anyway).
        previous = x if index == 0 else outs[index - 1]
        skips = self.architecture[index][1:]
        extra = [outs[j] for j, bit in enumerate(skips) if bit and j < index - 1]
        return np.concatenate([previous, *extra], axis=1) if extra else previous

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        outs: list[np.ndarray] = []
        cache: list[Any] = []
        for index, op in enumerate(self.ops):
            inp = self._inputs(index, x, outs)
            weights = self.weights[index]
            if weights is None:
                outs.append(inp)
                cache.append((inp, None))
                continue
            pre = inp @ weights[0] + weights[1]
            tanh = op["opt_params"].get("activation") == "tanh"
            out = np.tanh(pre) if tanh else np.maximum(pre, 0)
            outs.append(out)
            cache.append((inp, out))
        logits = outs[-1] @ self.head[0] + self.head[1]
        return logits, [outs, cache]

    def step(self, x: np.ndarray, y: np.ndarray, rate: float) -> None:
        logits, (outs, cache) = self.forward(x)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(len(y)), y] -= 1.0
        d_logits = probs / len(y)
        grads: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        head_grad = (outs[-1].T @ d_logits, d_logits.sum(axis=0))
        d_outs = [np.zeros_like(o) for o in outs]
        d_outs[-1] += d_logits @ self.head[0].T
        inputs = x.shape[1]
        for index in reversed(range(len(self.ops))):
            inp, out = cache[index]
            weights = self.weights[index]
            if weights is None:
                d_inp = d_outs[index]
            else:
                if self.ops[index]["opt_params"].get("activation") == "tanh":
                    d_pre = d_outs[index] * (1.0 - out**2)
                else:
                    d_pre = d_outs[index] * (out > 0)
                grads[index] = (inp.T @ d_pre, d_pre.sum(axis=0))
                d_inp = d_pre @ weights[0].T
            # Split the input's gradient back into the outputs it was made of.
            width = inputs if index == 0 else self.widths[index - 1]
            if index > 0:
                d_outs[index - 1] += d_inp[:, :width]
            offset = width
            for j, bit in enumerate(self.architecture[index][1:]):
                if bit and j < index - 1:
                    d_outs[j] += d_inp[:, offset : offset + self.widths[j]]
                    offset += self.widths[j]
        flat = [g for i in range(len(self.ops)) if i in grads for g in grads[i]]
        flat += list(head_grad)
        self.t += 1
        for k, (param, grad) in enumerate(zip(self.params, flat, strict=True)):
            self.m[k] = 0.9 * self.m[k] + 0.1 * grad
            self.v[k] = 0.999 * self.v[k] + 0.001 * grad**2
            m_hat = self.m[k] / (1 - 0.9**self.t)
            v_hat = self.v[k] / (1 - 0.999**self.t)
            param -= rate * m_hat / (np.sqrt(v_hat) + 1e-8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", required=True)
    parser.add_argument("--nn_config", required=True)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--learning_rate", type=float, default=0.003)
    args = parser.parse_args()
    architecture = katib_json(args.architecture)
    config = katib_json(args.nn_config)
    print(f">>> architecture {architecture}", flush=True)
    for op_id, op in sorted(config["embedding"].items()):
        print(f">>> operation {op_id}: {op['opt_type']} {op['opt_params']}", flush=True)

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    cut = int(0.8 * len(x))
    train, test = order[:cut], order[cut:]
    network = Network(architecture, config, rng)
    for epoch in range(1, args.num_epochs + 1):
        batches = rng.permutation(train)
        for start in range(0, len(batches), 32):
            batch = batches[start : start + 32]
            network.step(x[batch], y[batch], args.learning_rate)
        logits, _ = network.forward(x[test])
        accuracy = float((logits.argmax(axis=1) == y[test]).mean())
        print(f"epoch {epoch}:", flush=True)
        print(f"Validation-Accuracy={accuracy:.4f}", flush=True)


if __name__ == "__main__":
    main()
