"""CMA-ES (``cmaes``): space and settings checks, convergence, restarts, generations."""

from __future__ import annotations

import itertools
import json
import math
import statistics
from collections.abc import Callable, Mapping

import pytest

from suggestion import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    Parameter,
    SearchSpace,
    TrialRecord,
    get_algorithm,
)
from suggestion.algorithms.cmaes import CMAESSearch

PLANE = SearchSpace(
    (
        Parameter("x", "double", min=-2.0, max=2.0),
        Parameter("y", "double", min=-2.0, max=2.0),
    )
)
# 4 + floor(3 ln 2): CMA-ES's default population in 2 dimensions.
POPSIZE = 6
# Trial names stay unique across calls of drive().
NUMBERS = itertools.count()


def sphere(assignments: Mapping[str, str]) -> float:
    return (float(assignments["x"]) - 0.3) ** 2 + (float(assignments["y"]) + 0.2) ** 2


def build(space: SearchSpace = PLANE, *, maximize: bool = False, **settings: str) -> CMAESSearch:
    settings.setdefault("random_state", "1")
    return CMAESSearch(space, maximize=maximize, settings=settings)


def drive(
    algorithm: CMAESSearch,
    objective: Callable[[Mapping[str, str]], float | None],
    trials: int,
    batch: int = 1,
) -> list[TrialRecord]:
    """Suggest, run and finish ``trials`` trials, ``batch`` at a time; the history."""
    history: list[TrialRecord] = []
    while len(history) < trials:
        suggestions = algorithm.suggest(batch)
        assert suggestions
        running = [TrialRecord(f"t-{next(NUMBERS)}", s, RUNNING) for s in suggestions]
        algorithm.update([], running)
        done = []
        for trial in running:
            value = objective(trial.assignments)
            state = FAILED if value is None else SUCCEEDED
            done.append(TrialRecord(trial.name, trial.assignments, state, value))
        algorithm.update(done, [])
        history.extend(done)
    return history


def space_problems(space: SearchSpace) -> list[tuple[str | None, str]]:
    return CMAESSearch.validate_space(
        space, settings={}, max_trial_count=None, parallel_trial_count=None
    )


# --- registry, space and settings -------------------------------------------------------------


def test_registered_as_cmaes() -> None:
    assert get_algorithm("cmaes") is CMAESSearch


@pytest.mark.parametrize(
    ("parameters", "count"),
    [
        ((Parameter("x", "double", min=0.0, max=1.0),), 1),
        (
            (
                Parameter("n", "int", min=1, max=5),
                Parameter("opt", "categorical", values=("a", "b")),
                Parameter("m", "discrete", values=("1", "2")),
            ),
            1,
        ),
        ((Parameter("opt", "categorical", values=("a", "b")),), 0),
    ],
)
def test_refuses_fewer_than_two_numeric_parameters(
    parameters: tuple[Parameter, ...], count: int
) -> None:
    problems = space_problems(SearchSpace(parameters))
    assert problems == [(None, f"cmaes needs at least 2 double or int parameters, got {count}")]


def test_accepts_two_numeric_parameters_among_others() -> None:
    space = SearchSpace(
        (
            Parameter("x", "double", min=0.0, max=1.0),
            Parameter("n", "int", min=1, max=5),
            Parameter("opt", "categorical", values=("a", "b")),
        )
    )
    assert space_problems(space) == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("restart_strategy", "lpop"),
        ("restart_strategy", "IPOP"),
        ("sigma", "0"),
        ("sigma", "-0.5"),
        ("sigma", "wide"),
        ("random_state", "-1"),
        ("popsize", "10"),
    ],
)
def test_bad_settings_are_rejected_by_name(setting: str, value: str) -> None:
    assert [name for name, _ in CMAESSearch.validate_settings({setting: value})] == [setting]


@pytest.mark.parametrize("strategy", ["ipop", "bipop", "none", "None"])
def test_katib_restart_strategies_are_accepted(strategy: str) -> None:
    assert CMAESSearch.validate_settings({"restart_strategy": strategy, "sigma": "0.3"}) == []


# --- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True])
def test_improves_on_a_sphere_over_generations(maximize: bool) -> None:
    sign = -1.0 if maximize else 1.0
    algorithm = build(maximize=maximize)
    history = drive(algorithm, lambda a: sign * sphere(a), 20 * POPSIZE, batch=POPSIZE)
    first = statistics.median(sphere(t.assignments) for t in history[:POPSIZE])
    last = statistics.median(sphere(t.assignments) for t in history[-POPSIZE:])
    assert algorithm.generation == 20
    assert last < first / 1000, (first, last)


def test_log_scale_parameters_are_searched_in_log_space() -> None:
    space = SearchSpace(
        (
            Parameter("lr", "double", min=1e-5, max=1.0, distribution="logUniform"),
            Parameter("x", "double", min=0.0, max=1.0),
        )
    )
    # The first generation is centred on the middle of the (log) range: 10^-2.5, not 0.5.
    first = [float(s["lr"]) for s in build(space).suggest(POPSIZE)]
    assert 10**-4 < statistics.median(first) < 10**-1, first


def test_categorical_parameters_are_drawn_at_random() -> None:
    space = SearchSpace(
        (*PLANE.parameters, Parameter("opt", "categorical", values=("a", "b", "c")))
    )
    algorithm = build(space)
    seen = {s["opt"] for s in algorithm.suggest(30)}
    assert seen == {"a", "b", "c"}


def test_sigma_sets_the_initial_spread() -> None:
    def spread(sigma: str) -> float:
        points = build(sigma=sigma).suggest(30)
        return statistics.pstdev(float(s["x"]) for s in points)

    # On the unit cube; the range is 4 wide.
    assert spread("0.02") < 0.2 < spread("0.3")


# --- restarts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ipop", "bipop"])
def test_restarts_once_converged(strategy: str) -> None:
    algorithm = build(restart_strategy=strategy)
    drive(algorithm, sphere, 1500)
    assert algorithm.restarts >= 1
    if strategy == "ipop":
        assert algorithm.population_size == POPSIZE * 2**algorithm.restarts
    state = json.loads(json.dumps(algorithm.dump_state()))
    assert state["restarts"] == algorithm.restarts


def test_never_restarts_without_a_strategy() -> None:
    algorithm = build()
    history = drive(algorithm, sphere, 1500)
    assert algorithm.restarts == 0
    assert algorithm.population_size == POPSIZE
    # Once converged, new points are random unseen ones rather than repeats.
    assert len({PLANE.key(t.assignments) for t in history}) == len(history)


# --- generations and the history --------------------------------------------------------------


def test_failures_are_told_as_the_worst_value() -> None:
    algorithm = build()
    suggestions = algorithm.suggest(POPSIZE)
    done = [
        TrialRecord(f"t-{i}", s, SUCCEEDED if i == 0 else FAILED, 1.0 if i == 0 else None)
        for i, s in enumerate(suggestions)
    ]
    algorithm.update(done, [])
    assert algorithm.generation == 1


def test_a_generation_of_failures_only_is_refilled_not_told() -> None:
    algorithm = build()
    drive(algorithm, lambda a: None, 2 * POPSIZE, batch=POPSIZE)
    assert algorithm.generation == 0
    drive(algorithm, sphere, POPSIZE, batch=POPSIZE)
    assert algorithm.generation == 1


def test_late_trials_of_a_told_generation_are_ignored() -> None:
    algorithm = build()
    drive(algorithm, sphere, POPSIZE + 4, batch=POPSIZE + 4)
    assert algorithm.generation == 1
    assert algorithm.dump_state()["solutions"] == []


def test_refed_history_is_not_told_twice() -> None:
    original = build()
    history = drive(original, sphere, POPSIZE + 3, batch=3)  # one generation and a half
    state = json.loads(json.dumps(original.dump_state()))
    assert original.generation == 1

    restarted = build()
    restarted.load_state(state)
    restarted.update(history, [])
    restarted.update(history, [])
    assert restarted.generation == 1
    suggestions = restarted.suggest(3)
    assert suggestions == original.suggest(3)
    rest = [TrialRecord(f"r-{i}", s, SUCCEEDED, sphere(s)) for i, s in enumerate(suggestions)]
    restarted.update(rest, [])
    original.update(rest, [])
    assert restarted.generation == original.generation == 2
    assert restarted.suggest(2) == original.suggest(2)


def test_state_round_trips_through_json_mid_generation() -> None:
    algorithm = build(restart_strategy="bipop")
    drive(algorithm, sphere, 40, batch=4)
    pending = algorithm.suggest(2)
    state = json.loads(json.dumps(algorithm.dump_state()))
    assert len(state["pending"]) == len(algorithm.dump_state()["pending"])
    assert {tuple(key) for key, _ in state["pending"]} >= {PLANE.key(s) for s in pending}
    assert math.isfinite(state["worst"])
