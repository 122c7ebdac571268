"""Sobol search (``sobol``): spread, reproducibility, the mapping onto parameters, restarts."""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np
import pytest
from scipy.stats import qmc  # type: ignore[import-untyped]

from suggestion import SUCCEEDED, Parameter, SearchSpace, TrialRecord, get_algorithm
from suggestion.algorithms.random import RandomSearch
from suggestion.algorithms.sobol import SobolSearch

CUBE = SearchSpace(tuple(Parameter(name, "double", min=0.0, max=1.0) for name in "abc"))


def sobol(space: SearchSpace, **settings: str) -> SobolSearch:
    settings.setdefault("random_state", "1")
    return SobolSearch(space, maximize=False, settings=settings)


def as_array(space: SearchSpace, suggestions: list[dict[str, str]]) -> np.ndarray:
    return np.array([[float(s[p.name]) for p in space] for s in suggestions])


def test_registered_as_sobol() -> None:
    assert get_algorithm("sobol") is SobolSearch


def test_only_random_state_is_a_setting() -> None:
    assert SobolSearch.validate_settings({"random_state": "3"}) == []
    assert [n for n, _ in SobolSearch.validate_settings({"random_state": "-3"})] == ["random_state"]
    assert [n for n, _ in SobolSearch.validate_settings({"scramble": "false"})] == ["scramble"]


@pytest.mark.parametrize("seed", ["1", "2", "3"])
def test_points_are_better_spread_than_random_ones(seed: str) -> None:
    points = as_array(CUBE, sobol(CUBE, random_state=seed).suggest(256))
    random = RandomSearch(CUBE, maximize=False, settings={"random_state": seed}).suggest(256)
    # Centered L2 discrepancy: 1e-3 to 5e-3 for random points, about 4e-5 for Sobol's.
    assert qmc.discrepancy(points) < qmc.discrepancy(as_array(CUBE, random)) / 10


def test_same_random_state_same_points_and_different_otherwise() -> None:
    first = sobol(CUBE, random_state="5").suggest(20)
    assert sobol(CUBE, random_state="5").suggest(20) == first
    assert sobol(CUBE, random_state="6").suggest(20) != first


def test_unseeded_instances_differ_but_each_restarts_where_it_was() -> None:
    one, two = SobolSearch(CUBE, maximize=False), SobolSearch(CUBE, maximize=False)
    assert one.suggest(4) != two.suggest(4)
    again = SobolSearch(CUBE, maximize=False)
    again.load_state(json.loads(json.dumps(one.dump_state())))
    assert again.suggest(4) == one.suggest(4)


def test_batches_continue_the_sequence() -> None:
    in_one = sobol(CUBE).suggest(12)
    in_parts = sobol(CUBE)
    assert in_parts.suggest(5) + in_parts.suggest(7) == in_one


def test_restart_skips_ahead_to_the_same_point_quickly() -> None:
    long_run = sobol(CUBE)
    history = [
        TrialRecord(f"t-{i}", s, SUCCEEDED, 0.0) for i, s in enumerate(long_run.suggest(5000))
    ]
    state = json.loads(json.dumps(long_run.dump_state()))
    assert state["drawn"] == 5000
    restarted = sobol(CUBE)
    started = time.perf_counter()
    restarted.load_state(state)
    restarted.update(history, [])
    assert restarted.suggest(3) == long_run.suggest(3)
    assert time.perf_counter() - started < 1.0


def test_log_uniform_fills_each_decade_equally() -> None:
    space = SearchSpace((Parameter("lr", "double", min=1e-4, max=1.0, distribution="logUniform"),))
    values = [float(s["lr"]) for s in sobol(space).suggest(256)]
    decades = [sum(1 for v in values if 10**-k <= v < 10 ** (1 - k)) for k in (4, 3, 2, 1)]
    assert all(abs(n - 64) <= 2 for n in decades), decades


def test_normal_is_centred_and_truncated() -> None:
    space = SearchSpace((Parameter("x", "double", min=0.0, max=6.0, distribution="normal"),))
    values = [float(s["x"]) for s in sobol(space).suggest(512)]
    assert all(0.0 <= v <= 6.0 for v in values)
    assert abs(statistics.median(values) - 3.0) < 0.05
    # sigma = range / 6 = 1: about 68% within one sigma of the centre.
    assert 0.64 < sum(1 for v in values if 2.0 <= v <= 4.0) / len(values) < 0.72


def test_log_normal_is_centred_in_log_space() -> None:
    space = SearchSpace((Parameter("x", "double", min=1.0, max=1e6, distribution="logNormal"),))
    values = [float(s["x"]) for s in sobol(space).suggest(512)]
    assert abs(math.log10(statistics.median(values)) - 3.0) < 0.05


def test_categories_and_int_values_get_equal_shares() -> None:
    space = SearchSpace(
        (
            Parameter("opt", "categorical", values=("a", "b", "c", "d")),
            Parameter("n", "int", min=1, max=4),
            Parameter("m", "int", min=0, max=30, step=10),
        )
    )
    # 64 points over 4 * 4 * 4 cells: a scrambled Sobol net puts one in each.
    points = sobol(space).suggest(64)
    assert len({space.key(p) for p in points}) == 64
    for name in ("opt", "n", "m"):
        counts = {v: sum(1 for p in points if p[name] == v) for v in space[name].grid()}
        assert set(counts.values()) == {16}, (name, counts)


def test_tried_points_are_skipped_and_the_space_is_covered() -> None:
    space = SearchSpace(
        (
            Parameter("opt", "categorical", values=("a", "b")),
            Parameter("n", "int", min=1, max=3),
        )
    )
    algorithm = sobol(space)
    algorithm.update([TrialRecord("old", {"opt": "a", "n": "2"}, SUCCEEDED, 1.0)], [])
    points = [space.key(p) for p in algorithm.suggest(10)]
    assert len(points) == 5
    assert len(set(points)) == 5
    assert ("a", "2") not in points
    assert algorithm.suggest(1) == []
