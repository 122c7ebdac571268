"""ENAS' architecture controller in numpy: an LSTM policy, REINFORCE and Adam.

The network is the one of Katib's ENAS service (``pkg/suggestion/v1beta1/nas/enas/
Controller.py``, after Pham et al., "Efficient Neural Architecture Search via Parameter
Sharing", 2018): one LSTM cell unrolled over the layers. For each layer it chooses an
operation from the LSTM's output (logits ``h @ w_soft``, divided by the temperature and
squashed by ``tanh_const * tanh``), feeds the operation's embedding back in, and then, from
the second layer on, chooses for every earlier layer whether to add a skip connection from
it (an attention of the current output over the earlier ones). The next layer's input is
the mean of the chosen earlier outputs. A skip penalty pulls the skip probabilities towards
``skip_target`` (a KL term, as in Katib).

Training is REINFORCE with a moving-average baseline: the loss of an architecture is its
negative log-probability times (reward - baseline), plus ``skip_weight`` times the skip
penalty, and its gradient is computed here by hand (backpropagation through the unrolled
LSTM), then applied with Adam (TensorFlow's defaults, as Katib's ``AdamOptimizer``).
Nothing here is random except :meth:`Controller.sample`, which takes the generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Array = np.ndarray[Any, np.dtype[np.float64]]

#: Parameter names in the order they are initialised (and stored).
PARAMETERS = ("w_lstm", "g_emb", "w_emb", "w_soft", "attn_w_1", "attn_w_2", "attn_v")

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPSILON = 1e-8
#: Skip targets are kept away from 0 and 1, where the KL term is infinite.
_TARGET_EPSILON = 1e-6

Architecture = tuple[tuple[int, ...], ...]
"""Per layer: the operation's index, then one 0/1 per earlier layer (a skip connection)."""


@dataclass(frozen=True)
class ControllerSettings:
    """The controller's shape and the settings that change its loss (Katib's names)."""

    num_layers: int
    num_operations: int
    hidden_size: int = 64
    temperature: float | None = 5.0
    tanh_const: float | None = 2.25
    entropy_weight: float | None = 1e-5
    skip_target: float = 0.4
    skip_weight: float | None = 0.8


def _sigmoid(x: Array) -> Array:
    out: Array = 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|
    return out


def _log_softmax(x: Array) -> Array:
    shifted = x - x.max(axis=-1, keepdims=True)
    out: Array = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


@dataclass
class _Step:
    """What one LSTM step keeps for the backward pass."""

    xh: Array
    c_prev: Array
    i: Array
    f: Array
    o: Array
    g: Array
    tanh_c: Array


@dataclass
class _Decision:
    """One categorical choice (a row per choice made at once): what the backward pass needs."""

    raw: Array  # logits before temperature and tanh
    squashed: Array  # tanh(raw / temperature), when tanh_const is set
    log_probs: Array  # log softmax of the final logits
    chosen: Array  # int index per row


@dataclass
class Trace:
    """One architecture run through the controller: its choices and what they cost."""

    architecture: Architecture
    log_prob: float  # sum of log-probabilities of every choice
    entropy: float  # Katib's sample entropy: sum of -p log p of the chosen values
    skip_penalty: float  # mean KL of the skip probabilities from the target (0 if no skips)
    skip_count: int
    steps: list[_Step] = field(default_factory=list, repr=False)
    op_decisions: list[_Decision] = field(default_factory=list, repr=False)
    skip_decisions: list[_Decision | None] = field(default_factory=list, repr=False)
    queries: list[Array | None] = field(default_factory=list, repr=False)
    hidden: list[Array] = field(default_factory=list, repr=False)


class Controller:
    """The LSTM policy over architectures, with its Adam optimizer state."""

    def __init__(self, settings: ControllerSettings, rng: np.random.Generator) -> None:
        self.settings = settings
        h, n = settings.hidden_size, settings.num_operations
        shapes = {
            "w_lstm": (2 * h, 4 * h),
            "g_emb": (1, h),
            "w_emb": (n, h),
            "w_soft": (h, n),
            "attn_w_1": (h, h),
            "attn_w_2": (h, h),
            "attn_v": (h, 1),
        }
        self.shapes = shapes
        # TensorFlow's random_uniform_initializer(-0.01, 0.01), as Katib's controller.
        self.params: dict[str, Array] = {
            name: rng.uniform(-0.01, 0.01, size=shapes[name]) for name in PARAMETERS
        }
        self.adam_m: dict[str, Array] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.adam_v: dict[str, Array] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.adam_step = 0

    # Forward ---------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Trace:
        """Draw an architecture from the policy."""
        return self._run(None, rng)

    def evaluate(self, architecture: Architecture) -> Trace:
        """Run a given architecture through the controller (its probability and penalty)."""
        return self._run(architecture, None)

    def _lstm(self, x: Array, c: Array, h: Array, trace: Trace) -> tuple[Array, Array]:
        hidden = self.settings.hidden_size
        xh = np.concatenate([x, h], axis=1)
        z = xh @ self.params["w_lstm"]
        i = _sigmoid(z[:, :hidden])
        f = _sigmoid(z[:, hidden : 2 * hidden])
        o = _sigmoid(z[:, 2 * hidden : 3 * hidden])
        g = np.tanh(z[:, 3 * hidden :])
        c_next = i * g + f * c
        tanh_c = np.tanh(c_next)
        trace.steps.append(_Step(xh, c, i, f, o, g, tanh_c))
        return c_next, o * tanh_c

    def _logits(self, raw: Array) -> tuple[Array, Array]:
        s = self.settings
        logits = raw / s.temperature if s.temperature is not None else raw
        squashed = np.tanh(logits)
        if s.tanh_const is not None:
            logits = s.tanh_const * squashed
        return logits, squashed

    def _choose(
        self, raw: Array, forced: Sequence[int] | None, rng: np.random.Generator | None
    ) -> _Decision:
        logits, squashed = self._logits(raw)
        log_probs = _log_softmax(logits)
        if forced is None:
            assert rng is not None
            probs = np.exp(log_probs)
            cumulative = np.cumsum(probs, axis=1)
            draws = np.asarray(rng.random(probs.shape[0]))[:, None] * cumulative[:, -1:]
            chosen = np.minimum((cumulative <= draws).sum(axis=1), probs.shape[1] - 1)
        else:
            chosen = np.asarray(forced, dtype=np.int64)
        return _Decision(raw, squashed, log_probs, chosen.astype(np.int64))

    def _run(self, forced: Architecture | None, rng: np.random.Generator | None) -> Trace:
        s = self.settings
        hidden = s.hidden_size
        trace = Trace((), 0.0, 0.0, 0.0, 0)
        c = np.zeros((1, hidden))
        h = np.zeros((1, hidden))
        x = self.params["g_emb"]
        all_h: list[Array] = []
        all_hw: list[Array] = []
        layers: list[tuple[int, ...]] = []
        log_prob = entropy = 0.0
        penalties: list[float] = []
        skip_count = 0
        target = min(max(s.skip_target, _TARGET_EPSILON), 1.0 - _TARGET_EPSILON)
        targets = np.array([[1.0 - target, target]])
        for layer in range(s.num_layers):
            c, h = self._lstm(x, c, h, trace)
            op = self._choose(
                h @ self.params["w_soft"],
                None if forced is None else [forced[layer][0]],
                rng,
            )
            trace.op_decisions.append(op)
            chosen_lp = op.log_probs[np.arange(len(op.chosen)), op.chosen]
            log_prob += float(chosen_lp.sum())
            entropy += float((-chosen_lp * np.exp(chosen_lp)).sum())
            op_index = int(op.chosen[0])
            x = self.params["w_emb"][op_index : op_index + 1]
            c, h = self._lstm(x, c, h, trace)
            if layer > 0:
                query = np.tanh(h @ self.params["attn_w_2"] + np.concatenate(all_hw, axis=0))
                score = query @ self.params["attn_v"]  # (layer, 1)
                skip = self._choose(
                    np.concatenate([-score, score], axis=1),
                    None if forced is None else list(forced[layer][1:]),
                    rng,
                )
                trace.queries.append(query)
                trace.skip_decisions.append(skip)
                chosen_lp = skip.log_probs[np.arange(len(skip.chosen)), skip.chosen]
                log_prob += float(chosen_lp.sum())
                entropy += float((-chosen_lp * np.exp(chosen_lp)).sum())
                final, _ = self._logits(skip.raw)
                skip_prob = _sigmoid(final)
                penalties.append(float((skip_prob * np.log(skip_prob / targets)).sum()))
                bits = skip.chosen.astype(np.float64)[None, :]  # (1, layer)
                skip_count += int(bits.sum())
                x = (bits @ np.concatenate(all_h, axis=0)) / (1.0 + bits.sum())
                layers.append((op_index, *(int(b) for b in skip.chosen)))
            else:
                trace.queries.append(None)
                trace.skip_decisions.append(None)
                x = self.params["g_emb"]
                layers.append((op_index,))
            all_h.append(h)
            all_hw.append(h @ self.params["attn_w_1"])
        trace.hidden = all_h
        trace.architecture = tuple(layers)
        trace.log_prob = log_prob
        trace.entropy = entropy
        trace.skip_penalty = float(np.mean(penalties)) if penalties else 0.0
        trace.skip_count = skip_count
        return trace

    # Backward --------------------------------------------------------------------------

    def _logits_backward(self, d_logits: Array, decision: _Decision) -> Array:
        s = self.settings
        d = d_logits
        if s.tanh_const is not None:
            d = d * s.tanh_const * (1.0 - decision.squashed**2)
        if s.temperature is not None:
            d = d / s.temperature
        return d

    def _lstm_backward(
        self, step: _Step, dh: Array, dc: Array, grads: dict[str, Array]
    ) -> tuple[Array, Array, Array]:
        """Gradients into the step's input, previous h and previous c."""
        hidden = self.settings.hidden_size
        do = dh * step.tanh_c
        dc_total = dc + dh * step.o * (1.0 - step.tanh_c**2)
        di = dc_total * step.g
        dg = dc_total * step.i
        df = dc_total * step.c_prev
        dz = np.concatenate(
            [
                di * step.i * (1.0 - step.i),
                df * step.f * (1.0 - step.f),
                do * step.o * (1.0 - step.o),
                dg * (1.0 - step.g**2),
            ],
            axis=1,
        )
        grads["w_lstm"] += step.xh.T @ dz
        dxh = dz @ self.params["w_lstm"].T
        return dxh[:, :hidden], dxh[:, hidden:], dc_total * step.f

    def gradients(self, trace: Trace, advantage: float) -> dict[str, Array]:
        """The gradient of ``-log_prob * advantage + skip_weight * skip_penalty``.

        That is Katib's loss (``sample_log_probs * (reward - baseline)`` with its
        cross-entropies, plus the weighted skip penalty) for one architecture.
        """
        s = self.settings
        grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        layers = s.num_layers
        skip_layers = max(layers - 1, 1)
        target = min(max(s.skip_target, _TARGET_EPSILON), 1.0 - _TARGET_EPSILON)
        targets = np.array([[1.0 - target, target]])
        hidden = s.hidden_size
        d_all_h = [np.zeros((1, hidden)) for _ in range(layers)]
        dh = np.zeros((1, hidden))
        dc = np.zeros((1, hidden))
        dx_next = np.zeros((1, hidden))
        for layer in reversed(range(layers)):
            step_a, step_b = trace.steps[2 * layer], trace.steps[2 * layer + 1]
            h_b = trace.hidden[layer]
            dh_b = dh + d_all_h[layer]
            skip = trace.skip_decisions[layer]
            if skip is None:
                grads["g_emb"] += dx_next
            else:
                query = trace.queries[layer]
                assert query is not None
                bits = skip.chosen.astype(np.float64)
                for j in range(layer):
                    d_all_h[j] += bits[j] / (1.0 + bits.sum()) * dx_next
                # Cross-entropy of the chosen skips, times the advantage.
                onehot = np.zeros_like(skip.log_probs)
                onehot[np.arange(len(skip.chosen)), skip.chosen] = 1.0
                d_final = (np.exp(skip.log_probs) - onehot) * advantage
                if s.skip_weight is not None:
                    final, _ = self._logits(skip.raw)
                    prob = _sigmoid(final)
                    d_kl = prob * (1.0 - prob) * (np.log(prob / targets) + 1.0)
                    d_final = d_final + s.skip_weight / skip_layers * d_kl
                d_raw = self._logits_backward(d_final, skip)
                d_score = d_raw[:, 1:2] - d_raw[:, 0:1]  # (layer, 1)
                grads["attn_v"] += query.T @ d_score
                d_pre = (d_score @ self.params["attn_v"].T) * (1.0 - query**2)  # (layer, H)
                pre_sum = d_pre.sum(axis=0, keepdims=True)
                grads["attn_w_2"] += h_b.T @ pre_sum
                dh_b = dh_b + pre_sum @ self.params["attn_w_2"].T
                for j in range(layer):
                    h_j = trace.hidden[j]
                    grads["attn_w_1"] += h_j.T @ d_pre[j : j + 1]
                    d_all_h[j] += d_pre[j : j + 1] @ self.params["attn_w_1"].T
            dx_b, dh_a, dc_a = self._lstm_backward(step_b, dh_b, dc, grads)
            op = trace.op_decisions[layer]
            op_index = int(op.chosen[0])
            grads["w_emb"][op_index : op_index + 1] += dx_b
            onehot = np.zeros_like(op.log_probs)
            onehot[0, op_index] = 1.0
            d_raw = self._logits_backward((np.exp(op.log_probs) - onehot) * advantage, op)
            h_a = step_b.xh[:, hidden:]
            grads["w_soft"] += h_a.T @ d_raw
            dh_a = dh_a + d_raw @ self.params["w_soft"].T
            dx_a, dh, dc = self._lstm_backward(step_a, dh_a, dc_a, grads)
            dx_next = dx_a
        grads["g_emb"] += dx_next
        return grads

    def adam_step_with(self, grads: dict[str, Array], learning_rate: float) -> float:
        """Apply one Adam update; returns the gradient's global norm (for the log)."""
        self.adam_step += 1
        t = self.adam_step
        rate = learning_rate * math.sqrt(1.0 - _ADAM_BETA2**t) / (1.0 - _ADAM_BETA1**t)
        norm_sq = 0.0
        for name, grad in grads.items():
            norm_sq += float((grad**2).sum())
            m = self.adam_m[name] = _ADAM_BETA1 * self.adam_m[name] + (1 - _ADAM_BETA1) * grad
            v = self.adam_v[name] = _ADAM_BETA2 * self.adam_v[name] + (1 - _ADAM_BETA2) * grad**2
            self.params[name] = self.params[name] - rate * m / (np.sqrt(v) + _ADAM_EPSILON)
        return math.sqrt(norm_sq)

    def probabilities(self, trace: Trace) -> list[Array]:
        """The operation probabilities at each layer along ``trace`` (for tests and logs)."""
        return [np.exp(d.log_probs[0]) for d in trace.op_decisions]
