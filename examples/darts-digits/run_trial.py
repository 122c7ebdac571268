"""A DARTS search on scikit-learn's digits, in numpy: the search trial Katib's DARTS runs.

It reads what Katib's DARTS service passes its one trial: ``--algorithm-settings`` (a JSON
object: num_epochs, w_lr, w_lr_min, w_momentum, w_weight_decay, w_grad_clip, alpha_lr,
alpha_weight_decay, batch_size, init_channels, num_nodes, print_step; the others do not
apply here), ``--search-space`` (a JSON list of primitives such as
``separable_convolution_3x3`` or ``skip_connection``) and ``--num-layers`` (cells stacked).

The network works on vectors, so that numpy alone trains it in seconds: a dense stem maps
the 64 pixels to ``init_channels`` features; each cell has ``num_nodes`` nodes, each the sum
over every earlier node (the cell's input first) of a *mixed operation*, the softmax of the
architecture weights ``alpha`` over every primitive, as in DARTS (Liu et al., 2019). The
primitives act along the feature axis: ``*_convolution_kxk`` is a 1-D convolution of width
k (separable: per feature, then a pointwise mix; dilated: dilation 2), pooling is 1-D, and
``skip_connection`` is the identity. The cells share ``alpha``, as DARTS' normal cells do.

Each step first updates ``alpha`` on a validation batch (Adam; first-order DARTS), then
the weights on a training batch (SGD with momentum, cosine learning rate, gradient
clipping). After every epoch it prints the validation accuracy and the genotype (each
node's two strongest incoming edges with their strongest primitive) the way Katib's DARTS
trial prints it: ``Best-Genotype=Genotype(normal=[...], normal_concat=...)``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any

import numpy as np
from sklearn.datasets import load_digits

Array = np.ndarray


def katib_json(text: str) -> Any:
    # Katib's examples pass ``--search-space="${...}"`` without a shell: the quotes stay.
    return json.loads(text.strip('"').replace("'", '"'))


def shift(x: Array, offset: int) -> Array:
    """``y[:, c] = x[:, c - offset]`` around the feature axis."""
    return np.roll(x, offset, axis=1)


class Primitive:
    """One operation on an edge, with its own weights (``params``) and gradients."""

    def __init__(self, name: str, channels: int, rng: np.random.Generator) -> None:
        self.name = name
        self.params: list[Array] = []
        match = re.fullmatch(r"(\w+?)_(\d+)x\d+", name)
        kind, width = (match.group(1), int(match.group(2))) if match else (name, 1)
        dilation = 2 if kind.startswith("dilated") else 1
        self.kind = kind
        self.offsets = [(i - width // 2) * dilation for i in range(width)]
        if kind.endswith("convolution"):
            self.params.append(rng.normal(0, 1 / math.sqrt(width), (width, channels)))
            if kind.startswith("separable"):
                self.params.append(rng.normal(0, 1 / math.sqrt(channels), (channels, channels)))
        elif kind not in ("avg_pooling", "max_pooling", "skip_connection"):
            raise SystemExit(f"unknown primitive {name!r}")
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, x: Array) -> tuple[Array, Any]:
        shifted = np.stack([shift(x, o) for o in self.offsets])
        if self.kind == "skip_connection":
            return x, None
        if self.kind == "avg_pooling":
            return shifted.mean(axis=0), None
        if self.kind == "max_pooling":
            index = shifted.argmax(axis=0)
            return shifted.max(axis=0), index
        conv = (self.params[0][:, None, :] * shifted).sum(axis=0)
        pre = conv @ self.params[1] if len(self.params) > 1 else conv
        return np.maximum(pre, 0), (shifted, conv, pre)

    def backward(self, dy: Array, cache: Any) -> Array:
        if self.kind == "skip_connection":
            return dy
        if self.kind == "avg_pooling":
            return sum(shift(dy, -o) for o in self.offsets) / len(self.offsets)
        if self.kind == "max_pooling":
            return sum(shift(dy * (cache == i), -o) for i, o in enumerate(self.offsets))
        shifted, conv, pre = cache
        d_pre = dy * (pre > 0)
        d_conv = d_pre
        if len(self.params) > 1:
            self.grads[1] += conv.T @ d_pre
            d_conv = d_pre @ self.params[1].T
        self.grads[0] += (d_conv[None] * shifted).sum(axis=1)
        return sum(shift(self.params[0][i] * d_conv, -o) for i, o in enumerate(self.offsets))


class Cell:
    """``num_nodes`` nodes, each a sum of mixed operations on every earlier node."""

    def __init__(self, primitives: list[str], nodes: int, channels: int, rng: Any) -> None:
        self.edges = [(i, j) for j in range(1, nodes + 1) for i in range(j)]
        self.ops = [[Primitive(p, channels, rng) for p in primitives] for _ in self.edges]
        self.nodes = nodes

    def forward(self, x: Array, weights: Array) -> tuple[Array, Any]:
        states = [x]
        caches = []
        for j in range(1, self.nodes + 1):
            total = np.zeros_like(x)
            for e, (i, target) in enumerate(self.edges):
                if target != j:
                    continue
                for o, op in enumerate(self.ops[e]):
                    y, cache = op.forward(states[i])
                    caches.append((e, o, y, cache))
                    total += weights[e, o] * y
            states.append(total)
        return sum(states[1:]) / self.nodes, (states, caches)

    def backward(self, dy: Array, weights: Array, saved: Any, d_alpha: Array) -> Array:
        states, caches = saved
        d_states = [np.zeros_like(s) for s in states]
        for j in range(1, self.nodes + 1):
            d_states[j] += dy / self.nodes
        for e, o, y, cache in reversed(caches):
            i, j = self.edges[e]
            d_alpha[e, o] += float((d_states[j] * y).sum())
            d_states[i] += self.ops[e][o].backward(weights[e, o] * d_states[j], cache)
        return d_states[0]


class Network:
    def __init__(self, primitives: list[str], layers: int, nodes: int, channels: int) -> None:
        rng = np.random.default_rng(0)
        self.primitives = primitives
        self.stem = rng.normal(0, 1 / 8, (64, channels))
        self.cells = [Cell(primitives, nodes, channels, rng) for _ in range(layers)]
        self.head = rng.normal(0, 1 / math.sqrt(channels), (channels, 10))
        self.alpha = 1e-3 * rng.normal(size=(len(self.cells[0].edges), len(primitives)))

    def weights(self) -> list[Array]:
        return [self.stem, self.head] + [p for c in self.cells for ops in c.ops for op in ops
                                         for p in op.params]

    def softmax(self) -> Array:
        e = np.exp(self.alpha - self.alpha.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def forward(self, x: Array) -> tuple[Array, Any]:
        weights = self.softmax()
        stem = np.maximum(x @ self.stem, 0)
        h, saved = stem, []
        for cell in self.cells:
            h, cache = cell.forward(h, weights)
            saved.append(cache)
        return h @ self.head, (x, stem, h, saved, weights)

    def backward(self, logits: Array, y: Array, saved: Any) -> tuple[list[Array], Array, float]:
        """Gradients of the mean cross-entropy: the weights', alpha's, and the loss."""
        x, stem, h, caches, weights = saved
        for cell in self.cells:
            for ops in cell.ops:
                for op in ops:
                    op.grads = [np.zeros_like(p) for p in op.params]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.log(probs[np.arange(len(y)), y] + 1e-12).mean())
        probs[np.arange(len(y)), y] -= 1
        d_logits = probs / len(y)
        g_head = h.T @ d_logits
        dh = d_logits @ self.head.T
        d_weights = np.zeros_like(weights)
        for cell, cache in zip(reversed(self.cells), reversed(caches), strict=True):
            dh = cell.backward(dh, weights, cache, d_weights)
        g_stem = x.T @ (dh * (stem > 0))
        grads = [g_stem, g_head] + [g for c in self.cells for ops in c.ops for op in ops
                                    for g in op.grads]
        d_alpha = weights * (d_weights - (weights * d_weights).sum(axis=1, keepdims=True))
        return grads, d_alpha, loss

    def genotype(self) -> str:
        weights = self.softmax()
        edges = self.cells[0].edges
        nodes = []
        for j in range(1, self.cells[0].nodes + 1):
            incoming = [(weights[e].max(), e) for e, (_, t) in enumerate(edges) if t == j]
            best = sorted(incoming, reverse=True)[:2]
            nodes.append(
                [(self.primitives[int(weights[e].argmax())], edges[e][0]) for _, e in best]
            )
        count = self.cells[0].nodes
        return f"Genotype(normal={nodes}, normal_concat=range(1, {count + 1}))"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm-settings", required=True)
    parser.add_argument("--search-space", required=True)
    parser.add_argument("--num-layers", required=True)
    args = parser.parse_args()
    settings = katib_json(args.algorithm_settings)
    primitives = katib_json(args.search_space)
    layers = int(args.num_layers.strip('"'))
    number = {k: float(v) for k, v in settings.items() if v is not None}
    print(f">>> search space {primitives}, {layers} cells, settings {settings}", flush=True)

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    rng = np.random.default_rng(1)
    order = rng.permutation(len(x))
    half = len(x) // 2  # DARTS: one half trains the weights, the other the architecture
    train, valid = order[:half], order[half:]
    channels = int(number.get("init_channels", 16))
    network = Network(primitives, layers, int(number.get("num_nodes", 4)), channels)
    epochs = int(number.get("num_epochs", 50))
    batch = int(number.get("batch_size", 128))
    w_lr, w_lr_min = number.get("w_lr", 0.025), number.get("w_lr_min", 0.001)
    momentum, decay = number.get("w_momentum", 0.9), number.get("w_weight_decay", 3e-4)
    clip = number.get("w_grad_clip", 5.0)
    alpha_lr, alpha_decay = number.get("alpha_lr", 3e-4), number.get("alpha_weight_decay", 1e-3)
    print_step = int(number.get("print_step", 50))
    velocity = [np.zeros_like(w) for w in network.weights()]
    m, v, t = np.zeros_like(network.alpha), np.zeros_like(network.alpha), 0
    steps = 0
    for epoch in range(1, epochs + 1):
        rate = w_lr_min + 0.5 * (w_lr - w_lr_min) * (1 + math.cos(math.pi * (epoch - 1) / epochs))
        t_order, v_order = rng.permutation(train), rng.permutation(valid)
        for start in range(0, len(t_order), batch):
            vb = v_order[start : start + batch]
            logits, saved = network.forward(x[vb])
            _, d_alpha, _ = network.backward(logits, y[vb], saved)
            t += 1
            d_alpha += alpha_decay * network.alpha
            m = 0.5 * m + 0.5 * d_alpha  # DARTS' Adam betas (0.5, 0.999)
            v = 0.999 * v + 0.001 * d_alpha**2
            network.alpha -= alpha_lr * (m / (1 - 0.5**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)

            tb = t_order[start : start + batch]
            logits, saved = network.forward(x[tb])
            grads, _, loss = network.backward(logits, y[tb], saved)
            norm = math.sqrt(sum(float((g**2).sum()) for g in grads))
            scale = min(1.0, clip / (norm + 1e-12)) if clip > 0 else 1.0
            for w, g, vel in zip(network.weights(), grads, velocity, strict=True):
                vel *= momentum
                vel += scale * g + decay * w
                w -= rate * vel
            steps += 1
            if steps % print_step == 0:
                print(f"step {steps}: loss {loss:.4f}", flush=True)
        logits, _ = network.forward(x[valid])
        accuracy = float((logits.argmax(axis=1) == y[valid]).mean())
        print(f"epoch {epoch}: Validation-Accuracy={accuracy:.4f}", flush=True)
        print(f"Best-Genotype={network.genotype()}", flush=True)


if __name__ == "__main__":
    main()
