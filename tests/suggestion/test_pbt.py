"""Population based training: generations, parents, exploit and explore, re-runs, validation."""

from __future__ import annotations

import json
from collections.abc import Sequence

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
from suggestion.algorithms.pbt import (
    GENERATION_LABEL,
    PARENT_LABEL,
    PopulationBasedTraining,
)

SPACE = SearchSpace(
    (
        Parameter("lr", "double", min=1e-4, max=0.1, distribution="logUniform"),
        Parameter("momentum", "double", min=0.0, max=0.99, step=0.01),
        Parameter("layers", "int", min=1, max=12),
        Parameter("batch", "discrete", values=("16", "32", "64", "128")),
        Parameter("optimizer", "categorical", values=("sgd", "adam", "ftrl")),
    )
)
# The parameter of Katib's simple-pbt example (examples/v1beta1/hp-tuning/simple-pbt.yaml).
KATIB_SPACE = SearchSpace((Parameter("lr", "double", min=0.0001, max=0.02, step=0.0001),))
BASE = {"suggestion_trial_dir": "/var/log/katib/checkpoints/", "n_population": "5"}


def pbt(
    space: SearchSpace = SPACE, *, maximize: bool = True, **settings: str
) -> PopulationBasedTraining:
    settings = {**BASE, "truncation_threshold": "0.2", **settings}
    assert PopulationBasedTraining.validate_settings(settings) == []
    return PopulationBasedTraining(space, maximize=maximize, settings=settings)


class Run:
    """The controller's part: names trials, labels them, reports them active and finished."""

    def __init__(self, algorithm: PopulationBasedTraining) -> None:
        self.algorithm = algorithm
        self.active: dict[str, TrialRecord] = {}
        self.trials: dict[str, TrialRecord] = {}
        self.completed: list[TrialRecord] = []

    def suggest(self, count: int) -> list[TrialRecord]:
        new = []
        for assignments in self.algorithm.suggest(count):
            labels = self.algorithm.labels_for(assignments)
            trial = TrialRecord(f"t-{len(self.trials) + 1}", assignments, RUNNING, labels=labels)
            self.trials[trial.name] = trial
            self.active[trial.name] = trial
            new.append(trial)
        self.algorithm.update([], list(self.active.values()))
        return new

    def finish(self, trial: TrialRecord, value: float | None, state: str = SUCCEEDED) -> None:
        del self.active[trial.name]
        done = TrialRecord(trial.name, trial.assignments, state, value, labels=trial.labels)
        self.completed.append(done)
        self.algorithm.update([done], list(self.active.values()))


def generation(trial: TrialRecord) -> int:
    return int(trial.labels[GENERATION_LABEL])


def assert_in_space(space: SearchSpace, trial: TrialRecord) -> None:
    for param in space:
        text = trial.assignments[param.name]
        assert param.contains(text), (param.name, text)
        if param.step:
            k = (float(text) - param.low) / param.step
            assert abs(k - round(k)) < 1e-6, (param.name, text)


def first_generation(run: Run, values: Sequence[float]) -> list[TrialRecord]:
    """Population 5 plus one more random trial (Katib forms a generation from more than
    n_population finished trials), finished with ``values``."""
    trials = run.suggest(5)
    trials += run.suggest(1)
    for trial, value in zip(trials, values, strict=True):
        run.finish(trial, value)
    return trials


def test_registered_as_pbt() -> None:
    assert get_algorithm("pbt") is PopulationBasedTraining


def test_first_generation_is_random_without_parent() -> None:
    run = Run(pbt())
    trials = run.suggest(5)
    assert len(trials) == 5
    assert len({SPACE.key(t.assignments) for t in trials}) == 5
    for trial in trials:
        assert trial.labels == {GENERATION_LABEL: "0"}
        assert_in_space(SPACE, trial)
    # Until more than n_population trials have finished, more random trials of generation 0.
    for trial in trials:
        run.finish(trial, 1.0)
    (extra,) = run.suggest(1)
    assert extra.labels == {GENERATION_LABEL: "0"}


def test_next_generation_has_parents_from_history_and_one_generation_more() -> None:
    run = Run(pbt())
    parents = first_generation(run, [float(i) for i in range(6)])
    children = run.suggest(5)
    assert len(children) == 5
    names = {t.name for t in parents}
    for child in children:
        assert child.labels[PARENT_LABEL] in names
        assert generation(child) == generation(run.trials[child.labels[PARENT_LABEL]]) + 1 == 1
        assert_in_space(SPACE, child)
    for child in children:
        run.finish(child, 10.0)
    # Five of generation 1 finished, not more than n_population: Katib samples the previous
    # generation again.
    (cousin,) = run.suggest(1)
    assert generation(cousin) == 1 and cousin.labels[PARENT_LABEL] in names
    run.finish(cousin, 10.0)
    # Six finished: they become the population that generation 2 comes from.
    grandchildren = run.suggest(5)
    generation_1 = {c.name for c in [*children, cousin]}
    assert {generation(g) for g in grandchildren} == {2}
    assert {g.labels[PARENT_LABEL] for g in grandchildren} <= generation_1


@pytest.mark.parametrize("maximize", [True, False])
def test_exploit_takes_the_top_members(maximize: bool) -> None:
    # Six members valued 0..5 cut at the 0.5 quantile: bottom {0, 1, 2}, top {3, 4, 5}. Two
    # bottom slots (int(5 * 0.5)) go to children of top members; the other three children
    # explore the non-bottom members, which here are exactly the top ones.
    run = Run(pbt(maximize=maximize, truncation_threshold="0.5", resample_probability="0"))
    values = [float(i) for i in range(6)]
    members = first_generation(run, values)
    ranked = sorted(members, key=lambda t: values[members.index(t)], reverse=maximize)
    top = {t.name for t in ranked[:3]}
    children = run.suggest(5)
    parents = [c.labels[PARENT_LABEL] for c in children]
    assert set(parents) == top, "every top member is explored, and only top members are parents"
    for child in children:
        # resample_probability 0 keeps every value: a child carries its parent's assignments.
        assert child.assignments == run.trials[child.labels[PARENT_LABEL]].assignments


def test_trials_without_a_value_rank_last() -> None:
    run = Run(pbt(truncation_threshold="0.5", resample_probability="0"))
    trials = run.suggest(5) + run.suggest(1)
    for i, trial in enumerate(trials):
        run.finish(trial, None if i < 3 else float(i), state=SUCCEEDED)
    parents = {c.labels[PARENT_LABEL] for c in run.suggest(5)}
    assert parents == {t.name for t in trials[3:]}


def test_explore_perturbs_each_value_within_the_space() -> None:
    run = Run(pbt(truncation_threshold="0"))  # no exploit: every child explores its parent
    first_generation(run, [1.0] * 6)
    children = run.suggest(5)
    for child in children:
        parent = run.trials[child.labels[PARENT_LABEL]].assignments
        assert_in_space(SPACE, child)
        lr = float(child.assignments["lr"])
        assert any(
            abs(lr - min(max(float(parent["lr"]) * f, 1e-4), 0.1)) < 1e-9 for f in (0.8, 1.2)
        )
        layers = int(child.assignments["layers"])
        assert layers in {min(max(round(int(parent["layers"]) * f), 1), 12) for f in (0.8, 1.2)}
        for name in ("batch", "optimizer"):
            values = SPACE[name].values
            i = values.index(parent[name])
            neighbours = {values[(i - 1) % len(values)], values[(i + 1) % len(values)]}
            assert child.assignments[name] in neighbours


def test_many_generations_stay_inside_the_space() -> None:
    for settings in ({}, {"resample_probability": "0.5"}, {"resample_probability": "1"}):
        run = Run(pbt(**settings))
        for step in range(80):
            for trial in run.suggest(3):
                assert_in_space(SPACE, trial)
            for i, trial in enumerate(list(run.active.values())[:2]):
                run.finish(trial, float((step * 7 + i) % 11))
        assert max(generation(t) for t in run.trials.values()) >= 3


def test_katib_example_space_perturbs_on_its_step_grid() -> None:
    run = Run(pbt(KATIB_SPACE, n_population="40", truncation_threshold="0.2"))
    for _ in range(60):
        for trial in run.suggest(2):
            assert_in_space(KATIB_SPACE, trial)
        for trial in list(run.active.values())[:2]:
            run.finish(trial, float(trial.assignments["lr"]))
    assert max(generation(t) for t in run.trials.values()) >= 1


def test_failed_or_killed_members_run_again_from_the_same_place() -> None:
    run = Run(pbt())
    first_generation(run, [float(i) for i in range(6)])
    child, *others = run.suggest(5)
    run.finish(child, None, FAILED)
    again = run.suggest(1)[0]
    assert again.assignments == child.assignments
    assert again.labels == child.labels  # same generation, same parent checkpoint


def test_a_repeated_assignment_waits_while_its_twin_has_no_trial() -> None:
    # Two values only: the population repeats them, and so do children that keep their
    # parent's value (resample_probability 0). Children of different parents with the same
    # assignments must not go out together, or labels_for could not tell their parents apart.
    space = SearchSpace((Parameter("opt", "categorical", values=("a", "b")),))
    algorithm = pbt(space, truncation_threshold="0", resample_probability="0")
    run = Run(algorithm)
    first_generation(run, [1.0] * 6)
    handed = 0
    for _ in range(4):
        batch = algorithm.suggest(5)
        labels = [algorithm.labels_for(a) for a in batch]
        by_value: dict[str, set[str]] = {}
        for assignments, label in zip(batch, labels, strict=True):
            parent = label[PARENT_LABEL]
            assert run.trials[parent].assignments == assignments
            by_value.setdefault(assignments["opt"], set()).add(parent)
        assert all(len(parents) == 1 for parents in by_value.values()), by_value
        handed += len(batch)
        # The controller creates the trials; once seen, their twins may go out.
        for i, (assignments, label) in enumerate(zip(batch, labels, strict=True)):
            trial = TrialRecord(f"c-{handed}-{i}", assignments, RUNNING, labels=label)
            run.trials[trial.name] = trial
            run.active[trial.name] = trial
        algorithm.update([], list(run.active.values()))
    assert handed >= 5


def test_state_survives_dump_and_load_with_history_refed() -> None:
    original = pbt()
    run = Run(original)
    first_generation(run, [float(i) for i in range(6)])
    children = run.suggest(3)
    run.finish(children[0], 7.0)
    run.finish(children[1], None, FAILED)
    pending = original.suggest(2)  # handed out, trials created after the state was stored
    state = json.loads(json.dumps(original.dump_state()))
    pending_trials = [
        TrialRecord(f"p-{i}", a, RUNNING, labels=original.labels_for(a))
        for i, a in enumerate(pending)
    ]
    active = [*run.active.values(), *pending_trials]

    restarted = pbt()
    restarted.load_state(state)
    restarted.update(run.completed, active)
    restarted.update(run.completed[:3], [])  # re-fed trials count once
    original.update([], active)
    for _ in range(3):
        a, b = original.suggest(2), restarted.suggest(2)
        assert a == b
        assert [original.labels_for(x) for x in a] == [restarted.labels_for(x) for x in b]
        names = [f"n-{i}-{len(active)}" for i in range(len(a))]
        new = [
            TrialRecord(n, x, SUCCEEDED, 3.0, labels=original.labels_for(x))
            for n, x in zip(names, a, strict=True)
        ]
        original.update(new, [])
        restarted.update(new, [])


def test_handed_out_but_never_created_is_handed_out_again_after_a_restart() -> None:
    original = pbt()
    lost = original.suggest(3)
    labels = [original.labels_for(a) for a in lost]
    restarted = pbt()
    restarted.load_state(json.loads(json.dumps(original.dump_state())))
    restarted.update([], [])
    again = restarted.suggest(3)
    assert again == lost
    assert [restarted.labels_for(a) for a in again] == labels


def test_trials_it_did_not_make_are_taken_in_by_their_labels() -> None:
    algorithm = pbt()
    foreign = [
        TrialRecord(
            f"old-{i}", {**a, "lr": "0.01"}, SUCCEEDED, float(i), labels={GENERATION_LABEL: "3"}
        )
        for i, a in enumerate(pbt().suggest(6))
    ]
    algorithm.update(foreign, [])
    children = algorithm.suggest(5)
    assert {algorithm.labels_for(c)[GENERATION_LABEL] for c in children} == {"4"}


# --- validation -------------------------------------------------------------------------------


def named(settings: dict[str, str]) -> list[str]:
    return [name for name, _ in PopulationBasedTraining.validate_settings(settings)]


def test_required_settings_are_named() -> None:
    assert named({}) == ["suggestion_trial_dir", "n_population", "truncation_threshold"]
    assert named({**BASE}) == ["truncation_threshold"]
    assert named({**BASE, "truncation_threshold": "0.2"}) == []


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("n_population", "4"),
        ("n_population", "five"),
        ("truncation_threshold", "1.5"),
        ("truncation_threshold", "-0.1"),
        ("resample_probability", "2"),
        ("resample_probability", "None"),
        ("suggestion_trial_dir", " "),
        ("random_state", "1"),
    ],
)
def test_bad_settings_are_named(setting: str, value: str) -> None:
    settings = {**BASE, "truncation_threshold": "0.2", setting: value}
    assert named(settings) == [setting]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("n_population", "5"),
        ("truncation_threshold", "0"),
        ("truncation_threshold", "1"),
        ("resample_probability", "0"),
        ("resample_probability", "1"),
    ],
)
def test_bounds_are_inclusive(setting: str, value: str) -> None:
    assert named({**BASE, "truncation_threshold": "0.2", setting: value}) == []
