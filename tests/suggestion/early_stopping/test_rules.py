"""ASHA, the percentile rule and the threshold rule, and the contract every rule keeps.

The contract tests run over every registered rule: each is a pure function of the
histories it is told (same calls, same decisions), a finished trial told twice counts once,
bad settings are named, and the controller's full interface works whichever pair a rule
implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from suggestion import EARLY_STOPPED, FAILED, RUNNING, SUCCEEDED
from suggestion.early_stopping import (
    EarlyStopping,
    TrialHistory,
    early_stopping_names,
    get_early_stopping,
)
from suggestion.early_stopping.asha import AsynchronousSuccessiveHalving
from suggestion.early_stopping.percentile import PercentileStop
from suggestion.early_stopping.threshold import ThresholdStop

# Settings each rule is built with in the shared tests (a rule with a required setting), by
# direction: the shared scenario's values are negated when maximizing.
EXAMPLE_SETTINGS: dict[str, dict[bool, dict[str, str]]] = {
    "threshold": {False: {"threshold": "10"}, True: {"threshold": "-10"}},
}


def example_settings(name: str, maximize: bool = False) -> dict[str, str]:
    return dict(EXAMPLE_SETTINGS.get(name, {}).get(maximize, {}))


def build(name: str, maximize: bool = False, **settings: str) -> EarlyStopping:
    cls = get_early_stopping(name)
    full = {**example_settings(name, maximize), **settings}
    assert cls.validate_settings(full) == []
    return cls(metric="loss", maximize=maximize, settings=full)


def done(name: str, values: list[float], state: str = SUCCEEDED) -> TrialHistory:
    return TrialHistory(name, tuple(values), state)


def running(name: str, values: list[float]) -> TrialHistory:
    return TrialHistory(name, tuple(values), RUNNING)


# --- registry -------------------------------------------------------------------------------


def test_rules_are_registered() -> None:
    assert {"medianstop", "asha", "percentile", "threshold"} <= set(early_stopping_names())
    assert get_early_stopping("asha") is AsynchronousSuccessiveHalving
    assert get_early_stopping("percentile") is PercentileStop
    assert get_early_stopping("threshold") is ThresholdStop


# --- the contract, over every registered rule -----------------------------------------------


@pytest.fixture(params=early_stopping_names())
def rule_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def play(rule: EarlyStopping, maximize: bool) -> list[Any]:
    """A fixed scenario: finished trials, then running ones reporting step by step."""
    sign = -1.0 if maximize else 1.0
    rule.observe(
        [
            done("a", [sign * v for v in (9, 7, 5, 4, 3, 2, 2, 1, 1)]),
            done("b", [sign * v for v in (8, 8, 6, 6, 5, 5, 4, 4, 3)]),
            done("c", [sign * v for v in (9, 9, 9, 8, 8, 8, 7, 7, 7)], EARLY_STOPPED),
            done("d", [], FAILED),
            done("e", [sign * v for v in (4, 3, 2, 1, 1, 1, 1, 1, 1)]),
        ]
    )
    decisions = []
    for n in range(1, 10):
        for name, level in (("good", 1.0), ("bad", 20.0), ("mid", 5.0)):
            decision = rule.check(running(name, [sign * level] * n))
            decisions.append((name, n, None if decision is None else str(decision)))
    return decisions


@pytest.mark.parametrize("maximize", [False, True])
def test_a_rule_is_a_pure_function_of_what_it_is_told(rule_name: str, maximize: bool) -> None:
    assert play(build(rule_name, maximize), maximize) == play(build(rule_name, maximize), maximize)


@pytest.mark.parametrize("maximize", [False, True])
def test_a_good_trial_is_never_stopped_and_a_bad_one_is(rule_name: str, maximize: bool) -> None:
    decisions = play(build(rule_name, maximize), maximize)
    assert not [d for d in decisions if d[0] == "good" and d[2] is not None]
    stopped = [d for d in decisions if d[0] == "bad" and d[2] is not None]
    assert stopped, f"{rule_name} never stopped a trial far behind every other"
    message = stopped[0][2]
    assert message.startswith("loss " + ("less" if maximize else "greater") + " than")


def test_a_finished_trial_told_twice_counts_once(rule_name: str) -> None:
    once, twice = build(rule_name), build(rule_name)
    history = [done("a", [1.0, 1.0, 1.0, 1.0]), done("b", [2.0, 2.0, 2.0, 2.0])]
    once.observe(history)
    twice.observe(history)
    twice.observe(history[:1])
    for n in range(1, 6):
        probe = running("x", [1.5] * n)
        assert (once.check(probe) is None) == (twice.check(probe) is None)


def test_an_empty_history_is_never_stopped(rule_name: str) -> None:
    assert build(rule_name).check(running("x", [])) is None


def test_unknown_settings_are_named(rule_name: str) -> None:
    problems = get_early_stopping(rule_name).validate_settings(
        {**example_settings(rule_name), "bogus": "1"}
    )
    assert [p[0] for p in problems] == ["bogus"]


# --- ASHA -----------------------------------------------------------------------------------


def asha(maximize: bool = False, **settings: str) -> AsynchronousSuccessiveHalving:
    rule = build("asha", maximize, **settings)
    assert isinstance(rule, AsynchronousSuccessiveHalving)
    return rule


def test_asha_rungs_are_geometric_in_reports() -> None:
    rule = asha(min_resource="2", reduction_factor="3", min_early_stopping_rate="1")
    assert [rule.rung_step(k) for k in range(4)] == [6, 18, 54, 162]
    assert rule.rungs_reached(5) == 0
    assert rule.rungs_reached(6) == 1
    assert rule.rungs_reached(53) == 2


def test_asha_keeps_the_top_third_of_a_rung() -> None:
    rule = asha()  # rungs at 1, 3, 9 reports
    rule.observe([done(n, [v]) for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))])
    assert rule.rung_sizes() == {0: 4}
    # Five values at rung 0 with this one: the best 5 // 3 = 1 goes on.
    assert rule.check(running("x", [0.5])) is None  # the best: goes on
    # Six with this one: the best two (0.5 and 1.0) go on.
    decision = rule.check(running("y", [1.5]))
    assert decision is not None
    assert decision.value == pytest.approx(1.0)
    assert decision.start_step == 1
    assert "top 1/3 of 6 trials at rung 0" in str(decision)


def test_asha_judges_a_trial_once_per_rung() -> None:
    rule = asha()
    rule.observe([done("a", [1.0, 1.0, 1.0])])
    assert rule.check(running("x", [0.9])) is None  # rung 0, best
    # Worse values later at steps 2 (no rung) do not reopen rung 0.
    assert rule.check(running("x", [0.9, 5.0])) is None
    # Rung 1 (step 3) compares x's third value with a's.
    decision = rule.check(running("x", [0.9, 5.0, 5.0]))
    assert decision is not None and decision.start_step == 3


def test_asha_first_trial_at_a_rung_goes_on() -> None:
    rule = asha()
    assert rule.check(running("x", [100.0] * 10)) is None
    assert rule.rung_sizes() == {0: 1, 1: 1, 2: 1}


def test_asha_is_asynchronous_with_parallel_trials() -> None:
    # Three trials run side by side; none has finished. Each is judged on arrival.
    rule = asha(reduction_factor="2")
    assert rule.check(running("t1", [3.0])) is None  # alone at rung 0
    assert rule.check(running("t2", [1.0])) is None  # better than t1
    decision = rule.check(running("t3", [2.0]))  # 3 values, top 3 // 2 = 1: only t2
    assert decision is not None
    # t1 was judged already: reporting more does not stop it at rung 0 after the fact.
    assert rule.check(running("t1", [3.0, 1.0])) is None


def test_asha_several_rungs_at_once() -> None:
    # Reports can arrive in batches: a trial that jumps past two rungs is judged at each.
    rule = asha()
    rule.observe([done("a", [1.0] * 9), done("b", [1.0] * 9), done("c", [1.0] * 9)])
    decision = rule.check(running("x", [0.5, 0.5, 9.0, 9.0]))  # fine at rung 0, bad at rung 1
    assert decision is not None and decision.start_step == 3


def test_asha_maximizing_keeps_the_largest() -> None:
    rule = asha(maximize=True)
    rule.observe([done("a", [0.9]), done("b", [0.8]), done("c", [0.7])])
    assert rule.check(running("x", [0.95])) is None
    decision = rule.check(running("y", [0.85]))
    assert decision is not None and decision.comparison == "less"


def test_asha_min_trials_required() -> None:
    rule = asha(min_trials_required="3")
    rule.observe([done("a", [1.0])])
    assert rule.check(running("x", [5.0])) is None  # two values at rung 0
    decision = rule.check(running("y", [5.0]))
    assert decision is not None


@pytest.mark.parametrize(
    ("settings", "name"),
    [
        ({"reduction_factor": "1"}, "reduction_factor"),
        ({"reduction_factor": "2.5"}, "reduction_factor"),
        ({"min_resource": "0"}, "min_resource"),
        ({"min_early_stopping_rate": "-1"}, "min_early_stopping_rate"),
        ({"min_trials_required": "zero"}, "min_trials_required"),
    ],
)
def test_asha_bad_settings_are_named(settings: Mapping[str, str], name: str) -> None:
    assert [p[0] for p in AsynchronousSuccessiveHalving.validate_settings(settings)] == [name]


# --- percentile -----------------------------------------------------------------------------


def test_percentile_compares_best_so_far_at_the_same_step() -> None:
    rule = build("percentile", percentile="50", min_trials_required="3", start_step="2")
    rule.observe(
        [
            done("a", [5.0, 1.0, 1.0]),
            done("b", [5.0, 2.0, 2.0]),
            done("c", [5.0, 3.0]),
            done("d", [9.0]),  # never reached step 2: not compared there
        ]
    )
    assert rule.check(running("x", [9.0])) is None  # before start_step
    assert rule.check(running("x", [9.0, 2.0])) is None  # median at step 2 is 2
    decision = rule.check(running("y", [9.0, 2.5]))
    assert decision is not None
    assert decision.value == pytest.approx(2.0)
    assert "50th percentile of 3 finished trials at step 2" in str(decision)
    # At step 3 only two finished trials reported: too few to judge.
    assert rule.check(running("z", [9.0, 9.0, 9.0])) is None


def test_percentile_uses_the_best_value_so_far() -> None:
    rule = build("percentile", percentile="50", min_trials_required="1", start_step="1")
    rule.observe([done("a", [1.0, 1.0, 1.0])])
    # A trial that was once as good keeps going though its latest value is worse.
    assert rule.check(running("x", [1.0, 3.0, 3.0])) is None


def test_percentile_25_is_stricter_than_75() -> None:
    finished = [done(str(i), [float(i)] * 4) for i in range(1, 9)]
    strict = build("percentile", percentile="25")
    lenient = build("percentile", percentile="75")
    strict.observe(finished)
    lenient.observe(finished)
    probe = running("x", [4.0] * 4)
    assert strict.check(probe) is not None
    assert lenient.check(probe) is None


def test_percentile_maximizing() -> None:
    rule = build("percentile", maximize=True, percentile="25", min_trials_required="1",
                 start_step="1")
    rule.observe([done(str(i), [float(i)]) for i in range(1, 9)])
    assert rule.check(running("x", [8.0])) is None
    decision = rule.check(running("y", [5.0]))
    assert decision is not None and decision.comparison == "less"


def test_percentile_ignores_failed_trials() -> None:
    rule = build("percentile", min_trials_required="1", start_step="1")
    rule.observe([done("f", [0.0], FAILED)])
    assert rule.check(running("x", [9.0])) is None


@pytest.mark.parametrize("value", ["0", "100", "-5", "half"])
def test_percentile_out_of_range_is_named(value: str) -> None:
    problems = PercentileStop.validate_settings({"percentile": value})
    assert [p[0] for p in problems] == ["percentile"]


# --- threshold ------------------------------------------------------------------------------


def test_threshold_stops_from_the_first_trial() -> None:
    rule = build("threshold", threshold="10", start_step="2")
    assert rule.check(running("x", [50.0])) is None  # before start_step
    decision = rule.check(running("x", [50.0, 12.0]))
    assert decision is not None
    assert str(decision) == "loss greater than 10 (the threshold) after 2 reports"
    assert rule.check(running("y", [50.0, 9.0])) is None  # the latest value counts


def test_threshold_maximizing() -> None:
    rule = build("threshold", maximize=True, threshold="0.2")
    decision = rule.check(running("x", [0.1]))
    assert decision is not None and decision.comparison == "less"
    assert rule.check(running("y", [0.3])) is None


def test_threshold_is_required_and_a_number() -> None:
    assert [p[0] for p in ThresholdStop.validate_settings({})] == ["threshold"]
    problems = ThresholdStop.validate_settings({"threshold": "high"})
    assert [p[0] for p in problems] == ["threshold"]
    assert "number" in problems[0][1]


# --- the simple interface still works -------------------------------------------------------


def test_a_rule_with_the_simple_pair_gets_means_of_succeeded_trials() -> None:
    seen: list[dict[str, float]] = []

    class Simple(EarlyStopping):
        name = "simple"

        def update(self, completed: Mapping[str, float]) -> None:
            seen.append(dict(completed))

        def should_stop(self, reports: int, latest: float) -> Any:
            return (reports, latest)

    rule = Simple(metric="loss", maximize=False)
    rule.observe([done("a", [1.0, 3.0]), done("b", [5.0], EARLY_STOPPED), done("c", [])])
    assert seen == [{"a": 2.0}]
    assert rule.check(running("x", [4.0, 7.0])) == (2, 7.0)
