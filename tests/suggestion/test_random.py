"""Random search: the distributions it samples, its settings and its duplicate avoidance."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from suggestion import RUNNING, Parameter, SearchSpace, TrialRecord, get_algorithm
from suggestion.algorithms.random import RandomSearch, sample_parameter

DRAWS = 4000


def draws(param: Parameter, count: int = DRAWS, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [sample_parameter(param, rng) for _ in range(count)]


def numbers(param: Parameter, count: int = DRAWS) -> list[float]:
    values = [float(text) for text in draws(param, count)]
    assert all(param.low <= v <= param.high for v in values), "a draw fell outside the bounds"
    return values


def test_registered_as_random() -> None:
    assert get_algorithm("random") is RandomSearch


def test_uniform_double_spreads_over_the_range() -> None:
    values = numbers(Parameter("x", "double", min=-2.0, max=6.0))
    assert 1.6 < statistics.median(values) < 2.4
    assert min(values) < -1.9 and max(values) > 5.9


def test_log_uniform_spreads_in_log_space() -> None:
    values = numbers(Parameter("lr", "double", min=1e-4, max=1.0, distribution="logUniform"))
    # Uniform in log10 over [-4, 0]: the median is 1e-2 (a plain uniform draw's would be 0.5),
    # and each decade holds about a quarter of the draws.
    assert 10**-2.3 < statistics.median(values) < 10**-1.7
    decades = [sum(1 for v in values if 10**-k <= v < 10 ** (1 - k)) for k in (4, 3, 2, 1)]
    assert all(0.2 * DRAWS < n < 0.3 * DRAWS for n in decades), decades


def test_normal_concentrates_in_the_middle() -> None:
    values = numbers(Parameter("x", "double", min=0.0, max=1.0, distribution="normal"))
    middle_third = sum(1 for v in values if 1 / 3 <= v <= 2 / 3) / len(values)
    # sigma is a sixth of the range: about 68% within the middle third (uniform: 33%).
    assert middle_third > 0.55
    assert 0.45 < statistics.median(values) < 0.55


def test_log_normal_concentrates_in_the_middle_of_log_space() -> None:
    values = numbers(Parameter("x", "double", min=1.0, max=1e4, distribution="logNormal"))
    middle_third = sum(1 for v in values if 10 ** (4 / 3) <= v <= 10 ** (8 / 3)) / len(values)
    assert middle_third > 0.55
    assert 10**1.8 < statistics.median(values) < 10**2.2


@pytest.mark.parametrize("distribution", ["uniform", "logUniform", "normal", "logNormal"])
def test_int_draws_are_integral_and_inside_bounds(distribution: str) -> None:
    param = Parameter("n", "int", min=1, max=50, distribution=distribution)
    texts = draws(param, 1000)
    assert all(text.lstrip("-").isdigit() for text in texts)
    assert all(1 <= int(text) <= 50 for text in texts)


def test_int_uniform_hits_both_ends_equally() -> None:
    texts = draws(Parameter("n", "int", min=1, max=5), 5000)
    counts = {value: texts.count(value) for value in ("1", "2", "3", "4", "5")}
    assert sum(counts.values()) == 5000
    assert all(800 < n < 1200 for n in counts.values()), counts


@pytest.mark.parametrize("distribution", ["uniform", "logUniform", "normal", "logNormal"])
def test_stepped_double_stays_on_the_grid(distribution: str) -> None:
    param = Parameter("x", "double", min=0.5, max=2.5, step=0.25, distribution=distribution)
    allowed = {param.format(0.5 + 0.25 * k) for k in range(9)}
    texts = set(draws(param, 2000))
    assert texts <= allowed
    assert {"0.5", "2.5"} & texts  # the bounds are reachable


def test_stepped_int_stays_on_the_grid() -> None:
    texts = set(draws(Parameter("batch", "int", min=16, max=128, step=16), 2000))
    assert texts == {str(v) for v in range(16, 129, 16)}


def test_categorical_and_discrete_draw_every_value() -> None:
    assert set(draws(Parameter("c", "categorical", values=("x", "y", "z")), 300)) == {"x", "y", "z"}
    discrete = Parameter("d", "discrete", values=("0.1", "1", "10"))
    assert set(draws(discrete, 300)) == {"0.1", "1", "10"}


def test_different_random_states_give_different_suggestions() -> None:
    space = SearchSpace((Parameter("x", "double", min=0.0, max=1.0),))
    first = RandomSearch(space, maximize=False, settings={"random_state": "1"}).suggest(5)
    second = RandomSearch(space, maximize=False, settings={"random_state": "2"}).suggest(5)
    again = RandomSearch(space, maximize=False, settings={"random_state": "1"}).suggest(5)
    assert first != second
    assert first == again


def test_no_random_state_is_not_reproducible() -> None:
    space = SearchSpace((Parameter("x", "double", min=0.0, max=1.0),))
    assert RandomSearch(space, maximize=False).suggest(3) != (
        RandomSearch(space, maximize=False).suggest(3)
    )


def test_whole_finite_space_is_covered_without_repeats() -> None:
    space = SearchSpace(
        (
            Parameter("a", "int", min=1, max=10),
            Parameter("b", "int", min=1, max=10),
        )
    )
    for seed in range(5):
        algorithm = RandomSearch(space, maximize=False, settings={"random_state": str(seed)})
        points = [tuple(algorithm.suggest(1)[0].values()) for _ in range(100)]
        assert len(set(points)) == 100, f"seed {seed}: {100 - len(set(points))} repeats"


def test_last_free_point_is_found_among_active_trials() -> None:
    space = SearchSpace((Parameter("n", "int", min=1, max=300),))
    algorithm = RandomSearch(space, maximize=False, settings={"random_state": "0"})
    active = [TrialRecord(f"t-{n}", {"n": str(n)}, RUNNING) for n in range(1, 301) if n != 123]
    algorithm.update([], active)
    assert algorithm.suggest(1) == [{"n": "123"}]


def test_an_exhausted_space_still_answers() -> None:
    space = SearchSpace((Parameter("c", "categorical", values=("x", "y")),))
    algorithm = RandomSearch(space, maximize=False, settings={"random_state": "0"})
    assert sorted(s["c"] for s in algorithm.suggest(2)) == ["x", "y"]
    # Random search repeats a point rather than end the experiment early.
    assert [s["c"] in ("x", "y") for s in algorithm.suggest(2)] == [True, True]


def test_unknown_setting_is_rejected_by_name() -> None:
    found = RandomSearch.validate_settings({"seed": "1"})
    assert len(found) == 1
    name, message = found[0]
    assert name == "seed"
    assert "random_state" in message  # says what is known


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", ""])
def test_bad_random_state_is_rejected_by_name(value: str) -> None:
    found = RandomSearch.validate_settings({"random_state": value})
    assert [name for name, _ in found] == ["random_state"]
    assert found[0][1]


@pytest.mark.parametrize("value", ["0", "42", "4294967295"])
def test_good_random_state_is_accepted(value: str) -> None:
    assert RandomSearch.validate_settings({"random_state": value}) == []


def test_log_draws_reach_near_both_bounds() -> None:
    values = numbers(Parameter("lr", "double", min=1e-6, max=1e-2, distribution="logUniform"))
    assert math.log10(min(values)) < -5.9
    assert math.log10(max(values)) > -2.1
