"""The median stopping rule, as Katib's medianstop."""

from __future__ import annotations

import pytest

from suggestion.algorithms.random import RandomSearch  # noqa: F401 - registry sanity
from suggestion.early_stopping import early_stopping_names, get_early_stopping
from suggestion.early_stopping.medianstop import MedianStop


def rule(maximize: bool = True, **settings: str) -> MedianStop:
    return MedianStop(metric="acc", maximize=maximize, settings=settings)


def test_registered_by_name() -> None:
    assert "medianstop" in early_stopping_names()
    assert get_early_stopping("medianstop") is MedianStop


def test_no_rule_before_min_trials_required() -> None:
    es = rule(min_trials_required="3", start_step="1")
    es.update({"a": 0.9, "b": 0.8})
    assert es.should_stop(10, 0.0) is None
    es.update({"c": 0.7})
    assert es.should_stop(10, 0.0) is not None


def test_start_step_and_median() -> None:
    es = rule(min_trials_required="3", start_step="4")
    es.update({"a": 0.9, "b": 0.8, "c": 0.5})
    assert es.should_stop(3, 0.1) is None  # too early
    decision = es.should_stop(4, 0.79)
    assert decision is not None
    assert decision.value == pytest.approx(0.8) and decision.comparison == "less"
    assert "acc less than 0.8" in str(decision)
    assert es.should_stop(4, 0.81) is None


def test_minimizing_stops_larger_values() -> None:
    es = rule(maximize=False, min_trials_required="1", start_step="1")
    es.update({"a": 1.0})
    assert es.should_stop(1, 0.5) is None
    decision = es.should_stop(1, 1.5)
    assert decision is not None and decision.comparison == "greater"


def test_same_trial_twice_counts_once() -> None:
    es = rule(min_trials_required="2", start_step="1")
    es.update({"a": 0.9})
    es.update({"a": 0.9})
    assert es.should_stop(5, 0.0) is None


@pytest.mark.parametrize("settings,name", [
    ({"min_trials_required": "0"}, "min_trials_required"),
    ({"start_step": "x"}, "start_step"),
    ({"bogus": "1"}, "bogus"),
])
def test_bad_settings_are_named(settings: dict[str, str], name: str) -> None:
    problems = MedianStop.validate_settings(settings)
    assert [p[0] for p in problems] == [name]
