"""The algorithm contract (``suggestion/_base.py``), checked on every registered algorithm.

Each test runs over ``algorithm_names()`` times a few search spaces, so an algorithm added to
the registry later is covered without touching this file. An algorithm that declares through
``validate_space`` that it cannot handle a space is skipped for that space only.

Optional hooks on an algorithm class, read only here:

- ``example_settings(space) -> dict | None``: the settings the tests build it with (hyperband
  needs a resource parameter); None means it cannot run on that space, which is then skipped.
- ``total_trials`` (on the instance): how many trials a finite schedule hands out in all
  (hyperband); tests that ask for more expect exactly that many.
- ``continues_trials = True``: a repeated assignment is a new trial, not a duplicate (PBT
  continues or re-runs earlier trials; DARTS runs its one search again); the duplicate
  checks skip it.

Neural architecture search algorithms (``Algorithm.nas``) take no parameters but a
``nasConfig`` (:attr:`SearchSpace.nas`) and assign the trial parameters Katib's NAS trials
read (their ``parameter_names``); section (9) runs the same rules over NAS spaces.

A small controller stand-in (:class:`Driver`) plays the call order the contract states:
suggest, report the new trials as active, report them finished, suggest again. An empty
answer while trials run means "nothing now": the driver finishes them and asks again.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from katib.spec import load_experiments
from suggestion import (
    EARLY_STOPPED,
    FAILED,
    KILLED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    Algorithm,
    NasOperation,
    NasSpace,
    Parameter,
    SearchSpace,
    TrialRecord,
    algorithm_names,
    get_algorithm,
    grid_size,
)
from suggestion import NAS_ALGORITHMS as SUGGESTION_NAS_ALGORITHMS

SEED = 20240611

MIXED = SearchSpace(
    (
        Parameter("x", "double", min=-2.5, max=3.5),
        Parameter("lr", "double", min=1e-4, max=1e-1, distribution="logUniform"),
        Parameter("layers", "int", min=1, max=8),
        Parameter("batch", "int", min=16, max=128, step=16),
        Parameter("dropout", "double", min=0.0, max=0.5, step=0.05),
        Parameter("momentum", "discrete", values=("0.5", "0.9", "0.99")),
        Parameter("optimizer", "categorical", values=("sgd", "adam", "ftrl")),
    )
)
DISTRIBUTIONS = SearchSpace(
    (
        Parameter("a", "double", min=-1.0, max=1.0, distribution="normal"),
        Parameter("b", "double", min=1e-3, max=10.0, distribution="logNormal"),
        Parameter("c", "int", min=0, max=20, distribution="normal"),
        Parameter("d", "int", min=1, max=1000, distribution="logNormal"),
        Parameter("e", "double", min=0.0, max=1.0, step=0.1, distribution="normal"),
    )
)
# Every parameter on a finite grid (5 * 3 * 3 * 2 * 3 = 270 points), so grid takes part.
FINITE = SearchSpace(
    (
        Parameter("x", "double", min=0.0, max=1.0, step=0.25),
        Parameter("n", "int", min=1, max=3),
        Parameter("m", "int", min=0, max=20, step=10),
        Parameter("opt", "categorical", values=("a", "b")),
        Parameter("scale", "discrete", values=("1", "10", "100")),
    )
)
# 2 * 3 = 6 points.
TINY = SearchSpace(
    (
        Parameter("opt", "categorical", values=("a", "b")),
        Parameter("n", "int", min=1, max=3),
    )
)
TINY_SIZE = 6
# 40 * 5 = 200 points: once most are tried, random draws keep hitting tried ones.
SMALL = SearchSpace(
    (
        Parameter("n", "int", min=1, max=40),
        Parameter("act", "categorical", values=("relu", "tanh", "gelu", "silu", "elu")),
    )
)

SPACES = {
    "mixed": MIXED,
    "distributions": DISTRIBUTIONS,
    "finite": FINITE,
    "small": SMALL,
    "tiny": TINY,
}
# Suggestions each contract test asks for at most; passed as maxTrialCount.
BUDGET = {"mixed": 30, "distributions": 30, "finite": 30, "small": 200, "tiny": TINY_SIZE}


#: Algorithms that search parameters; neural architecture search ones have section (9).
HP_ALGORITHMS = [n for n in algorithm_names() if not get_algorithm(n).nas]
NAS_ALGORITHMS = [n for n in algorithm_names() if get_algorithm(n).nas]


@pytest.fixture(params=HP_ALGORITHMS)
def algorithm_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(SPACES))
def space_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def settings_for(
    cls: type[Algorithm], seed: int | None, space: SearchSpace
) -> dict[str, str] | None:
    """The algorithm's example settings for ``space`` (None: it can't run there) plus a seed."""
    settings: dict[str, str] = {}
    example = getattr(cls, "example_settings", None)
    if example is not None:
        found = example(space)
        if found is None:
            return None
        settings.update(found)
    if seed is not None and "random_state" in cls.settings_spec:
        settings["random_state"] = str(seed)
    return settings


def continues_trials(algorithm: Algorithm) -> bool:
    return bool(getattr(algorithm, "continues_trials", False))


def total_trials(algorithm: Algorithm) -> int | None:
    total = getattr(algorithm, "total_trials", None)
    return None if total is None else int(total)


def build(
    name: str,
    space_name: str,
    *,
    seed: int | None = SEED,
    maximize: bool = False,
) -> Algorithm:
    """The algorithm as the controller builds it; skips a space the algorithm refuses."""
    cls = get_algorithm(name)
    space = SPACES[space_name]
    settings = settings_for(cls, seed, space)
    if settings is None:
        pytest.skip(f"{name} has no example settings for the {space_name} space")
    assert cls.validate_settings(settings) == []
    problems = cls.validate_space(
        space,
        settings=settings,
        max_trial_count=BUDGET[space_name],
        parallel_trial_count=3,
    )
    if problems:
        pytest.skip(f"{name} does not handle the {space_name} space: {problems}")
    return cls(
        space,
        maximize=maximize,
        settings=settings,
        max_trial_count=BUDGET[space_name],
        parallel_trial_count=3,
    )


def objective(space: SearchSpace, assignments: Mapping[str, str]) -> float:
    """A deterministic objective of the assignments, so that model-based algorithms learn."""
    total = 0.0
    for param in space:
        text = assignments[param.name]
        if param.is_numeric:
            number = float(text)
            total += math.log(number) if param.distribution.startswith("log") else number
        else:
            total += param.values.index(text)
    return total


def round_trip(state: Mapping[str, Any]) -> dict[str, Any]:
    """The state as the controller stores it: through JSON."""
    loaded = json.loads(json.dumps(state))
    assert isinstance(loaded, dict)
    return loaded


class Driver:
    """Plays the controller: suggest, report active, report finished; keeps the history."""

    def __init__(self, algorithm: Algorithm, prefix: str = "t") -> None:
        self.algorithm = algorithm
        self.space = algorithm.space
        self.prefix = prefix
        self.objective = objective
        self.completed: list[TrialRecord] = []
        self.suggested: list[dict[str, str]] = []
        self._count = 0

    def name(self) -> str:
        self._count += 1
        return f"{self.prefix}-{self._count}"

    def suggest(self, count: int) -> list[dict[str, str]]:
        suggestions = self.algorithm.suggest(count)
        assert isinstance(suggestions, list)
        assert len(suggestions) <= count
        round_trip(self.algorithm.dump_state())  # stored after every suggest
        for assignments in suggestions:  # as the controller labels each new trial
            labels = self.algorithm.labels_for(assignments)
            assert all(isinstance(v, str) for v in labels.values()), labels
        self.suggested.extend(suggestions)
        return suggestions

    def round(self, count: int, states: Sequence[str] = (SUCCEEDED,)) -> list[dict[str, str]]:
        """Suggest ``count``, run them (active), finish them with ``states`` in turn."""
        suggestions = self.suggest(count)
        active = [TrialRecord(self.name(), s, RUNNING) for s in suggestions]
        self.algorithm.update([], active)
        finished: list[TrialRecord] = []
        for i, trial in enumerate(active):
            state = states[i % len(states)]
            value = (
                None
                if state in (FAILED, METRICS_UNAVAILABLE, KILLED)
                else (self.objective(self.space, trial.assignments))
            )
            finished.append(TrialRecord(trial.name, trial.assignments, state, value))
        self.completed.extend(finished)
        self.algorithm.update(finished, [])
        return suggestions


INTEGER = re.compile(r"-?[0-9]+")


def assert_in_space(space: SearchSpace, assignments: Mapping[str, str]) -> None:
    assert set(assignments) == set(space.names), assignments
    for param in space:
        text = assignments[param.name]
        assert isinstance(text, str), (param.name, text)
        assert param.contains(text), f"{param.name}={text!r} is outside its feasible space"
        if param.type == "int":
            assert INTEGER.fullmatch(text), f"{param.name}={text!r} is not an integral string"
        if param.is_numeric and param.step:
            k = (float(text) - param.low) / param.step
            assert abs(k - round(k)) < 1e-6, f"{param.name}={text!r} is off the step grid"
        if not param.is_numeric:
            assert text in param.values


def keys(space: SearchSpace, suggestions: Sequence[Mapping[str, str]]) -> list[tuple[str, ...]]:
    return [space.key(s) for s in suggestions]


# --- the test setup itself -------------------------------------------------------------------


def test_builtin_algorithms_are_covered() -> None:
    assert {"random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol"} <= set(algorithm_names())


@pytest.mark.parametrize(
    ("name", "space_name", "accepted"),
    [
        ("random", "mixed", True),
        ("random", "distributions", True),
        ("random", "finite", True),
        ("random", "small", True),
        ("random", "tiny", True),
        ("grid", "mixed", False),  # a double without step
        ("grid", "distributions", False),
        ("grid", "finite", True),
        ("grid", "small", True),
        ("grid", "tiny", True),
        ("tpe", "mixed", True),
        ("tpe", "distributions", True),
        ("tpe", "finite", True),
        ("tpe", "small", True),
        ("tpe", "tiny", True),
        ("multivariate-tpe", "mixed", True),
        ("multivariate-tpe", "distributions", True),
        ("multivariate-tpe", "finite", True),
        ("multivariate-tpe", "small", True),
        ("multivariate-tpe", "tiny", True),
        ("sobol", "mixed", True),
        ("sobol", "distributions", True),
        ("sobol", "finite", True),
        ("sobol", "small", True),
        ("sobol", "tiny", True),
        ("cmaes", "mixed", True),
        ("cmaes", "distributions", True),
        ("cmaes", "finite", True),
        ("cmaes", "small", False),  # one int parameter: cmaes needs two numeric ones
        ("cmaes", "tiny", False),
    ],
)
def test_skipping_is_decided_by_validate_space(name: str, space_name: str, accepted: bool) -> None:
    # Guards the skips below: they must not hide combinations that should run.
    cls = get_algorithm(name)
    problems = cls.validate_space(
        SPACES[space_name],
        settings={},
        max_trial_count=BUDGET[space_name],
        parallel_trial_count=3,
    )
    assert (problems == []) is accepted, problems


# --- (1) suggestions lie in the space ---------------------------------------------------------


def test_suggestions_lie_in_the_feasible_space(algorithm_name: str, space_name: str) -> None:
    driver = Driver(build(algorithm_name, space_name))
    batches = [1] * TINY_SIZE if space_name == "tiny" else [5] * 6
    total = total_trials(driver.algorithm)
    expected = sum(batches) if total is None else min(sum(batches), total)
    for count in batches:
        suggestions = driver.round(count)
        if len(driver.suggested) < expected:
            assert suggestions, "a space with untried points is not exhausted"
        for assignments in suggestions:
            assert_in_space(SPACES[space_name], assignments)
    assert len(driver.suggested) == expected


def test_suggestions_lie_in_the_space_when_maximizing(algorithm_name: str) -> None:
    driver = Driver(build(algorithm_name, "mixed", maximize=True))
    for _ in range(4):
        for assignments in driver.round(4):
            assert_in_space(MIXED, assignments)


# --- (2) reproducible with a seed -------------------------------------------------------------


def test_same_random_state_gives_the_same_suggestions(algorithm_name: str, space_name: str) -> None:
    if "random_state" not in get_algorithm(algorithm_name).settings_spec:
        pytest.skip(f"{algorithm_name} has no random_state setting")
    first = Driver(build(algorithm_name, space_name))
    second = Driver(build(algorithm_name, space_name))
    for count in (2, 1, 3):
        assert first.round(count) == second.round(count)
    assert first.suggested  # the comparison compared something


# --- (3) state survives dump / load -----------------------------------------------------------


# Without a seed only the loaded state can make the restarted instance agree; with one, a
# generator could also catch up by drawing past the history's points again.
@pytest.mark.parametrize("seed", [SEED, None], ids=["seeded", "unseeded"])
def test_state_survives_dump_and_load(
    algorithm_name: str, space_name: str, seed: int | None
) -> None:
    original = Driver(build(algorithm_name, space_name, seed=seed))
    original.round(2)
    original.round(1, states=(FAILED,))
    pending = original.suggest(1)
    state = round_trip(original.algorithm.dump_state())

    restarted = build(algorithm_name, space_name, seed=seed)
    restarted.load_state(state)
    # On start the controller feeds the whole history and the trials still running.
    active = [TrialRecord("running-0", s, RUNNING) for s in pending]
    restarted.update(original.completed, active)
    original.algorithm.update([], active)

    assert restarted.suggest(1) == original.algorithm.suggest(1)
    # And they keep agreeing once the running trial finishes.
    finished = [
        TrialRecord(t.name, t.assignments, SUCCEEDED, objective(original.space, t.assignments))
        for t in active
    ]
    restarted.update(finished, [])
    original.algorithm.update(finished, [])
    assert restarted.suggest(1) == original.algorithm.suggest(1)


def test_state_is_json_serialisable_before_any_suggestion(algorithm_name: str) -> None:
    algorithm = build(algorithm_name, "mixed")
    algorithm.load_state(round_trip(algorithm.dump_state()))
    assert_in_space(MIXED, algorithm.suggest(1)[0])


# --- (4) no duplicates where the space allows -------------------------------------------------


@pytest.mark.parametrize("space_name", ["tiny", "small"])
@pytest.mark.parametrize("report_as", ["active", "completed"])
def test_one_at_a_time_covers_a_finite_space(
    algorithm_name: str, space_name: str, report_as: str
) -> None:
    space = SPACES[space_name]
    size = grid_size(space)
    algorithm = build(algorithm_name, space_name)
    total = total_trials(algorithm)
    if total is not None and total < size:
        pytest.skip(f"{algorithm_name}'s schedule has {total} trials, fewer than {size} points")
    trials: list[TrialRecord] = []
    for i in range(size):
        suggestions = algorithm.suggest(1)
        assert len(suggestions) == 1, f"only {i} of {size} points were suggested"
        if report_as == "active":
            trials.append(TrialRecord(f"t-{i}", suggestions[0], RUNNING))
            algorithm.update([], trials)
        else:
            trial = TrialRecord(f"t-{i}", suggestions[0], SUCCEEDED, float(i))
            trials.append(trial)
            algorithm.update([trial], [])
    if continues_trials(algorithm):
        pytest.skip(f"{algorithm_name} repeats assignments on purpose (continued trials)")
    points = keys(space, [t.assignments for t in trials])
    assert len(set(points)) == size, f"{size - len(set(points))} duplicates"


def test_batch_has_no_duplicates_and_avoids_active_trials(algorithm_name: str) -> None:
    algorithm = build(algorithm_name, "tiny")
    active = [
        TrialRecord("running-a", {"opt": "a", "n": "1"}, RUNNING),
        TrialRecord("running-b", {"opt": "b", "n": "3"}, RUNNING),
    ]
    algorithm.update([], active)
    batch = keys(TINY, algorithm.suggest(4))
    assert 1 <= len(batch) <= 4
    if continues_trials(algorithm):
        return  # a batch of continued trials may repeat a point; it was not empty
    assert len(set(batch)) == len(batch), batch
    assert not set(batch) & set(keys(TINY, [t.assignments for t in active])), batch


def test_batch_avoids_the_history_in_larger_spaces(algorithm_name: str, space_name: str) -> None:
    driver = Driver(build(algorithm_name, space_name))
    driver.round(2)
    running = driver.suggest(2)
    active = [TrialRecord(driver.name(), s, RUNNING) for s in running]
    driver.algorithm.update([], active)
    seen = keys(driver.space, driver.suggested)
    batch = driver.suggest(min(8, BUDGET[space_name] - len(seen)))
    if not batch and active:
        # "Nothing now" while trials run (hyperband's rung): ask again once they finish.
        driver.algorithm.update(
            [TrialRecord(t.name, t.assignments, SUCCEEDED, 1.0) for t in active], []
        )
        batch = driver.suggest(min(8, BUDGET[space_name] - len(seen)))
    assert batch
    if continues_trials(driver.algorithm):
        return
    assert len(set(keys(driver.space, batch))) == len(batch)
    assert not set(keys(driver.space, batch)) & set(seen)


# --- (5) failed trials without an objective ---------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True])
def test_failed_and_unmeasured_trials_are_tolerated(
    algorithm_name: str, space_name: str, maximize: bool
) -> None:
    driver = Driver(build(algorithm_name, space_name, maximize=maximize))
    # Nothing but failures first: no objective value at all.
    driver.round(2, states=(FAILED, METRICS_UNAVAILABLE))
    assert all(t.objective is None for t in driver.completed)
    driver.round(2, states=(SUCCEEDED, KILLED))
    driver.round(1, states=(EARLY_STOPPED,))
    for assignments in driver.round(1, states=(METRICS_UNAVAILABLE,)):
        assert_in_space(driver.space, assignments)
    if not continues_trials(driver.algorithm):
        assert len(set(keys(driver.space, driver.suggested))) == len(driver.suggested)


# --- (6) a finished trial seen twice counts once ----------------------------------------------


def test_refed_trials_count_once(algorithm_name: str, space_name: str) -> None:
    history = Driver(build(algorithm_name, space_name))
    history.round(2)
    history.round(1, states=(FAILED,))
    state = round_trip(history.algorithm.dump_state())

    once = build(algorithm_name, space_name)
    once.load_state(state)
    once.update(history.completed, [])

    twice = build(algorithm_name, space_name)
    twice.load_state(state)
    twice.update(history.completed, [])
    twice.update(history.completed, [])
    twice.update(history.completed[:1], [])

    from_once, from_twice = once.suggest(3), twice.suggest(3)
    assert from_twice == from_once
    if continues_trials(once):
        return  # re-runs of failed trials repeat their assignments on purpose
    tried = set(keys(history.space, history.suggested))
    assert len(set(keys(history.space, from_twice))) == len(from_twice)
    assert not set(keys(history.space, from_twice)) & tried


# --- (7) warm start: another experiment's trials as history ---------------------------------


@pytest.mark.parametrize("space_name", ["mixed", "finite", "small"])
def test_a_warm_start_history_is_taken_in(algorithm_name: str, space_name: str) -> None:
    # Finished trials the algorithm never suggested, fed before anything else (spec.warmStart).
    if not get_algorithm(algorithm_name).supports_warm_start:
        pytest.skip(f"{algorithm_name} cannot be warm-started")
    donor = Driver(build("random", space_name, seed=1), prefix="earlier")
    donor.round(4)
    donor.round(2, states=(FAILED, EARLY_STOPPED))
    algorithm = build(algorithm_name, space_name)
    algorithm.update(donor.completed, [])
    driver = Driver(algorithm)
    suggestions = driver.round(3) + driver.round(3)
    assert len(suggestions) == 6
    for assignments in suggestions:
        assert_in_space(SPACES[space_name], assignments)
    assert not set(keys(driver.space, suggestions)) & set(keys(driver.space, donor.suggested))
    assert len(set(keys(driver.space, suggestions))) == len(suggestions)


# --- (8) several objectives -------------------------------------------------------------------

# Two objectives: the first minimized, the second maximized.
DIRECTIONS = (False, True)


@pytest.fixture(params=[n for n in algorithm_names() if get_algorithm(n).multi_objective])
def multi_objective_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_multi_objective_algorithms_are_declared() -> None:
    found = {n for n in algorithm_names() if get_algorithm(n).multi_objective}
    assert {"nsga2", "nsga3", "tpe", "multivariate-tpe", "random", "grid", "sobol"} <= found
    assert not {"cmaes", "bayesianoptimization", "hyperband", "pbt"} & found


def build_multi(name: str, space_name: str, seed: int | None = SEED) -> Algorithm:
    cls = get_algorithm(name)
    space = SPACES[space_name]
    settings = settings_for(cls, seed, space)
    if settings is None or cls.validate_space(
        space, settings=settings, max_trial_count=BUDGET[space_name], parallel_trial_count=3
    ):
        pytest.skip(f"{name} does not handle the {space_name} space")
    return cls(
        space,
        maximize=DIRECTIONS[0],
        settings=settings,
        max_trial_count=BUDGET[space_name],
        parallel_trial_count=3,
        directions=DIRECTIONS,
    )


def two_values(space: SearchSpace, assignments: Mapping[str, str]) -> tuple[float, float]:
    first = objective(space, assignments)
    return first, -((first - 1.0) ** 2)  # in conflict with the first around 1


class MultiDriver(Driver):
    """The driver, reporting both objectives (``values``), some trials without them."""

    def round(self, count: int, states: Sequence[str] = (SUCCEEDED,)) -> list[dict[str, str]]:
        suggestions = self.suggest(count)
        active = [TrialRecord(self.name(), s, RUNNING) for s in suggestions]
        self.algorithm.update([], active)
        finished: list[TrialRecord] = []
        for i, trial in enumerate(active):
            state = states[i % len(states)]
            values = None if state in (FAILED, METRICS_UNAVAILABLE, KILLED) else two_values(
                self.space, trial.assignments
            )
            finished.append(
                TrialRecord(
                    trial.name, trial.assignments, state,
                    None if values is None else values[0], values=values,
                )
            )
        self.completed.extend(finished)
        self.algorithm.update(finished, [])
        return suggestions


@pytest.mark.parametrize("space_name", ["mixed", "finite", "small"])
def test_multi_objective_suggestions_lie_in_the_space_without_repeats(
    multi_objective_name: str, space_name: str
) -> None:
    driver = MultiDriver(build_multi(multi_objective_name, space_name))
    for _ in range(5):
        driver.round(4)
    driver.round(2, states=(FAILED, EARLY_STOPPED))
    assert len(driver.suggested) == 22
    for assignments in driver.suggested:
        assert_in_space(SPACES[space_name], assignments)
    assert len(set(keys(driver.space, driver.suggested))) == len(driver.suggested)


def test_multi_objective_is_reproducible_and_survives_dump_and_load(
    multi_objective_name: str,
) -> None:
    first = MultiDriver(build_multi(multi_objective_name, "mixed"))
    second = MultiDriver(build_multi(multi_objective_name, "mixed"))
    for count in (3, 2):
        assert first.round(count) == second.round(count)
    first.round(1, states=(FAILED,))
    state = round_trip(first.algorithm.dump_state())
    restarted = build_multi(multi_objective_name, "mixed")
    restarted.load_state(state)
    restarted.update(first.completed, [])
    assert restarted.suggest(2) == first.algorithm.suggest(2)


# --- (9) neural architecture search -------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "katib_examples" / "nas"


def nas_space(file: str) -> SearchSpace:
    """The nasConfig of one of Katib's published NAS examples."""
    (experiment,) = load_experiments(FIXTURES / file)
    return SearchSpace.from_spec((), nas_config=experiment.spec.nas_config)


CONV = NasOperation(
    "convolution", (Parameter("filter_size", "categorical", values=("3", "5")),)
)
NAS_SPACES = {
    # Katib's: one layer, 106 choices (categorical and int parameters).
    "enas-cpu": nas_space("enas-cpu.yaml"),
    # Katib's: five DARTS primitives and a bare skip_connection.
    "darts-gpu": nas_space("darts-gpu.yaml"),
    # 4 layers of 3 choices with 6 skip bits: 3^4 * 2^6 = 5184 architectures.
    "deep": SearchSpace(
        nas=NasSpace(4, (8, 8, 1), (10,), (CONV, NasOperation("max_pooling")))
    ),
    # 2 layers of 2 choices with 1 skip bit: 8 architectures.
    "tiny": SearchSpace(
        nas=NasSpace(2, (8, 8, 1), (10,), (NasOperation("identity"), NasOperation("pool")))
    ),
}
NAS_TINY_SIZE = 8


@pytest.fixture(params=NAS_ALGORITHMS)
def nas_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=sorted(NAS_SPACES))
def nas_space_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_nas_algorithms_are_declared() -> None:
    assert {"enas", "darts"} <= set(NAS_ALGORITHMS)
    assert set(NAS_ALGORITHMS) <= set(SUGGESTION_NAS_ALGORITHMS)
    for name in NAS_ALGORITHMS:
        assert get_algorithm(name).parameter_names  # type: ignore[attr-defined]


def build_nas(
    name: str, space_name: str, *, seed: int | None = SEED, maximize: bool = True
) -> Algorithm:
    cls = get_algorithm(name)
    space = NAS_SPACES[space_name]
    settings = settings_for(cls, seed, space) or {}
    assert cls.validate_settings(settings) == []
    problems = cls.validate_space(
        space, settings=settings, max_trial_count=30, parallel_trial_count=3
    )
    if problems:
        pytest.skip(f"{name} does not handle the {space_name} space: {problems}")
    return cls(space, maximize=maximize, settings=settings, max_trial_count=30,
               parallel_trial_count=3)


def nas_objective(space: SearchSpace, assignments: Mapping[str, str]) -> float:
    """A deterministic value of an architecture, so that learning algorithms learn."""
    text = "".join(assignments[k] for k in sorted(assignments))
    return sum(ord(c) * (i + 1) for i, c in enumerate(text)) % 97 / 97


def nas_driver(algorithm: Algorithm, prefix: str = "t") -> Driver:
    driver = Driver(algorithm, prefix)
    driver.objective = nas_objective
    return driver


def nas_key(assignments: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(assignments.items()))


def assert_valid_nas(algorithm: Algorithm, assignments: Mapping[str, str]) -> None:
    """The assignments are the algorithm's trial parameters, in Katib's shapes."""
    names = tuple(getattr(algorithm, "parameter_names", ()))
    assert set(assignments) == set(names), assignments
    assert all(isinstance(v, str) for v in assignments.values())
    nas = algorithm.space.nas
    assert nas is not None
    if "architecture" in assignments:
        architecture = json.loads(assignments["architecture"].replace("'", '"'))
        config = json.loads(assignments["nn_config"].replace("'", '"'))
        assert len(architecture) == nas.num_layers == config["num_layers"]
        for layer, choices in enumerate(architecture):
            assert len(choices) == layer + 1
            assert str(choices[0]) in config["embedding"]
            assert all(bit in (0, 1) for bit in choices[1:])
        assert config["input_sizes"] == list(nas.input_sizes)
        assert config["output_sizes"] == list(nas.output_sizes)
    if "search-space" in assignments:
        json.loads(assignments["algorithm-settings"].replace("'", '"'))
        assert json.loads(assignments["search-space"].replace("'", '"'))
        assert assignments["num-layers"] == str(nas.num_layers)


def test_nas_algorithms_refuse_a_space_of_parameters(nas_name: str) -> None:
    problems = get_algorithm(nas_name).validate_space(
        MIXED, settings={}, max_trial_count=10, parallel_trial_count=1
    )
    assert problems and "nasConfig" in problems[0][1]


def test_nas_suggestions_are_valid(nas_name: str, nas_space_name: str) -> None:
    driver = nas_driver(build_nas(nas_name, nas_space_name))
    batches = [1] * NAS_TINY_SIZE if nas_space_name == "tiny" else [3] * 4
    for count in batches:
        suggestions = driver.round(count)
        assert len(suggestions) == count
        for assignments in suggestions:
            assert_valid_nas(driver.algorithm, assignments)


def test_nas_same_random_state_gives_the_same_suggestions(
    nas_name: str, nas_space_name: str
) -> None:
    if "random_state" not in get_algorithm(nas_name).settings_spec:
        pytest.skip(f"{nas_name} has no random_state setting")
    first = nas_driver(build_nas(nas_name, nas_space_name))
    second = nas_driver(build_nas(nas_name, nas_space_name))
    for count in (2, 1, 3):
        assert first.round(count) == second.round(count)


@pytest.mark.parametrize("seed", [SEED, None], ids=["seeded", "unseeded"])
def test_nas_state_survives_dump_and_load(
    nas_name: str, nas_space_name: str, seed: int | None
) -> None:
    original = nas_driver(build_nas(nas_name, nas_space_name, seed=seed))
    original.round(2)
    original.round(1, states=(FAILED,))
    pending = original.suggest(1)
    state = round_trip(original.algorithm.dump_state())

    restarted = build_nas(nas_name, nas_space_name, seed=seed)
    restarted.load_state(state)
    active = [TrialRecord("running-0", s, RUNNING) for s in pending]
    restarted.update(original.completed, active)
    original.algorithm.update([], active)
    assert restarted.suggest(1) == original.algorithm.suggest(1)
    finished = [
        TrialRecord(t.name, t.assignments, SUCCEEDED, nas_objective(original.space,
                                                                     t.assignments))
        for t in active
    ]
    restarted.update(finished, [])
    original.algorithm.update(finished, [])
    assert restarted.suggest(2) == original.algorithm.suggest(2)
    assert round_trip(restarted.dump_state()) == round_trip(original.algorithm.dump_state())


@pytest.mark.parametrize("report_as", ["active", "completed"])
def test_nas_one_at_a_time_covers_a_finite_space(nas_name: str, report_as: str) -> None:
    algorithm = build_nas(nas_name, "tiny")
    if continues_trials(algorithm):
        pytest.skip(f"{nas_name} repeats assignments on purpose")
    trials: list[TrialRecord] = []
    for i in range(NAS_TINY_SIZE):
        suggestions = algorithm.suggest(1)
        assert len(suggestions) == 1, f"only {i} of {NAS_TINY_SIZE} architectures"
        if report_as == "active":
            trials.append(TrialRecord(f"t-{i}", suggestions[0], RUNNING))
            algorithm.update([], trials)
        else:
            trial = TrialRecord(f"t-{i}", suggestions[0], SUCCEEDED, float(i % 3))
            trials.append(trial)
            algorithm.update([trial], [])
    assert len({nas_key(t.assignments) for t in trials}) == NAS_TINY_SIZE
    assert algorithm.suggest(1) == [], "every architecture was tried: nothing is left"


def test_nas_batch_avoids_the_history(nas_name: str, nas_space_name: str) -> None:
    driver = nas_driver(build_nas(nas_name, nas_space_name))
    driver.round(3)
    running = driver.suggest(2)
    driver.algorithm.update([], [TrialRecord(driver.name(), s, RUNNING) for s in running])
    batch = driver.suggest(2 if nas_space_name == "tiny" else 6)
    assert batch
    if continues_trials(driver.algorithm):
        return
    seen = {nas_key(s) for s in driver.suggested[: -len(batch)]}
    assert len({nas_key(s) for s in batch}) == len(batch)
    assert not {nas_key(s) for s in batch} & seen


@pytest.mark.parametrize("maximize", [False, True])
def test_nas_failed_and_unmeasured_trials_are_tolerated(
    nas_name: str, nas_space_name: str, maximize: bool
) -> None:
    driver = nas_driver(build_nas(nas_name, nas_space_name, maximize=maximize))
    driver.round(2, states=(FAILED, METRICS_UNAVAILABLE))
    driver.round(2, states=(SUCCEEDED, KILLED))
    driver.round(1, states=(EARLY_STOPPED,))
    for assignments in driver.round(1, states=(METRICS_UNAVAILABLE,)):
        assert_valid_nas(driver.algorithm, assignments)


def test_nas_refed_trials_count_once(nas_name: str, nas_space_name: str) -> None:
    history = nas_driver(build_nas(nas_name, nas_space_name))
    history.round(2)
    history.round(1, states=(FAILED,))
    state = round_trip(history.algorithm.dump_state())
    once = build_nas(nas_name, nas_space_name)
    once.load_state(state)
    once.update(history.completed, [])
    twice = build_nas(nas_name, nas_space_name)
    twice.load_state(state)
    twice.update(history.completed, [])
    twice.update(history.completed, [])
    twice.update(history.completed[:1], [])
    assert twice.suggest(2) == once.suggest(2)
    assert round_trip(twice.dump_state()) == round_trip(once.dump_state())
