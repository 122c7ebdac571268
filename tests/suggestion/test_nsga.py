"""NSGA-II and NSGA-III (``nsga2``, ``nsga3``): settings, generations across restarts,
multi-objective TPE, and that they learn a Pareto front."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from suggestion import SUCCEEDED, Algorithm, Parameter, SearchSpace, TrialRecord, get_algorithm
from suggestion.algorithms.nsga import NSGAIIISearch, NSGAIISearch

ZDT_SPACE = SearchSpace(tuple(Parameter(f"x{i}", "double", min=0.0, max=1.0) for i in range(4)))


def zdt1(assignments: dict[str, str]) -> tuple[float, float]:
    x = [float(assignments[f"x{i}"]) for i in range(4)]
    g = 1 + 9 * sum(x[1:]) / 3
    return x[0], g * (1 - math.sqrt(x[0] / g))


def build(name: str, seed: int = 1, **settings: str) -> Algorithm:
    cls = get_algorithm(name)
    full = {"random_state": str(seed), **settings}
    assert cls.validate_settings(full) == []
    return cls(ZDT_SPACE, maximize=False, settings=full, directions=(False, False))


def tell(algorithm: Algorithm, name: str, assignments: dict[str, str]) -> TrialRecord:
    values = zdt1(assignments)
    trial = TrialRecord(name, assignments, SUCCEEDED, values[0], values=values)
    algorithm.update([trial], [])
    return trial


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float] = (1.1, 11.0)) -> float:
    front = sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1])
    volume, best_y = 0.0, ref[1]
    for x, y in front:
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_registered(name: str) -> None:
    assert get_algorithm(name) in (NSGAIISearch, NSGAIIISearch)
    assert get_algorithm(name).multi_objective


@pytest.mark.parametrize(
    ("name", "settings", "bad"),
    [
        ("nsga2", {"population_size": "1"}, "population_size"),
        ("nsga2", {"crossover_prob": "1.5"}, "crossover_prob"),
        ("nsga2", {"swapping_prob": "-0.1"}, "swapping_prob"),
        ("nsga2", {"mutation_prob": "often"}, "mutation_prob"),
        ("nsga2", {"dividing_parameter": "3"}, "dividing_parameter"),
        ("nsga3", {"dividing_parameter": "0"}, "dividing_parameter"),
        ("nsga3", {"random_state": "-1"}, "random_state"),
    ],
)
def test_bad_settings_are_named(name: str, settings: dict[str, str], bad: str) -> None:
    assert [p[0] for p in get_algorithm(name).validate_settings(settings)] == [bad]


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
@pytest.mark.parametrize("batch", [1, 3])
def test_generations_survive_restarts(name: str, batch: int) -> None:
    # Five generations of four: restarted after every batch (state through JSON, the whole
    # history fed again), the run suggests exactly what an uninterrupted one does.
    steady = build(name, population_size="4")
    restarted_state: dict[str, object] | None = None
    history: list[TrialRecord] = []
    for round_number in range(8):
        fresh = build(name, population_size="4")
        if restarted_state is not None:
            fresh.load_state(restarted_state)
        fresh.update(history, [])
        expected = steady.suggest(batch)
        got = fresh.suggest(batch)
        assert got == expected, f"round {round_number}"
        for i, assignments in enumerate(got):
            trial = tell(steady, f"t{round_number}-{i}", assignments)
            history.append(trial)
        restarted_state = json.loads(json.dumps(fresh.dump_state()))
    assert len(history) == 8 * batch


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_warm_start_trials_are_the_first_generation(name: str) -> None:
    donor = build("random", 9)
    history = [tell(donor, f"old{i}", donor.suggest(1)[0]) for i in range(6)]
    algorithm = build(name, population_size="4")
    algorithm.update(history, [])
    algorithm.suggest(1)
    study = algorithm._study  # type: ignore[attr-defined]
    key = study.sampler._get_generation_key()
    # Six finished trials of generation 0 (more than a population): the next is bred, gen 1.
    assert study.trials[-1].system_attrs[key] == 1


def test_state_has_no_pickle() -> None:
    algorithm = build("nsga2", population_size="4")
    for i in range(6):
        tell(algorithm, f"t{i}", algorithm.suggest(1)[0])
    state = algorithm.dump_state()
    assert "sampler" not in state
    assert state["rng"]["__random_state__"] == state["random_rng"]["__random_state__"] == "MT19937"
    json.dumps(state)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nsga2", "nsga3", "tpe"])
def test_learns_a_better_front_than_random_search(name: str) -> None:
    def run(algorithm: Algorithm) -> float:
        points = []
        for i in range(120):
            assignments = algorithm.suggest(1)[0]
            points.append(tell(algorithm, f"t{i}", assignments).values)
        return hypervolume([p for p in points if p is not None])

    learned = [
        run(build(name, seed, **({"population_size": "20"} if name != "tpe" else {})))
        for seed in range(3)
    ]
    random = [run(build("random", seed)) for seed in range(3)]
    assert float(np.median(learned)) > float(np.median(random))
