"""Grid search: order, exhaustion, the grids of each parameter type, and space validation."""

from __future__ import annotations

import json

import pytest

from suggestion import RUNNING, SUCCEEDED, Parameter, SearchSpace, TrialRecord, get_algorithm
from suggestion.algorithms.grid import GridSearch

TINY = SearchSpace(
    (
        Parameter("opt", "categorical", values=("a", "b")),
        Parameter("n", "int", min=1, max=3),
    )
)
TINY_ORDER = [
    {"opt": "a", "n": "1"},
    {"opt": "a", "n": "2"},
    {"opt": "a", "n": "3"},
    {"opt": "b", "n": "1"},
    {"opt": "b", "n": "2"},
    {"opt": "b", "n": "3"},
]


def grid(space: SearchSpace, **settings: str) -> GridSearch:
    return GridSearch(space, maximize=False, settings=settings)


def problems(space: SearchSpace, max_trial_count: int | None) -> list[tuple[str | None, str]]:
    return GridSearch.validate_space(
        space, settings={}, max_trial_count=max_trial_count, parallel_trial_count=1
    )


def test_registered_as_grid() -> None:
    assert get_algorithm("grid") is GridSearch


def test_points_come_in_order_first_parameter_slowest() -> None:
    algorithm = grid(TINY)
    assert algorithm.suggest(6) == TINY_ORDER


def test_returns_empty_once_every_point_was_suggested() -> None:
    algorithm = grid(TINY)
    assert algorithm.suggest(4) == TINY_ORDER[:4]
    assert algorithm.suggest(4) == TINY_ORDER[4:]
    assert algorithm.suggest(4) == []
    assert algorithm.suggest(1) == []


def test_exhausted_even_when_points_are_still_running() -> None:
    algorithm = grid(TINY)
    suggested = algorithm.suggest(6)
    algorithm.update([], [TrialRecord(f"t-{i}", s, RUNNING) for i, s in enumerate(suggested)])
    assert algorithm.suggest(2) == []


def test_points_in_the_history_are_skipped() -> None:
    algorithm = grid(TINY)
    algorithm.update(
        [TrialRecord("done", {"opt": "a", "n": "2"}, SUCCEEDED, 1.0)],
        [TrialRecord("running", {"opt": "b", "n": "1"}, RUNNING)],
    )
    assert algorithm.suggest(6) == [TINY_ORDER[0], TINY_ORDER[2], TINY_ORDER[4], TINY_ORDER[5]]
    assert algorithm.suggest(1) == []


def test_cursor_survives_a_restart() -> None:
    first = grid(TINY)
    first.suggest(2)
    state = json.loads(json.dumps(first.dump_state()))
    restarted = grid(TINY)
    restarted.load_state(state)
    # A suggestion that never became a trial is not suggested again after the restart.
    assert restarted.suggest(6) == TINY_ORDER[2:]


def test_random_state_is_accepted_and_changes_nothing() -> None:
    assert GridSearch.validate_settings({"random_state": "3"}) == []
    assert grid(TINY, random_state="3").suggest(6) == TINY_ORDER


def test_int_with_step() -> None:
    space = SearchSpace((Parameter("batch", "int", min=16, max=64, step=16),))
    assert [s["batch"] for s in grid(space).suggest(10)] == ["16", "32", "48", "64"]


def test_int_step_that_does_not_reach_max_stops_below_it() -> None:
    space = SearchSpace((Parameter("n", "int", min=1, max=10, step=4),))
    assert [s["n"] for s in grid(space).suggest(10)] == ["1", "5", "9"]


def test_double_with_step_has_no_binary_noise() -> None:
    space = SearchSpace((Parameter("lr", "double", min=0.1, max=0.5, step=0.1),))
    assert [s["lr"] for s in grid(space).suggest(10)] == ["0.1", "0.2", "0.3", "0.4", "0.5"]


def test_discrete_list_keeps_its_order() -> None:
    space = SearchSpace((Parameter("momentum", "discrete", values=("0.9", "0.5", "0.99")),))
    assert [s["momentum"] for s in grid(space).suggest(10)] == ["0.9", "0.5", "0.99"]


def test_mixed_grid_covers_the_product() -> None:
    space = SearchSpace(
        (
            Parameter("lr", "double", min=0.0, max=1.0, step=0.5),
            Parameter("n", "int", min=2, max=6, step=2),
            Parameter("momentum", "discrete", values=("0.5", "0.9")),
        )
    )
    points = grid(space).suggest(100)
    assert len(points) == 3 * 3 * 2
    assert len({tuple(p.values()) for p in points}) == len(points)
    assert points[0] == {"lr": "0", "n": "2", "momentum": "0.5"}
    assert points[-1] == {"lr": "1", "n": "6", "momentum": "0.9"}


def test_double_without_step_is_rejected_naming_the_parameter() -> None:
    space = SearchSpace(
        (
            Parameter("n", "int", min=1, max=3),
            Parameter("lr", "double", min=0.01, max=0.1),
        )
    )
    found = problems(space, None)
    assert len(found) == 1
    name, message = found[0]
    assert name == "lr"
    assert "step" in message


def test_max_trial_count_above_grid_size_is_rejected_with_both_sizes() -> None:
    found = problems(TINY, 7)
    assert len(found) == 1
    name, message = found[0]
    assert name is None
    assert "7" in message and "6" in message


@pytest.mark.parametrize("max_trial_count", [None, 1, 6])
def test_max_trial_count_within_grid_size_is_accepted(max_trial_count: int | None) -> None:
    assert problems(TINY, max_trial_count) == []


def test_unknown_setting_is_rejected_by_name() -> None:
    found = GridSearch.validate_settings({"shuffle": "true"})
    assert [name for name, _ in found] == ["shuffle"]


def test_huge_grid_is_never_listed() -> None:
    from suggestion import SearchSpace
    from suggestion._space import Parameter
    from suggestion.algorithms.grid import GridSearch

    space = SearchSpace((Parameter("n", "int", 0, 1e12), Parameter("m", "int", 0, 1e12)))
    problems = GridSearch.validate_space(
        space, settings={}, max_trial_count=10, parallel_trial_count=1
    )
    assert problems == []
    grid = GridSearch(space, maximize=True)
    assert grid.suggest(3) == [{"n": "0", "m": "0"}, {"n": "0", "m": "1"}, {"n": "0", "m": "2"}]
