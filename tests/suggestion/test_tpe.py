"""TPE (``tpe``, ``multivariate-tpe``): settings, learning, restarts and the optuna bridge."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping

import optuna
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
from suggestion.algorithms.multivariate_tpe import MultivariateTPESearch
from suggestion.algorithms.random import RandomSearch
from suggestion.algorithms.tpe import (
    GammaSplit,
    SharedWorkTPESampler,
    TPESearch,
    quiet_optuna,
)

TPE_NAMES = ["tpe", "multivariate-tpe"]

PLANE = SearchSpace(
    (
        Parameter("x", "double", min=-5.0, max=5.0),
        Parameter("y", "double", min=-5.0, max=5.0),
    )
)
MIXED = SearchSpace(
    (
        Parameter("x", "double", min=-2.0, max=2.0),
        Parameter("lr", "double", min=1e-4, max=1e-1, distribution="logUniform"),
        Parameter("n", "int", min=1, max=64),
        Parameter("batch", "int", min=16, max=256, step=16),
        Parameter("opt", "categorical", values=("sgd", "adam", "ftrl")),
    )
)


def quadratic(assignments: Mapping[str, str]) -> float:
    return (float(assignments["x"]) - 1.0) ** 2 + (float(assignments["y"]) + 0.5) ** 2


def mixed_objective(assignments: Mapping[str, str]) -> float:
    return (
        (float(assignments["x"]) - 0.5) ** 2
        + (math.log10(float(assignments["lr"])) + 2) ** 2
        + (int(assignments["n"]) - 20) ** 2 / 100
        + ("sgd", "adam", "ftrl").index(assignments["opt"]) * 0.3
    )


def build(
    name: str, space: SearchSpace, *, maximize: bool = False, parallel: int = 1, **settings: str
) -> Algorithm:
    return get_algorithm(name)(
        space, maximize=maximize, settings=settings, parallel_trial_count=parallel
    )


def run(
    algorithm: Algorithm,
    objective: Callable[[Mapping[str, str]], float],
    trials: int,
    batch: int = 1,
) -> list[TrialRecord]:
    """Suggest, run and finish ``trials`` trials, ``batch`` at a time; the history."""
    history: list[TrialRecord] = []
    while len(history) < trials:
        suggestions = algorithm.suggest(batch)
        running = [
            TrialRecord(f"t-{len(history) + i}", s, RUNNING) for i, s in enumerate(suggestions)
        ]
        algorithm.update([], running)
        done = [
            TrialRecord(t.name, t.assignments, SUCCEEDED, objective(t.assignments)) for t in running
        ]
        algorithm.update(done, [])
        history.extend(done)
    return history


def problems(name: str, **settings: str) -> list[tuple[str, str]]:
    return get_algorithm(name).validate_settings(settings)


# --- registry and settings ------------------------------------------------------------------


def test_registered_names() -> None:
    assert get_algorithm("tpe") is TPESearch
    assert get_algorithm("multivariate-tpe") is MultivariateTPESearch


def test_katib_defaults() -> None:
    # gamma is unset as in Katib (which passes none to hyperopt): optuna's split applies.
    assert TPESearch.resolve_settings({}) == {
        "prior_weight": "1.0",
        "n_EI_candidates": "24",
    }
    assert MultivariateTPESearch.resolve_settings({}) == {
        "n_startup_trials": "10",
        "n_ei_candidates": "24",
    }


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("gamma", "0", "(0, 1)"),
        ("gamma", "1", "(0, 1)"),
        ("gamma", "1.5", "(0, 1)"),
        ("gamma", "a quarter", "number"),
        ("prior_weight", "0", "> 0"),
        ("prior_weight", "-1", "> 0"),
        ("n_EI_candidates", "0", ">= 1"),
        ("n_EI_candidates", "2.5", "integer"),
        ("random_state", "-1", ">= 0"),
    ],
)
def test_tpe_rejects_bad_values_by_name(setting: str, value: str, message: str) -> None:
    found = problems("tpe", **{setting: value})
    assert len(found) == 1
    assert found[0][0] == setting
    assert message in found[0][1]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("n_startup_trials", "-1"),
        ("n_startup_trials", "ten"),
        ("n_ei_candidates", "0"),
        ("random_state", "-3"),
    ],
)
def test_multivariate_tpe_rejects_bad_values_by_name(setting: str, value: str) -> None:
    assert [name for name, _ in problems("multivariate-tpe", **{setting: value})] == [setting]


def test_each_flavour_rejects_the_other_ones_settings() -> None:
    # Katib spells them differently: hyperopt's n_EI_candidates vs optuna's n_ei_candidates.
    assert [n for n, _ in problems("tpe", n_ei_candidates="24")] == ["n_ei_candidates"]
    assert [n for n, _ in problems("tpe", n_startup_trials="5")] == ["n_startup_trials"]
    assert [n for n, _ in problems("multivariate-tpe", gamma="0.2")] == ["gamma"]
    assert [n for n, _ in problems("multivariate-tpe", n_EI_candidates="24")] == ["n_EI_candidates"]
    message = problems("multivariate-tpe", prior_weight="2")[0][1]
    assert "unknown setting for multivariate-tpe" in message


def test_good_values_are_accepted() -> None:
    assert problems("tpe", gamma="0.1", prior_weight="0.5", n_EI_candidates="1") == []
    assert problems("tpe", random_state="0") == []
    assert problems("multivariate-tpe", n_startup_trials="0", n_ei_candidates="48") == []


@pytest.mark.parametrize(
    ("n", "good"), [(0, 0), (1, 1), (4, 1), (5, 2), (40, 10), (100, 25), (10**4, 25)]
)
def test_gamma_is_the_fraction_of_good_trials_up_to_25(n: int, good: int) -> None:
    assert GammaSplit(0.25)(n) == good


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 100, 249, 250, 251, 10**4])
def test_unset_gamma_is_optunas_default_split(n: int) -> None:
    from optuna.samplers._tpe.sampler import default_gamma

    assert GammaSplit()(n) == default_gamma(n)


# --- learning ---------------------------------------------------------------------------------


def late_median(name: str, seed: int) -> float:
    """Median objective of trials 41-60 of one run on the quadratic."""
    algorithm = build(name, PLANE, random_state=str(seed))
    history = run(algorithm, quadratic, 60)
    return statistics.median(t.objective or 0.0 for t in history[40:])


@pytest.mark.parametrize("name", TPE_NAMES)
def test_concentrates_near_the_optimum_better_than_random(name: str) -> None:
    seeds = range(5)
    tpe = statistics.median(late_median(name, seed) for seed in seeds)
    random = statistics.median(late_median("random", seed) for seed in seeds)
    # Random search's late trials are as bad as its first ones (median about 15 here).
    assert tpe < random / 4, (tpe, random)


@pytest.mark.parametrize("name", TPE_NAMES)
def test_learns_from_trials_it_never_suggested_in_either_direction(name: str) -> None:
    # The history of another run (or of before a restart): added to the study, not told.
    seeder = RandomSearch(PLANE, maximize=False, settings={"random_state": "7"})
    points = seeder.suggest(40)

    def suggestions(maximize: bool) -> list[dict[str, str]]:
        sign = -1.0 if maximize else 1.0
        history = [
            TrialRecord(f"old-{i}", s, SUCCEEDED, sign * quadratic(s)) for i, s in enumerate(points)
        ]
        algorithm = build(name, PLANE, maximize=maximize, random_state="3")
        algorithm.update(history, [])
        return algorithm.suggest(8)

    minimized = suggestions(maximize=False)
    assert suggestions(maximize=True) == minimized
    before = statistics.median(quadratic(s) for s in points)
    assert statistics.median(quadratic(s) for s in minimized) < before / 3


def test_failed_trials_are_not_taken_as_good() -> None:
    # Failures clustered at (2, -2); successes all over, best near (-3, 3).
    def distance(assignments: Mapping[str, str], x: float, y: float) -> float:
        return math.hypot(float(assignments["x"]) - x, float(assignments["y"]) - y)

    spread = RandomSearch(PLANE, maximize=False, settings={"random_state": "2"}).suggest(20)
    history = [
        TrialRecord(f"s-{i}", s, SUCCEEDED, distance(s, -3.0, 3.0)) for i, s in enumerate(spread)
    ]
    history += [
        TrialRecord(f"f-{i}", {"x": str(2.0 + i / 50), "y": str(-2.0 - i / 50)}, FAILED)
        for i in range(10)
    ]
    algorithm = build("tpe", PLANE, random_state="1")
    algorithm.update(history, [])
    suggestions = algorithm.suggest(10)
    to_best = statistics.median(distance(s, -3.0, 3.0) for s in suggestions)
    to_failures = statistics.median(distance(s, 2.0, -2.0) for s in suggestions)
    assert to_best < to_failures / 2, (to_best, to_failures)


# --- restarts and the optuna bridge -----------------------------------------------------------


@pytest.mark.parametrize("name", TPE_NAMES)
def test_restart_agrees_once_the_model_is_in_use(name: str) -> None:
    # Past the random start-up trials, on continuous values that are rounded when formatted:
    # the restarted study must hold exactly the values the original modelled.
    original = build(name, MIXED, parallel=3, random_state="11")
    history = run(original, mixed_objective, 24, batch=3)
    running = original.suggest(3)
    active = [TrialRecord(f"r-{i}", s, RUNNING) for i, s in enumerate(running)]
    original.update([], active)
    state = json.loads(json.dumps(original.dump_state()))

    restarted = build(name, MIXED, parallel=3, random_state="11")
    restarted.load_state(state)
    restarted.update(history, active)
    for _ in range(3):
        mine, theirs = restarted.suggest(2), original.suggest(2)
        assert mine == theirs
        done = [TrialRecord(f"d-{s['x']}", s, SUCCEEDED, mixed_objective(s)) for s in mine]
        restarted.update(done, [])
        original.update(done, [])


@pytest.mark.parametrize("multivariate", [False, True])
def test_shared_work_sampler_draws_what_optunas_draws(multivariate: bool) -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -3, 3)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        n = trial.suggest_int("n", 1, 20)
        opt = trial.suggest_categorical("opt", ["a", "b", "c"])
        return x**2 + math.log10(lr) ** 2 + abs(n - 7) + (opt == "c")

    def params(sampler: optuna.samplers.BaseSampler) -> list[dict[str, object]]:
        with quiet_optuna():
            study = optuna.create_study(sampler=sampler)
            # Two at a time, so that the constant liar sees running trials.
            for _ in range(20):
                trials = [study.ask() for _ in range(2)]
                for trial in trials:
                    study.tell(trial, objective(trial))
        return [t.params for t in study.trials]

    def kwargs() -> dict[str, object]:
        return {
            "seed": 5,
            "n_startup_trials": 5,
            "constant_liar": True,
            "multivariate": multivariate,
            "gamma": GammaSplit(0.25),
        }

    with quiet_optuna():
        ours, stock = SharedWorkTPESampler(**kwargs()), optuna.samplers.TPESampler(**kwargs())
    assert params(ours) == params(stock)


def test_leaves_optuna_logging_as_it_found_it() -> None:
    before = optuna.logging.get_verbosity()
    algorithm = build("tpe", PLANE, random_state="1")
    run(algorithm, quadratic, 5)
    assert optuna.logging.get_verbosity() == before


def test_a_value_outside_the_space_is_remembered_but_not_modelled() -> None:
    algorithm = build("tpe", PLANE, random_state="1")
    outside = TrialRecord("old", {"x": "9", "y": "0"}, SUCCEEDED, 0.0)
    algorithm.update([outside], [])
    for assignments in algorithm.suggest(5):
        assert PLANE["x"].contains(assignments["x"])
