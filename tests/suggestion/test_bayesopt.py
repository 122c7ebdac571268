"""Bayesian optimization: settings as Katib checks them, search quality, batches, mixed spaces
and state. The generic contract (``test_contract.py``) runs over it as well."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable, Mapping

import numpy as np
import pytest

from suggestion import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    Algorithm,
    Parameter,
    SearchSpace,
    TrialRecord,
    get_algorithm,
)
from suggestion.algorithms.bayesopt import BayesianOptimization, _Encoding, _standardize
from suggestion.algorithms.random import RandomSearch

Loss = Callable[[Mapping[str, str]], float]

BRANIN = SearchSpace(
    (
        Parameter("x1", "double", min=-5.0, max=10.0),
        Parameter("x2", "double", min=0.0, max=15.0),
    )
)
MIXED = SearchSpace(
    (
        Parameter("lr", "double", min=1e-4, max=1.0, distribution="logUniform"),
        Parameter("layers", "int", min=1, max=12),
        Parameter("batch", "int", min=16, max=256, step=16),
        Parameter("momentum", "discrete", values=("0.99", "0.5", "0.9")),
        Parameter("optimizer", "categorical", values=("sgd", "adam", "ftrl")),
    )
)


def branin(a: Mapping[str, str]) -> float:
    x1, x2 = float(a["x1"]), float(a["x2"])
    return (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )


def mixed_loss(a: Mapping[str, str]) -> float:
    """Best at lr=1e-2, layers=4, batch=64, momentum 0.9, adam."""
    return (
        (math.log10(float(a["lr"])) + 2) ** 2
        + (int(a["layers"]) - 4) ** 2 / 10
        + (int(a["batch"]) - 64) ** 2 / 5000
        + {"0.5": 0.5, "0.9": 0.0, "0.99": 0.3}[a["momentum"]]
        + {"sgd": 1.0, "adam": 0.0, "ftrl": 2.0}[a["optimizer"]]
    )


def bo(space: SearchSpace, seed: int = 0, **settings: str) -> BayesianOptimization:
    return BayesianOptimization(
        space, maximize=False, settings={"random_state": str(seed), **settings}
    )


def run(algorithm: Algorithm, loss: Loss, trials: int) -> list[float]:
    """Sequential loop: suggest one, evaluate, report; the objective values in order."""
    values: list[float] = []
    for i in range(trials):
        (assignments,) = algorithm.suggest(1)
        value = float(loss(assignments))
        values.append(value)
        algorithm.update([TrialRecord(f"t-{i:03d}", assignments, SUCCEEDED, value)], [])
    return values


def test_registered_under_katibs_name() -> None:
    assert get_algorithm("bayesianoptimization") is BayesianOptimization


# --- settings ---------------------------------------------------------------------------------


def test_defaults_are_katibs() -> None:
    assert BayesianOptimization.resolve_settings({}) == {
        "base_estimator": "GP",
        "n_initial_points": "10",
        "acq_func": "gp_hedge",
        "acq_optimizer": "auto",
    }


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"base_estimator": "RF", "acq_func": "EI", "acq_optimizer": "sampling"},
        {"base_estimator": "GBRT", "n_initial_points": "0", "random_state": "0"},
        {"acq_func": "PIps", "acq_optimizer": "lbfgs"},
        {"base_estimator": "ET", "acq_func": "LCB", "acq_optimizer": "auto"},
    ],
)
def test_valid_settings(settings: dict[str, str]) -> None:
    assert BayesianOptimization.validate_settings(settings) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("base_estimator", "SVM"),
        ("base_estimator", "gp"),
        ("n_initial_points", "-1"),
        ("n_initial_points", "ten"),
        ("acq_func", "UCB"),
        ("acq_optimizer", "adam"),
        ("random_state", "-3"),
        ("random_state", "1.5"),
        ("kappa", "1.96"),
    ],
)
def test_bad_settings_are_named(name: str, value: str) -> None:
    problems = BayesianOptimization.validate_settings({name: value})
    assert [key for key, _ in problems] == [name], problems


def test_lbfgs_needs_the_gp() -> None:
    problems = BayesianOptimization.validate_settings(
        {"base_estimator": "RF", "acq_optimizer": "lbfgs"}
    )
    assert [key for key, _ in problems] == ["acq_optimizer"]
    assert "GP" in problems[0][1]


def test_auto_optimizer_is_lbfgs_only_for_numeric_gp_spaces() -> None:
    assert bo(BRANIN).acq_optimizer == "lbfgs"
    assert bo(MIXED).acq_optimizer == "sampling"
    assert bo(BRANIN, base_estimator="ET").acq_optimizer == "sampling"


# --- search quality ---------------------------------------------------------------------------


@pytest.mark.slow
def test_beats_random_search_on_branin_after_30_trials() -> None:
    seeds = range(3)
    ours = [min(run(bo(BRANIN, seed), branin, 30)) for seed in seeds]
    plain = [
        min(
            run(RandomSearch(BRANIN, maximize=False, settings={"random_state": str(s)}), branin, 30)
        )
        for s in seeds
    ]
    # The optimum is 0.3979; random search's median best after 30 trials is about 1.5.
    assert statistics.median(ours) < statistics.median(plain)
    assert statistics.median(ours) < 0.6, ours


@pytest.mark.slow
def test_mixed_space_finds_the_good_categories() -> None:
    algorithm = bo(MIXED, 3, n_initial_points="8")
    values = run(algorithm, mixed_loss, 30)
    # "adam" and momentum 0.9 are worth 1.0 and 0.3 over the next best choices.
    assert min(values) < 0.5, sorted(values)[:3]
    assert sorted(values)[2] < 1.0


def test_maximize_climbs() -> None:
    space = SearchSpace((Parameter("x", "double", min=0.0, max=1.0),))
    algorithm = BayesianOptimization(
        space, maximize=True, settings={"random_state": "1", "n_initial_points": "4"}
    )
    values = run(algorithm, lambda a: -((float(a["x"]) - 0.8) ** 2), 12)
    assert max(values) > -1e-3


def test_the_model_sees_monotone_standardized_losses() -> None:
    # A heavy tail (a few diverged runs) is pulled in, and the order of the losses is kept.
    loss = np.exp(3 * np.random.default_rng(0).normal(size=60))
    seen = _standardize(loss)
    assert np.array_equal(np.argsort(seen), np.argsort(loss))
    assert seen.mean() == pytest.approx(0, abs=1e-9) and seen.std() == pytest.approx(1)
    plain = (loss - loss.mean()) / loss.std()
    assert np.median(seen) - seen.min() > 5 * (np.median(plain) - plain.min())
    assert np.all(_standardize(np.full(7, 3.0)) == 0)


# --- mixed parameter types --------------------------------------------------------------------


def test_encoding_round_trips_every_parameter_type() -> None:
    encoding = _Encoding(MIXED)
    point = {
        "lr": "0.003",
        "layers": "7",
        "batch": "112",
        "momentum": "0.9",
        "optimizer": "ftrl",
    }
    row = encoding.encode(point)
    assert row is not None
    # lr, layers, batch, momentum one column each; optimizer one-hot over three.
    assert encoding.width == 7
    assert encoding.decode(row) == point
    # Discrete numbers are ranked by value, not by their order in the spec.
    assert row[3] == pytest.approx(0.5)
    assert encoding.encode({**point, "optimizer": "rmsprop"}) is None


def test_snapping_lands_on_steps_and_integers() -> None:
    encoding = _Encoding(MIXED)
    rows = encoding.snap(np.random.default_rng(0).random((200, encoding.width)))
    for row in rows:
        decoded = encoding.decode(row)
        assert MIXED["layers"].contains(decoded["layers"])
        assert (int(decoded["batch"]) - 16) % 16 == 0
        again = encoding.encode(decoded)
        assert again is not None
        assert np.allclose(encoding.snap(again[None, :]), row[None, :])


@pytest.mark.parametrize("estimator", ["GP", "RF", "ET", "GBRT"])
@pytest.mark.parametrize("acq_func", ["gp_hedge", "EI"])
def test_estimators_handle_int_and_categorical_parameters(estimator: str, acq_func: str) -> None:
    algorithm = bo(MIXED, 2, base_estimator=estimator, acq_func=acq_func, n_initial_points="4")
    seen: set[tuple[str, ...]] = set()
    for i in range(5):
        batch = algorithm.suggest(2)
        assert len(batch) == 2
        for assignments in batch:
            for param in MIXED:
                assert param.contains(assignments[param.name]), (param.name, assignments)
            key = MIXED.key(assignments)
            assert key not in seen
            seen.add(key)
        algorithm.update(
            [TrialRecord(f"t-{i}-{j}", a, SUCCEEDED, mixed_loss(a)) for j, a in enumerate(batch)],
            [],
        )


def test_lbfgs_polishes_numeric_columns_with_categories_fixed() -> None:
    algorithm = bo(MIXED, 4, acq_optimizer="lbfgs", acq_func="EI", n_initial_points="5")
    values = run(algorithm, mixed_loss, 12)
    assert len(values) == 12
    assert all(math.isfinite(v) for v in values)


# --- batches, running and failed trials -------------------------------------------------------


def history(space: SearchSpace, loss: Loss, count: int, seed: int = 5) -> list[TrialRecord]:
    sampler = RandomSearch(space, maximize=False, settings={"random_state": str(seed)})
    return [
        TrialRecord(f"h-{i:03d}", a, SUCCEEDED, float(loss(a)))
        for i, a in enumerate(sampler.suggest(count))
    ]


@pytest.mark.parametrize("acq_func", ["gp_hedge", "EI", "LCB", "PI"])
def test_a_batch_with_running_trials_spreads_out(acq_func: str) -> None:
    algorithm = bo(BRANIN, 7, acq_func=acq_func)
    algorithm.update(history(BRANIN, branin, 15), [])
    running = algorithm.suggest(2)
    algorithm.update([], [TrialRecord(f"r-{i}", a, RUNNING) for i, a in enumerate(running)])

    batch = algorithm.suggest(4)
    assert len(batch) == 4
    points = np.array([[float(a["x1"]) / 15, float(a["x2"]) / 15] for a in [*running, *batch]])
    gaps = [np.linalg.norm(p - q) for p, q in itertools.combinations(points, 2)]
    # The constant liar pushes each pick away from the running ones and the earlier picks:
    # none of the six collapses onto another (1% of the range).
    assert min(gaps) > 0.01, gaps


def test_failed_points_are_not_suggested_again_nor_fitted() -> None:
    space = SearchSpace(
        (
            Parameter("n", "int", min=1, max=4),
            Parameter("opt", "categorical", values=("a", "b")),
        )
    )
    algorithm = bo(space, 1, n_initial_points="2")
    good = [
        TrialRecord("ok-1", {"n": "1", "opt": "a"}, SUCCEEDED, 3.0),
        TrialRecord("ok-2", {"n": "4", "opt": "b"}, SUCCEEDED, 1.0),
    ]
    failed = [TrialRecord("bad-1", {"n": "3", "opt": "b"}, FAILED, None)]
    algorithm.update([*good, *failed], [])
    suggested = [space.key(a) for a in algorithm.suggest(5)]
    assert len(suggested) == len(set(suggested)) == 5
    tried = {space.key(t.assignments) for t in (*good, *failed)}
    assert not set(suggested) & tried
    assert algorithm.suggest(1) == []  # all 8 points are taken


def test_per_second_acquisition_uses_reported_durations() -> None:
    space = SearchSpace((Parameter("x", "double", min=0.0, max=1.0),))
    trials = [
        TrialRecord(
            f"t-{i}",
            {"x": str(x)},
            SUCCEEDED,
            (x - 0.5) ** 2,
            metrics={"duration": math.exp(4 * x)},
        )
        for i, x in enumerate([0.05, 0.2, 0.35, 0.65, 0.8, 0.95])
    ]
    with_time = bo(space, 1, acq_func="EIps", n_initial_points="3")
    with_time.update(trials, [])
    (pick,) = with_time.suggest(1)
    assert 0.0 <= float(pick["x"]) <= 1.0
    assert with_time.dump_state()["time_theta"] is not None  # the duration model was fitted

    without = bo(space, 1, acq_func="PIps", n_initial_points="3")
    without.update([TrialRecord(t.name, t.assignments, t.state, t.objective) for t in trials], [])
    assert len(without.suggest(2)) == 2  # falls back to PI
    assert without.dump_state()["time_theta"] is None


# --- state ------------------------------------------------------------------------------------


@pytest.mark.parametrize("acq_func", ["gp_hedge", "EI"])
def test_restart_from_dumped_state_continues_identically(acq_func: str) -> None:
    original = bo(MIXED, 11, acq_func=acq_func, n_initial_points="4")
    done: list[TrialRecord] = []
    for i in range(8):
        (a,) = original.suggest(1)
        trial = TrialRecord(f"t-{i}", a, SUCCEEDED, mixed_loss(a))
        done.append(trial)
        original.update([trial], [])
    pending = original.suggest(1)  # the model is in use and has fitted; hedge gains exist
    state = json.loads(json.dumps(original.dump_state()))
    if acq_func == "gp_hedge":
        assert state["proposals"] is not None and len(state["gains"]) == 3
    assert state["theta"] is not None

    restarted = bo(MIXED, 999, acq_func=acq_func, n_initial_points="4")  # seed is restored
    restarted.load_state(state)
    running = [TrialRecord("running", pending[0], RUNNING)]
    restarted.update(list(reversed(done)), running)  # the order of the history does not matter
    original.update([], running)
    assert restarted.suggest(2) == original.suggest(2)


def test_state_is_plain_json() -> None:
    algorithm = bo(BRANIN, 3, n_initial_points="3")
    run(algorithm, branin, 6)
    state = algorithm.dump_state()
    assert json.loads(json.dumps(state)) == state
