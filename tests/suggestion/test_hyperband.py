"""Hyperband: Katib's bracket arithmetic, successive halving, waiting, the end, validation.

The expected schedules were derived by replaying the bookkeeping of Katib's
``pkg/suggestion/v1beta1/hyperband/service.py`` (``HyperBandParam.convert`` and
``_new_hbParameters`` / ``_make_child_bracket``) with a request count equal to each bracket's n.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from katib.errors import InvalidExperimentError
from katib.spec import load_experiments
from suggestion import (
    FAILED,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    Parameter,
    SearchSpace,
    TrialRecord,
    get_algorithm,
)
from suggestion.algorithms.hyperband import Hyperband, Schedule

EXAMPLE = Path(__file__).parents[1] / "fixtures" / "katib_examples" / "hp-tuning" / "hyperband.yaml"

# The parameters of Katib's hyperband example (examples/v1beta1/hp-tuning/hyperband.yaml).
KATIB_SPACE = SearchSpace(
    (
        Parameter("lr", "double", min=0.01, max=0.03),
        Parameter("num-layers", "int", min=2, max=5),
        Parameter("optimizer", "categorical", values=("sgd", "adam", "ftrl")),
        Parameter("num-epochs", "int", min=1, max=1),
    )
)
KATIB_SETTINGS = {"resource_name": "num-epochs", "eta": "2", "r_l": "2"}

SPACE = SearchSpace(
    (
        Parameter("x", "double", min=-5.0, max=5.0),
        Parameter("act", "categorical", values=("relu", "tanh", "gelu")),
        Parameter("epochs", "int", min=1, max=100),
    )
)


def hyperband(
    space: SearchSpace = SPACE,
    *,
    maximize: bool = False,
    parallel: int = 100,
    **settings: str,
) -> Hyperband:
    settings = {"resource_name": "epochs", **settings}
    assert Hyperband.validate_settings(settings) == []
    resolved = Hyperband.resolve_settings(settings)
    assert (
        Hyperband.validate_space(
            space, settings=resolved, max_trial_count=None, parallel_trial_count=parallel
        )
        == []
    )
    return Hyperband(space, maximize=maximize, settings=settings, parallel_trial_count=parallel)


class Runner:
    """Names trials, reports them active, finishes them with chosen objective values."""

    def __init__(self, algorithm: Hyperband) -> None:
        self.algorithm = algorithm
        self.active: dict[str, TrialRecord] = {}
        self.completed: list[TrialRecord] = []
        self.count = 0

    def suggest(self, count: int) -> list[TrialRecord]:
        new = []
        for assignments in self.algorithm.suggest(count):
            self.count += 1
            trial = TrialRecord(f"t-{self.count}", assignments, RUNNING)
            self.active[trial.name] = trial
            new.append(trial)
        self.algorithm.update([], list(self.active.values()))
        return new

    def finish(
        self, trial: TrialRecord, value: float | None, state: str = SUCCEEDED
    ) -> TrialRecord:
        del self.active[trial.name]
        done = TrialRecord(trial.name, trial.assignments, state, value)
        self.completed.append(done)
        self.algorithm.update([done], list(self.active.values()))
        return done

    def finish_all(self, trials: Sequence[TrialRecord], value: float = 1.0) -> None:
        for trial in trials:
            self.finish(trial, value)


def without(assignments: Mapping[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in assignments.items() if k != name}


def resources(trials: Sequence[TrialRecord], name: str = "epochs") -> list[str]:
    return [t.assignments[name] for t in trials]


# --- registration and arithmetic --------------------------------------------------------------


def test_registered_as_hyperband() -> None:
    assert get_algorithm("hyperband") is Hyperband
    assert Hyperband.settings_spec["eta"].default == "3"
    assert Hyperband.settings_spec["r_l"].default is None


def test_katib_example_schedule() -> None:
    # r_l=2, eta=2: s_max = 1. Bracket 1: n = ceil(2 * 2 / 2) = 2 at r = 1, the best 1 of them
    # again at 2; bracket 0: n = ceil(2 * 1 / 1) = 2 at r = 2. Five trials in all.
    schedule = Schedule(2.0, 2.0)
    assert schedule.s_max == 1
    assert schedule.brackets() == [[(2, 1.0), (1, 2.0)], [(2, 2.0)]]
    assert schedule.total_trials == 5


@pytest.mark.parametrize(
    ("r_l", "eta", "expected"),
    [
        (3, 3, [[(3, 1), (1, 3)], [(2, 3)]]),
        (9, 3, [[(9, 1), (3, 3), (1, 9)], [(5, 3), (2, 9)], [(3, 9)]]),
        (
            81,
            3,
            [
                [(81, 1), (27, 3), (9, 9), (3, 27), (1, 81)],
                [(34, 3), (12, 9), (4, 27), (2, 81)],
                [(15, 9), (5, 27), (2, 81)],
                [(8, 27), (3, 81)],
                [(5, 81)],
            ],
        ),
    ],
)
def test_schedules_match_katibs_bookkeeping(
    r_l: int, eta: int, expected: list[list[tuple[int, int]]]
) -> None:
    brackets = Schedule(float(r_l), float(eta)).brackets()
    assert [[(n, round(r, 9)) for n, r in rungs] for rungs in brackets] == expected


def test_float_noise_does_not_lose_a_bracket() -> None:
    # log(243) / log(3) is 4.999...; Katib's int() would make s_max 4.
    assert Schedule(243.0, 3.0).s_max == 5
    assert Schedule(2.0, 3.0).s_max == 0  # r_l < eta: a single bracket of s_max + 1 = 1
    assert Schedule(2.0, 3.0).brackets() == [[(1, 2.0)]]


# --- the Katib example, run -------------------------------------------------------------------


def test_katib_example_runs_two_brackets_and_ends() -> None:
    algorithm = Hyperband(KATIB_SPACE, maximize=True, settings=KATIB_SETTINGS)
    run = Runner(algorithm)
    first = run.suggest(2)
    assert resources(first, "num-epochs") == ["1", "1"]
    assert run.suggest(2) == []  # the rung is running: nothing now
    run.finish(first[0], 0.7)
    assert run.suggest(2) == []
    run.finish(first[1], 0.9)  # maximize: the second one goes on

    batch = run.suggest(5)
    assert resources(batch, "num-epochs") == ["2", "2", "2"]
    assert without(batch[0].assignments, "num-epochs") == without(
        first[1].assignments, "num-epochs"
    )
    # Bracket 0 starts as soon as bracket 1's last rung is handed out: new configurations.
    fresh = [without(t.assignments, "num-epochs") for t in batch[1:]]
    assert without(first[0].assignments, "num-epochs") not in fresh
    assert without(first[1].assignments, "num-epochs") not in fresh

    assert run.suggest(5) == []
    run.finish_all(batch)
    assert run.suggest(5) == []  # every bracket done: the experiment ends
    assert algorithm.total_trials == 5 == run.count


def test_katib_example_file_validates_and_a_smaller_parallelism_does_not(
    tmp_path: Path,
) -> None:
    (experiment,) = load_experiments(EXAMPLE)
    assert experiment.spec.algorithm.algorithm_name == "hyperband"
    text = EXAMPLE.read_text().replace("parallelTrialCount: 2", "parallelTrialCount: 1")
    changed = tmp_path / "hyperband.yaml"
    changed.write_text(text)
    with pytest.raises(InvalidExperimentError) as info:
        load_experiments(changed)
    messages = [str(e) for e in info.value.errors]
    assert any("parallelTrialCount must be not less than 2" in m for m in messages), messages


# --- successive halving -----------------------------------------------------------------------


@pytest.mark.parametrize("maximize", [False, True])
def test_promotion_keeps_the_best_third_with_three_times_the_resource(maximize: bool) -> None:
    run = Runner(hyperband(maximize=maximize, r_l="9", eta="3"))
    rung0 = run.suggest(20)
    assert len(rung0) == 9 and set(resources(rung0)) == {"1"}
    for i, trial in enumerate(rung0):
        run.finish(trial, float(i))
    rung1 = run.suggest(20)
    assert resources(rung1) == ["3", "3", "3"]
    best = [8, 7, 6] if maximize else [0, 1, 2]
    assert [without(t.assignments, "epochs") for t in rung1] == [
        without(rung0[i].assignments, "epochs") for i in best
    ]
    assert run.suggest(20) == []
    for i, trial in enumerate(rung1):
        run.finish(trial, float(i))
    rung2 = run.suggest(1)
    assert resources(rung2) == ["9"]
    assert without(rung2[0].assignments, "epochs") == without(
        rung1[2 if maximize else 0].assignments, "epochs"
    )


def test_failed_trials_are_never_promoted() -> None:
    run = Runner(hyperband(r_l="9", eta="3"))
    rung0 = run.suggest(9)
    for i, trial in enumerate(rung0):
        if i < 3:  # would have been the best three
            run.finish(trial, None, FAILED if i < 2 else METRICS_UNAVAILABLE)
        else:
            run.finish(trial, float(i))
    promoted = [without(t.assignments, "epochs") for t in run.suggest(9)]
    assert promoted == [without(rung0[i].assignments, "epochs") for i in (3, 4, 5)]


def test_a_rung_without_results_ends_its_bracket() -> None:
    run = Runner(hyperband(r_l="3", eta="3"))
    rung0 = run.suggest(3)
    for trial in rung0:
        run.finish(trial, None, FAILED)
    nxt = run.suggest(3)
    assert resources(nxt) == ["3", "3"]  # bracket 0: n = 2 fresh configurations at r = 3
    assert not {json.dumps(without(t.assignments, "epochs")) for t in nxt} & {
        json.dumps(without(t.assignments, "epochs")) for t in rung0
    }


def test_waits_while_any_trial_of_the_rung_runs() -> None:
    run = Runner(hyperband(r_l="9", eta="3"))
    assert len(run.suggest(4)) == 4  # a rung may be handed out over several calls
    assert len(run.suggest(10)) == 5
    trials = list(run.active.values())
    for trial in trials[:-1]:
        run.finish(trial, 1.0)
        assert run.suggest(10) == []
    run.finish(trials[-1], 2.0)
    assert len(run.suggest(10)) == 3


def test_the_whole_schedule_then_nothing() -> None:
    algorithm = hyperband(r_l="9", eta="3")
    run = Runner(algorithm)
    handed: list[TrialRecord] = []
    for _ in range(20):
        batch = run.suggest(100)
        handed += batch
        run.finish_all(batch)
    assert len(handed) == algorithm.total_trials == 23
    assert resources(handed) == ["1"] * 9 + ["3"] * 3 + ["9"] + ["3"] * 5 + ["9"] * 2 + ["9"] * 3
    assert run.suggest(100) == []


def test_resource_is_formatted_for_its_type() -> None:
    # r_l=8, eta=3: bracket 1 starts at 8/3, rounded for an int parameter; its last rung gets 8.
    run = Runner(hyperband(r_l="8", eta="3"))
    rung0 = run.suggest(3)
    assert resources(rung0) == ["3", "3", "3"]
    run.finish_all(rung0)
    assert resources(run.suggest(1)) == ["8"]

    double = SearchSpace(
        (Parameter("x", "double", min=0, max=1), Parameter("data", "double", min=0.1, max=10))
    )
    run = Runner(hyperband(double, resource_name="data", r_l="10", eta="3"))
    assert set(resources(run.suggest(9), "data")) == {"1.11111111111"}


def test_configurations_lie_in_the_space_apart_from_the_resource() -> None:
    run = Runner(hyperband(r_l="27", eta="3"))
    for _ in range(10):
        batch = run.suggest(50)
        for trial in batch:
            for param in SPACE:
                if param.name != "epochs":
                    assert param.contains(trial.assignments[param.name])
        run.finish_all(batch)


# --- state ------------------------------------------------------------------------------------


def test_state_survives_a_restart_in_the_middle_of_a_rung() -> None:
    original = hyperband(r_l="9", eta="3")
    run = Runner(original)
    rung0 = run.suggest(9)
    for i, trial in enumerate(rung0[:5]):
        run.finish(trial, float(i))
    state = json.loads(json.dumps(original.dump_state()))

    restarted = hyperband(r_l="9", eta="3")
    restarted.load_state(state)
    restarted.update(run.completed, list(run.active.values()))
    restarted.update(run.completed, [])  # re-fed history counts once
    assert restarted.suggest(5) == [] == original.suggest(5)
    for i, trial in enumerate(rung0[5:], start=5):
        done = TrialRecord(trial.name, trial.assignments, SUCCEEDED, float(i))
        original.update([done], [])
        restarted.update([done], [])
    assert restarted.suggest(5) == original.suggest(5)
    assert len(restarted.suggest(5)) == 0  # rung 1 (3 trials) running


def test_handed_out_but_never_created_is_handed_out_again_after_a_restart() -> None:
    original = hyperband(r_l="9", eta="3")
    run = Runner(original)
    run.suggest(6)
    lost = original.suggest(3)  # the controller stopped before creating these trials
    state = json.loads(json.dumps(original.dump_state()))

    restarted = hyperband(r_l="9", eta="3")
    restarted.load_state(state)
    restarted.update([], list(run.active.values()))
    assert restarted.suggest(9) == lost


def test_trials_are_matched_to_the_rung_by_name_once_seen() -> None:
    algorithm = hyperband(r_l="3", eta="3")
    rung0 = [TrialRecord(f"t-{i}", a, RUNNING) for i, a in enumerate(algorithm.suggest(3))]
    state = algorithm.dump_state()
    assert [m["trial"] for m in state["members"]] == [None, None, None]
    algorithm.update([], rung0[::-1])
    state = json.loads(json.dumps(algorithm.dump_state()))
    assert [m["trial"] for m in state["members"]] == [t.name for t in rung0]


# --- validation -------------------------------------------------------------------------------


def problems(
    space: SearchSpace = SPACE, parallel: int | None = 100, **settings: str
) -> list[tuple[str | None, str]]:
    return Hyperband.validate_space(
        space,
        settings=Hyperband.resolve_settings(settings),
        max_trial_count=None,
        parallel_trial_count=parallel,
    )


def test_r_l_and_resource_name_are_required() -> None:
    found = dict(Hyperband.validate_settings({"eta": "3"}))
    assert set(found) == {"r_l", "resource_name"}
    assert "must be set" in found["r_l"]
    assert set(dict(Hyperband.validate_settings({"r_l": "9"}))) == {"resource_name"}
    assert set(dict(Hyperband.validate_settings({"resource_name": "epochs"}))) == {"r_l"}


@pytest.mark.parametrize(
    ("settings", "bad"),
    [
        ({"r_l": "-1"}, "r_l"),
        ({"r_l": "0"}, "r_l"),
        ({"r_l": "lots"}, "r_l"),
        ({"r_l": "9", "eta": "1"}, "eta"),
        ({"r_l": "9", "eta": "0.5"}, "eta"),
        ({"r_l": "9", "eta": "three"}, "eta"),
        ({"r_l": "9", "resource_name": ""}, "resource_name"),
        ({"r_l": "9", "random_state": "1"}, "random_state"),
    ],
)
def test_bad_settings_are_named(settings: dict[str, str], bad: str) -> None:
    found = Hyperband.validate_settings({"resource_name": "epochs", **settings})
    assert [name for name, _ in found] == [bad], found


def test_resource_parameter_must_exist() -> None:
    found = problems(resource_name="steps", r_l="9")
    assert len(found) == 1 and found[0][0] is None
    assert "resource_name 'steps'" in found[0][1]


@pytest.mark.parametrize("kind", ["categorical", "discrete"])
def test_resource_parameter_must_be_numeric(kind: str) -> None:
    space = SearchSpace((Parameter("epochs", kind, values=("1", "2", "3")),))
    found = problems(space, resource_name="epochs", r_l="9")
    assert found == [("epochs", f"the resource_name parameter must be int or double, not {kind}")]


def test_parallel_trial_count_must_hold_the_first_bracket() -> None:
    assert problems(parallel=9, resource_name="epochs", r_l="9") == []
    found = problems(parallel=8, resource_name="epochs", r_l="9")
    assert len(found) == 1 and found[0][0] is None
    assert "parallelTrialCount must be not less than 9" in found[0][1]
    # eta defaults to 3; with eta=2, r_l=9 gives s_max=3 and a first bracket of 8.
    assert problems(parallel=8, resource_name="epochs", r_l="9", eta="2") == []
    assert problems(parallel=3, resource_name="epochs", r_l="2", eta="3") == []  # n = 1
