"""The Pareto rule (``_optimal.py``) and multi-objective experiments through the loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from katib.controller import dominates, optimal_trial, pareto_front, pareto_front_of
from katib.records import ExperimentCondition, MetricSummary, TrialRecord, TrialState
from katib.service import best_view, pareto_view
from katib.spec import Objective, parse_experiment
from katib.storage import Storage
from katib.views import best_trial_json
from tests.katib.controller.test_loop import FakeLauncher, Play, experiment, run_loop, trials


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = Storage.open(f"sqlite:///{tmp_path / 'katib.db'}")
    yield s
    s.close()


def objective(*extra: tuple[str, str], kind: str = "minimize") -> Objective:
    doc = experiment()
    doc["spec"]["objective"] = {"type": kind, "objectiveMetricName": "loss"}
    if extra:
        doc["spec"]["objective"]["additionalObjectives"] = [
            {"name": n, "type": t} for n, t in extra
        ]
    spec = parse_experiment(doc).spec.objective
    assert spec is not None
    return spec


def trial(name: str, state: TrialState = TrialState.SUCCEEDED, **values: float) -> TrialRecord:
    return TrialRecord(
        id=0, experiment_id=0, namespace="ns", name=name, assignments={}, state=state,
        objective=values.get("loss"),
        metrics={k: MetricSummary(k, v, v, v) for k, v in values.items()},
    )


def names(front: list[TrialRecord]) -> list[str]:
    return [t.name for t in front]


def test_dominates() -> None:
    assert dominates((1, 1), (2, 2), (False, False))
    assert dominates((1, 2), (1, 3), (False, False))
    assert not dominates((1, 1), (1, 1), (False, False))  # equal: neither dominates
    assert not dominates((1, 3), (2, 2), (False, False))
    assert dominates((1, 3), (2, 2), (False, True))  # the second is maximized


def test_front_of_two_minimized_objectives() -> None:
    rule = objective(("latency", "minimize"))
    found = pareto_front(
        [
            trial("a", loss=1.0, latency=9.0),
            trial("b", loss=2.0, latency=5.0),
            trial("c", loss=3.0, latency=6.0),  # dominated by b
            trial("d", loss=4.0, latency=1.0),
            trial("e", loss=2.0, latency=5.0),  # equal to b: on the front too
            trial("f", TrialState.FAILED, loss=0.1, latency=0.1),  # not a candidate
            trial("g", loss=0.5),  # latency never reported
            trial("h", TrialState.EARLY_STOPPED, loss=5.0, latency=0.5),
        ],
        rule,
    )
    assert names(found) == ["a", "b", "e", "d", "h"]  # best loss first, then trial order


def test_directions_are_honoured() -> None:
    rule = objective(("accuracy", "maximize"))
    found = pareto_front(
        [
            trial("a", loss=1.0, accuracy=0.5),
            trial("b", loss=2.0, accuracy=0.9),
            trial("c", loss=2.0, accuracy=0.8),  # dominated by b
            trial("d", loss=0.5, accuracy=0.1),
        ],
        rule,
    )
    assert names(found) == ["d", "a", "b"]


def test_with_one_objective_the_front_is_the_best_trials() -> None:
    found = pareto_front([trial("a", loss=2.0), trial("b", loss=1.0), trial("c", loss=1.0)],
                         objective())
    assert names(found) == ["b", "c"]


def test_the_optimal_trial_is_on_the_front() -> None:
    rule = objective(("latency", "minimize"))
    history = [
        trial("a", loss=1.0, latency=9.0),
        trial("b", loss=1.0, latency=5.0),  # same loss, dominates a
        trial("c", loss=0.5),  # best loss but latency missing: not on the front
    ]
    best = optimal_trial(history, rule)
    assert best is not None and best.name == "b"
    assert best.name in names(pareto_front(history, rule))
    # One objective: the earliest of equal values, as before.
    single = optimal_trial([trial("a", loss=1.0), trial("b", loss=1.0)], objective())
    assert single is not None and single.name == "a"


def test_front_of_many_trials_is_quick() -> None:
    import random
    import time

    rng = random.Random(1)
    rule = objective(("latency", "minimize"), ("size", "maximize"))
    many = [trial(f"t{i}", loss=rng.random(), latency=rng.random(), size=rng.random())
            for i in range(3000)]
    started = time.perf_counter()
    found = pareto_front(many, rule)
    assert time.perf_counter() - started < 10
    directions = (False, False, True)
    vectors = {t.name: (t.metrics["loss"].latest, t.metrics["latency"].latest,
                        t.metrics["size"].latest) for t in many}
    kept = set(names(found))
    sample = rng.sample(many, 200)
    for t in sample:  # the front is exactly the non-dominated ones
        dominated = any(dominates(vectors[o.name], vectors[t.name], directions) for o in many)
        assert (t.name in kept) == (not dominated)


# --- through the loop --------------------------------------------------------------------


def mo_doc(**spec: Any) -> dict[str, Any]:
    doc = experiment(
        maxTrialCount=12,
        parallelTrialCount=3,
        algorithm={"algorithmName": "nsga2", "algorithmSettings": [
            {"name": "population_size", "value": "4"}, {"name": "random_state", "value": "3"}]},
        **spec,
    )
    doc["spec"]["objective"]["additionalObjectives"] = [{"name": "cost", "type": "minimize"}]
    return doc


def tradeoff(launch: Any) -> Play:
    x = float(launch.assignments["x"])
    return Play(metrics=[{"loss": (x - 10) ** 2, "cost": x}])


def test_a_multi_objective_run_records_a_front(storage: Storage, tmp_path: Path) -> None:
    launcher = FakeLauncher(tradeoff)
    _, record = run_loop(storage, launcher, mo_doc(), tmp_path)
    assert record.condition == ExperimentCondition.SUCCEEDED
    stored = trials(storage, record)
    assert len(stored) == 12
    front = pareto_front_of(storage, record)
    # loss falls and cost rises with x: every trial is on the front.
    assert len(front) == 12
    best = best_view(storage, record)
    assert best["bestTrialName"] == front[0].name == record.optimal_trial_name
    assert [p["trialName"] for p in best["paretoFront"]] == [t.name for t in front]
    first = best["paretoFront"][0]
    assert set(first) == {"trialName", "parameterAssignments", "observation", "objectives"}
    assert [o["name"] for o in first["objectives"]] == ["loss", "cost"]
    assert first["objectives"][1]["value"] == pytest.approx(float(front[0].assignments["x"]))
    view = pareto_view(storage, record)
    assert view["objectives"] == [
        {"name": "loss", "type": "minimize"}, {"name": "cost", "type": "minimize"}]
    assert view["paretoFront"] == best["paretoFront"]


def test_the_algorithm_is_told_every_objective(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from katib.controller import _run
    from suggestion import TrialRecord as AlgorithmTrial
    from suggestion.algorithms.random import RandomSearch

    told: list[AlgorithmTrial] = []
    built: list[tuple[bool, ...]] = []

    class Recording(RandomSearch):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            built.append(self.directions)

        def update(self, completed: Any, active: Any) -> None:
            told.extend(completed)
            super().update(completed, active)

    monkeypatch.setattr(_run, "get_algorithm", lambda name: Recording)
    doc = mo_doc()
    doc["spec"]["objective"]["additionalObjectives"].append({"name": "gain", "type": "maximize"})
    def script(launch: Any) -> Play:
        if len(launcher.launches) == 1:  # the first trial never reports gain
            return Play(metrics=[{"loss": 1.0, "cost": 2.0}])
        return Play(metrics=[{"loss": 1.0, "cost": 2.0, "gain": 3.0}])

    launcher = FakeLauncher(script)
    run_loop(storage, launcher, doc, tmp_path)
    assert built == [(False, False, True)]
    assert told[0].values is None
    assert all(t.values == (1.0, 2.0, 3.0) for t in told[1:])


def test_a_single_objective_best_view_is_katibs_shape(storage: Storage, tmp_path: Path) -> None:
    launcher = FakeLauncher(lambda launch: Play(metrics=[{"loss": float(launch.assignments["x"])}]))
    _, record = run_loop(storage, launcher, experiment(), tmp_path)
    view = best_view(storage, record)
    assert list(view) == [
        "experiment", "namespace", "condition", "bestTrialName", "parameterAssignments",
        "observation",
    ]
    rule = record.spec.spec.objective
    assert rule is not None
    assert view == best_trial_json(record, optimal_trial(trials(storage, record), rule))
    assert len(pareto_view(storage, record)["paretoFront"]) == 1
