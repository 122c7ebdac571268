"""ENAS: an LSTM controller proposes architectures and learns from the trials' rewards.

As Katib's ENAS service (``pkg/suggestion/v1beta1/nas/enas``):

- **The choices.** Every combination of an operation's parameter values is one choice
  (``Operation.py``: categorical and discrete lists as strings, ints from ``min`` to
  ``max`` by ``step``, doubles the same; ids in the order of ``nasConfig.operations``).
  For each of ``numLayers`` layers the controller picks one, and whether to connect each
  earlier layer to it.
- **What a trial gets**, exactly as Katib's trial images read it: ``architecture``, a JSON
  list per layer (``[[op], [op, skip0], [op, skip0, skip1], ...]``), and ``nn_config``
  (``num_layers``, ``input_sizes``, ``output_sizes`` and ``embedding``: for each operation
  id in the architecture, ``opt_id``, ``opt_type`` and ``opt_params``), both written with
  single quotes as Katib writes them.
- **The settings** and their defaults and ranges are Katib's (``AlgorithmSettings.py``),
  with ``None`` turning off the temperature, the tanh constant, the entropy bonus or the
  skip penalty.

Where it differs, on purpose:

- **Rewards**: each succeeded trial's objective (negated when minimizing, plus
  ``controller_entropy_weight`` times the sample entropy) is the reward of *its own*
  architecture. Katib's service instead feeds the mean objective of all trials as the reward
  of freshly sampled architectures, which tells the controller nothing about which
  architecture earned it. When trials have finished since the last suggestion, the
  controller takes ``controller_train_steps`` Adam steps on the REINFORCE loss of their
  architectures, then samples the new ones.
- **The baseline** is the bias-corrected moving average (decay
  ``controller_baseline_decay``) of the rewards seen, so that it starts at the first
  rewards rather than at 0 (with Katib's 0.999 it would take thousands of trials to move).
- **No repeats**: an architecture already tried or running is drawn again (as random
  search does), so a small space is covered once and then the experiment ends.
- ``random_state`` (an extension) seeds the initial weights and the draws.

The controller's weights, Adam moments and step, the baseline, the generator and the names
of the trials already learned from are the algorithm's state: a resumed experiment goes on
training the same controller.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from suggestion._base import (
    SUCCEEDED,
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_float,
    check_int,
)
from suggestion._nas import NasSpace
from suggestion._space import CATEGORICAL, DISCRETE, DOUBLE, INT, SearchSpace, format_float
from suggestion._state import STATE_VERSION, InvalidStateError, check_version, decode, pack
from suggestion.algorithms._enas_controller import (
    PARAMETERS,
    Architecture,
    Controller,
    ControllerSettings,
)

logger = logging.getLogger(__name__)

ARCHITECTURE = "architecture"
NN_CONFIG = "nn_config"

#: Limits beyond Katib's, so that a typo cannot make the controller hang or run out of memory.
MAX_OPERATIONS = 10_000
MAX_LAYERS = 100
MAX_HIDDEN_SIZE = 1024
MAX_TRAIN_STEPS = 10_000

# Draws from the policy before an untried architecture is looked for directly.
_MAX_DRAWS = 100

OpParams = dict[str, str | int | float]


def _none_or(check: Any) -> Any:
    """A checker that also accepts Katib's ``None`` (the feature turned off)."""

    def checker(value: str) -> str | None:
        return None if value == "None" else check(value)

    return checker


def expand_operations(nas: NasSpace) -> list[tuple[str, OpParams]]:
    """Every (operation type, parameter values) choice, in Katib's order of ids."""
    out: list[tuple[str, OpParams]] = []
    for operation in nas.operations:
        names = [p.name for p in operation.parameters]
        axes = [_values(p) for p in operation.parameters]
        for combination in itertools.product(*axes):
            out.append((operation.operation_type, dict(zip(names, combination, strict=True))))
    return out


def _values(param: Any) -> list[str | int | float]:
    if param.type in (CATEGORICAL, DISCRETE):
        return list(param.values)
    step = param.step or 1.0
    count = int(math.floor((param.high - param.low) / step + 1e-9)) + 1
    if param.type == INT:
        return [int(round(param.low + k * step)) for k in range(count)]
    return [float(format_float(param.low + k * step)) for k in range(count)]


def _operation_count(nas: NasSpace) -> int:
    total = 0
    for operation in nas.operations:
        size = 1
        for param in operation.parameters:
            if param.type in (CATEGORICAL, DISCRETE):
                size *= len(param.values)
            else:
                step = param.step or 1.0
                size *= int(math.floor((param.high - param.low) / step + 1e-9)) + 1
        total += size
    return total


def katib_json(value: Any) -> str:
    """JSON with single quotes, as Katib's services write trial parameters."""
    return json.dumps(value).replace('"', "'")


def parse_architecture(text: str, num_layers: int, num_operations: int) -> Architecture | None:
    """The architecture in an ``architecture`` assignment, or None if it is not one."""
    try:
        data = json.loads(text.replace("'", '"'))
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, list) or len(data) != num_layers:
        return None
    layers: list[tuple[int, ...]] = []
    for index, layer in enumerate(data):
        if not isinstance(layer, list) or len(layer) != index + 1:
            return None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in layer):
            return None
        if not 0 <= layer[0] < num_operations or any(v not in (0, 1) for v in layer[1:]):
            return None
        layers.append(tuple(layer))
    return tuple(layers)


class ENAS(Algorithm):
    """Efficient Neural Architecture Search's controller, trained on the trials' results."""

    name = "enas"
    nas = True
    supports_warm_start = False
    #: The trial parameters it assigns (what ``trialParameters[].reference`` may name).
    parameter_names = (ARCHITECTURE, NN_CONFIG)
    settings_spec = {
        "controller_hidden_size": SettingSpec(
            "64", "LSTM hidden units", check_int(1, MAX_HIDDEN_SIZE)
        ),
        "controller_temperature": SettingSpec(
            "5.0", "logits are divided by it (None: off)",
            _none_or(check_float(0.0, exclusive_min=True)),
        ),
        "controller_tanh_const": SettingSpec(
            "2.25", "logits are squashed to ±it by tanh (None: off)",
            _none_or(check_float(0.0, exclusive_min=True)),
        ),
        "controller_entropy_weight": SettingSpec(
            "1e-05", "weight of the sample entropy added to the reward (None: off)",
            _none_or(check_float(0.0, exclusive_min=True)),
        ),
        "controller_baseline_decay": SettingSpec(
            "0.999", "decay of the reward's moving average",
            check_float(0.0, 1.0, exclusive_min=True),
        ),
        "controller_learning_rate": SettingSpec(
            "5e-05", "Adam's learning rate", check_float(0.0, 1.0, exclusive_min=True)
        ),
        "controller_skip_target": SettingSpec(
            "0.4", "target probability of a skip connection",
            check_float(0.0, 1.0, exclusive_min=True),
        ),
        "controller_skip_weight": SettingSpec(
            "0.8", "weight of the skip penalty (None: off)",
            _none_or(check_float(0.0, exclusive_min=True)),
        ),
        "controller_train_steps": SettingSpec(
            "50", "Adam steps each time trials have finished", check_int(1, MAX_TRAIN_STEPS)
        ),
        "controller_log_every_steps": SettingSpec(
            "10", "log the controller's training every this many steps", check_int(1)
        ),
        "random_state": SettingSpec(
            None, "seed of the initial weights and of the draws (not in Katib)", check_int(0)
        ),
    }

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        nas = space.nas
        if nas is None:
            return [(None, "searches neural architectures: it needs spec.nasConfig")]
        problems: list[tuple[str | None, str]] = []
        # Katib's ENAS service refuses these too: its trials build the network from them.
        if not nas.input_sizes:
            problems.append(("graphConfig.inputSizes", "must be set for enas"))
        if not nas.output_sizes:
            problems.append(("graphConfig.outputSizes", "must be set for enas"))
        if nas.num_layers > MAX_LAYERS:
            problems.append(
                ("graphConfig.numLayers", f"must be at most {MAX_LAYERS} for enas")
            )
        for i, operation in enumerate(nas.operations):
            for j, param in enumerate(operation.parameters):
                if param.type == DOUBLE and not param.step:
                    problems.append(
                        (
                            f"operations[{i}].parameters[{j}].feasibleSpace.step",
                            "a double parameter of an operation needs a step > 0 for enas",
                        )
                    )
        if not problems:
            count = _operation_count(nas)
            if count > MAX_OPERATIONS:
                problems.append(
                    ("operations", f"expand to {count} choices; enas takes at most "
                     f"{MAX_OPERATIONS}")
                )
        return problems

    def __init__(self, space: SearchSpace, **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        if space.nas is None:
            raise ValueError("enas needs a neural architecture search space (spec.nasConfig)")
        self.nas_space: NasSpace = space.nas
        self.operations = expand_operations(self.nas_space)
        s = self.settings
        self.learning_rate = float(s["controller_learning_rate"])
        self.baseline_decay = float(s["controller_baseline_decay"])
        self.train_steps = int(s["controller_train_steps"])
        self.log_every = int(s["controller_log_every_steps"])
        self.entropy_weight = _optional(s["controller_entropy_weight"])
        seed = s.get("random_state")
        self._rng = np.random.default_rng(None if seed is None else int(seed))
        self.controller = Controller(
            ControllerSettings(
                num_layers=self.nas_space.num_layers,
                num_operations=len(self.operations),
                hidden_size=int(s["controller_hidden_size"]),
                temperature=_optional(s["controller_temperature"]),
                tanh_const=_optional(s["controller_tanh_const"]),
                entropy_weight=self.entropy_weight,
                skip_target=float(s["controller_skip_target"]),
                skip_weight=_optional(s["controller_skip_weight"]),
            ),
            self._rng,
        )
        self.baseline = 0.0  # the moving average, before bias correction
        self.baseline_count = 0  # rewards averaged into it
        self._learned: set[str] = set()  # finished trials taken in (names)
        self._pending: list[tuple[str, Architecture, float]] = []  # to learn from
        self._tried: set[Architecture] = set()
        self.last_loss: float | None = None

    # The contract ------------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        pending = {name for name, _, _ in self._pending}
        for trial in completed:
            architecture = self._architecture(trial.assignments)
            if architecture is not None:
                self._tried.add(architecture)
            if trial.name in self._learned or trial.name in pending:
                continue
            if architecture is None or trial.state != SUCCEEDED or trial.objective is None:
                self._learned.add(trial.name)  # nothing to learn: only successes are rewards
                continue
            if not math.isfinite(trial.objective):
                self._learned.add(trial.name)
                continue
            reward = trial.objective if self.maximize else -trial.objective
            self._pending.append((trial.name, architecture, reward))
            pending.add(trial.name)
        for trial in active:
            architecture = self._architecture(trial.assignments)
            if architecture is not None:
                self._tried.add(architecture)

    def suggest(self, count: int) -> list[dict[str, str]]:
        if self._pending:
            self._train()
        out: list[dict[str, str]] = []
        for _ in range(count):
            architecture = self._untried()
            if architecture is None:
                break  # every architecture has been tried
            self._tried.add(architecture)
            out.append(self.assignments(architecture))
        return out

    # Architectures -------------------------------------------------------------------------

    def _architecture(self, assignments: Mapping[str, str]) -> Architecture | None:
        text = assignments.get(ARCHITECTURE)
        if text is None:
            return None
        return parse_architecture(text, self.nas_space.num_layers, len(self.operations))

    def assignments(self, architecture: Architecture) -> dict[str, str]:
        """The trial parameters Katib's ENAS trials read, for ``architecture``."""
        embedding: dict[str, dict[str, Any]] = {}
        for layer in architecture:
            op_id = layer[0]
            op_type, params = self.operations[op_id]
            embedding[str(op_id)] = {"opt_id": op_id, "opt_type": op_type, "opt_params": params}
        nn_config = {
            "num_layers": self.nas_space.num_layers,
            "input_sizes": list(self.nas_space.input_sizes),
            "output_sizes": list(self.nas_space.output_sizes),
            "embedding": embedding,
        }
        return {
            ARCHITECTURE: katib_json([list(layer) for layer in architecture]),
            NN_CONFIG: katib_json(nn_config),
        }

    @property
    def space_size(self) -> int:
        """How many architectures there are (a Python int: it can be astronomical)."""
        layers = self.nas_space.num_layers
        return int(len(self.operations) ** layers * 2 ** (layers * (layers - 1) // 2))

    def _untried(self) -> Architecture | None:
        for _ in range(_MAX_DRAWS):
            architecture = self.controller.sample(self._rng).architecture
            if architecture not in self._tried:
                return architecture
        # The policy keeps proposing tried ones: look for an untried one directly.
        size = self.space_size
        if len(self._tried) >= size:
            return None
        for _ in range(_MAX_DRAWS):
            architecture = self._uniform()
            if architecture not in self._tried:
                return architecture
        # Fewer than about one in a hundred is left, so the space is small: walk it.
        start = int(self._rng.integers(size)) if size < 2**62 else 0
        for offset in range(size):
            architecture = self._at((start + offset) % size)
            if architecture not in self._tried:
                return architecture
        return None

    def _uniform(self) -> Architecture:
        n = len(self.operations)
        return tuple(
            (int(self._rng.integers(n)), *(int(b) for b in self._rng.integers(2, size=layer)))
            for layer in range(self.nas_space.num_layers)
        )

    def _at(self, index: int) -> Architecture:
        """The ``index``-th architecture in a fixed order (operations, then skip bits)."""
        n = len(self.operations)
        layers = self.nas_space.num_layers
        skips, ops = divmod(index, n**layers)
        out: list[tuple[int, ...]] = []
        for layer in range(layers):
            ops, op = divmod(ops, n)
            bits = []
            for _ in range(layer):
                skips, bit = divmod(skips, 2)
                bits.append(bit)
            out.append((op, *bits))
        return tuple(out)

    # Learning ------------------------------------------------------------------------------

    def _train(self) -> None:
        """REINFORCE on the architectures of the trials finished since the last time."""
        batch, self._pending = self._pending, []
        traces = [self.controller.evaluate(architecture) for _, architecture, _ in batch]
        rewards = [
            reward + (self.entropy_weight or 0.0) * trace.entropy
            for (_, _, reward), trace in zip(batch, traces, strict=True)
        ]
        for reward in rewards:
            self.baseline_count += 1
            self.baseline -= (1.0 - self.baseline_decay) * (self.baseline - reward)
        baseline = self.current_baseline()
        advantages = [reward - baseline for reward in rewards]
        skip_weight = self.controller.settings.skip_weight or 0.0
        for step in range(1, self.train_steps + 1):
            if step > 1:
                traces = [self.controller.evaluate(t.architecture) for t in traces]
            grads = {k: np.zeros_like(v) for k, v in self.controller.params.items()}
            loss = 0.0
            for trace, advantage in zip(traces, advantages, strict=True):
                loss += -trace.log_prob * advantage + skip_weight * trace.skip_penalty
                for name, grad in self.controller.gradients(trace, advantage).items():
                    grads[name] += grad
            size = len(traces)
            norm = self.controller.adam_step_with(
                {k: g / size for k, g in grads.items()}, self.learning_rate
            )
            self.last_loss = loss / size
            if step % self.log_every == 0:
                layers = self.nas_space.num_layers
                pairs = max(layers * (layers - 1) // 2, 1)
                logger.info(
                    "Controller Step: %d - Loss: %.4f - Entropy: %.6g - Gradient Norm: %.7f"
                    " - Baseline=%.4f - Skip Rate=%.4f",
                    self.controller.adam_step,
                    self.last_loss,
                    sum(t.entropy for t in traces) / size,
                    norm,
                    baseline,
                    sum(t.skip_count for t in traces) / size / pairs,
                )
        self._learned.update(name for name, _, _ in batch)

    def current_baseline(self) -> float:
        """The baseline the advantages are measured from (the bias-corrected average)."""
        if self.baseline_count == 0:
            return 0.0
        correction = 1.0 - self.baseline_decay**self.baseline_count
        return self.baseline / correction if correction > 0 else self.baseline

    # State ---------------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        c = self.controller
        return {
            "version": STATE_VERSION,
            "weights": {k: pack(c.params[k]) for k in PARAMETERS},
            "adam_m": {k: pack(c.adam_m[k]) for k in PARAMETERS},
            "adam_v": {k: pack(c.adam_v[k]) for k in PARAMETERS},
            "adam_step": c.adam_step,
            "baseline": self.baseline,
            "baseline_count": self.baseline_count,
            "rng": self._rng.bit_generator.state,
            "learned": sorted(self._learned),
            "pending": [[n, [list(layer) for layer in a], r] for n, a, r in self._pending],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        check_version(state, self.name)
        data = decode(dict(state))
        c = self.controller
        try:
            arrays = {
                part: {k: np.asarray(data[part][k], dtype=np.float64) for k in PARAMETERS}
                for part in ("weights", "adam_m", "adam_v")
            }
            for part in arrays.values():
                for k, array in part.items():
                    if array.shape != c.shapes[k]:
                        raise ValueError(
                            f"{k} has shape {array.shape}, the settings make {c.shapes[k]}"
                        )
            adam_step = int(data["adam_step"])
            baseline = float(data["baseline"])
            baseline_count = int(data["baseline_count"])
            learned = {str(n) for n in data["learned"]}
            pending: list[tuple[str, Architecture, float]] = []
            for name, layers, reward in data.get("pending", []):
                architecture = parse_architecture(
                    json.dumps(layers), self.nas_space.num_layers, len(self.operations)
                )
                if architecture is None:
                    raise ValueError(f"bad architecture of trial {name!r}")
                pending.append((str(name), architecture, float(reward)))
            rng = np.random.default_rng()
            rng.bit_generator.state = dict(data["rng"])
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidStateError(f"{self.name}: bad state: {e}") from e
        c.params, c.adam_m, c.adam_v = arrays["weights"], arrays["adam_m"], arrays["adam_v"]
        c.adam_step = adam_step
        self.baseline, self.baseline_count = baseline, baseline_count
        self._learned, self._pending = learned, pending
        self._rng.bit_generator.state = rng.bit_generator.state


def _optional(value: str) -> float | None:
    return None if value == "None" else float(value)
