"""ENAS: Katib's trial parameters, the controller's gradient, and that it learns."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from suggestion import SUCCEEDED, NasOperation, NasSpace, Parameter, SearchSpace, TrialRecord
from suggestion.algorithms._enas_controller import Controller, ControllerSettings
from suggestion.algorithms.enas import ENAS, expand_operations

CONV = NasOperation(
    "convolution",
    (
        Parameter("filter_size", "categorical", values=("3", "5")),
        Parameter("num_filter", "int", min=32, max=64, step=16),
    ),
)
POOL = NasOperation("reduction", (Parameter("reduction_type", "categorical", values=("max",)),))
SPACE = SearchSpace(nas=NasSpace(3, (32, 32, 3), (10,), (CONV, POOL)))


def build(**settings: str) -> ENAS:
    return ENAS(SPACE, maximize=True, settings={"random_state": "3", **settings})


def test_operations_expand_as_katib_numbers_them() -> None:
    assert expand_operations(SPACE.nas) == [  # type: ignore[arg-type]
        ("convolution", {"filter_size": "3", "num_filter": 32}),
        ("convolution", {"filter_size": "3", "num_filter": 48}),
        ("convolution", {"filter_size": "3", "num_filter": 64}),
        ("convolution", {"filter_size": "5", "num_filter": 32}),
        ("convolution", {"filter_size": "5", "num_filter": 48}),
        ("convolution", {"filter_size": "5", "num_filter": 64}),
        ("reduction", {"reduction_type": "max"}),
    ]


def test_trial_parameters_have_katibs_shapes() -> None:
    algorithm = build()
    assignments = algorithm.assignments(((6,), (1, 0), (6, 1, 1)))
    assert assignments["architecture"] == "[[6], [1, 0], [6, 1, 1]]"
    assert json.loads(assignments["nn_config"].replace("'", '"')) == {
        "num_layers": 3,
        "input_sizes": [32, 32, 3],
        "output_sizes": [10],
        "embedding": {
            "6": {"opt_id": 6, "opt_type": "reduction", "opt_params": {"reduction_type": "max"}},
            "1": {
                "opt_id": 1,
                "opt_type": "convolution",
                "opt_params": {"filter_size": "3", "num_filter": 48},
            },
        },
    }
    assert '"' not in assignments["nn_config"]  # single quotes, as Katib writes them


def loss(controller: Controller, architecture: Any, advantage: float) -> float:
    trace = controller.evaluate(architecture)
    weight = controller.settings.skip_weight or 0.0
    return -trace.log_prob * advantage + weight * trace.skip_penalty


@pytest.mark.parametrize("temperature", [5.0, None])
def test_the_gradient_is_the_losss(temperature: float | None) -> None:
    settings = ControllerSettings(
        num_layers=3, num_operations=4, hidden_size=6, temperature=temperature
    )
    rng = np.random.default_rng(0)
    controller = Controller(settings, rng)
    for name in controller.params:  # larger weights than the initial ones: a harder check
        controller.params[name] = rng.normal(0, 0.5, controller.params[name].shape)
    architecture = controller.sample(rng).architecture
    advantage = 0.7
    grads = controller.gradients(controller.evaluate(architecture), advantage)
    eps = 1e-6
    for name, param in controller.params.items():
        for index in list(np.ndindex(param.shape))[:: max(1, param.size // 12)]:
            saved = param[index]
            param[index] = saved + eps
            up = loss(controller, architecture, advantage)
            param[index] = saved - eps
            down = loss(controller, architecture, advantage)
            param[index] = saved
            numeric = (up - down) / (2 * eps)
            assert grads[name][index] == pytest.approx(numeric, rel=1e-4, abs=1e-7), name


def test_the_controller_learns_which_operation_is_best() -> None:
    """A synthetic reward: the share of layers that use the reduction (id 6)."""
    algorithm = build(
        controller_learning_rate="0.02", controller_train_steps="10", controller_hidden_size="16"
    )
    probe = ((6,), (6, 0), (6, 0, 0))

    def probability() -> float:
        trace = algorithm.controller.evaluate(probe)
        return float(np.mean([p[6] for p in algorithm.controller.probabilities(trace)]))

    before = probability()
    completed: list[TrialRecord] = []
    for round_ in range(25):
        for i, assignments in enumerate(algorithm.suggest(4)):
            layers = json.loads(assignments["architecture"])
            reward = sum(layer[0] == 6 for layer in layers) / len(layers)
            completed.append(TrialRecord(f"t-{round_}-{i}", assignments, SUCCEEDED, reward))
        algorithm.update(completed, [])
    after = probability()
    assert before == pytest.approx(1 / 7, abs=0.02)
    assert after > 0.5, (before, after)


def test_a_restored_controller_goes_on_learning_where_it_stopped() -> None:
    first = build(controller_train_steps="3")
    completed: list[TrialRecord] = []
    for round_ in range(3):
        for i, assignments in enumerate(first.suggest(2)):
            completed.append(TrialRecord(f"t-{round_}-{i}", assignments, SUCCEEDED, i / 2))
        first.update(completed, [])
    state = json.loads(json.dumps(first.dump_state()))
    second = build(controller_train_steps="3")
    second.load_state(state)
    second.update(completed, [])
    assert second.controller.adam_step == first.controller.adam_step > 0
    for name in first.controller.params:
        assert np.array_equal(first.controller.params[name], second.controller.params[name])
    assert second.suggest(3) == first.suggest(3)
