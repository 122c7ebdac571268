"""Pushing metrics: the client, the loopback endpoint, and bad input."""

from __future__ import annotations

import queue

import pytest

from katib import ReportError, report_metrics
from katib.controller import parse_observations
from katib.controller._push_server import PushServer
from trial_runner import MetricsReported, Observation

Event = MetricsReported


@pytest.fixture
def server() -> tuple[PushServer, queue.Queue[Event]]:
    events: queue.Queue[Event] = queue.Queue()

    def deliver(namespace: str, trial: str, observations: list[Observation]) -> bool:
        if (namespace, trial) != ("default", "exp-abc"):
            return False
        events.put(MetricsReported(trial, observations))
        return True

    push = PushServer(deliver)
    push.start()
    yield push, events
    push.stop()


@pytest.fixture
def trial_env(monkeypatch: pytest.MonkeyPatch, server: tuple[PushServer, object]) -> None:
    push, _ = server
    monkeypatch.setenv("KATIB_TRIAL_NAME", "exp-abc")
    monkeypatch.setenv("KATIB_NAMESPACE", "default")
    monkeypatch.setenv("KATIB_API_URL", push.url)
    monkeypatch.setenv("KATIB_API_TOKEN", push.token)


def test_report_metrics_reaches_the_controller(
    server: tuple[PushServer, queue.Queue[Event]], trial_env: None
) -> None:
    _, events = server
    report_metrics({"loss": 0.25, "accuracy": "0.9"}, step=3)
    event = events.get(timeout=5)
    assert isinstance(event, MetricsReported) and event.trial == "exp-abc"
    assert [(o.name, o.value, o.step) for o in event.observations] == [
        ("loss", 0.25, 3), ("accuracy", 0.9, 3)]


@pytest.mark.parametrize("metrics", [{"loss": float("nan")}, {"loss": "abc"},
                                     {"loss": float("inf")}])
def test_bad_values_are_refused_before_sending(trial_env: None,
                                               metrics: dict[str, object]) -> None:
    with pytest.raises(ReportError, match="loss"):
        report_metrics(metrics)  # type: ignore[arg-type]


def test_wrong_token_and_unknown_trial_are_refused(
    trial_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KATIB_API_TOKEN", "wrong")
    with pytest.raises(ReportError, match="401"):
        report_metrics({"loss": 1.0}, retries=0)


def test_unknown_trial(trial_env: None) -> None:
    with pytest.raises(ReportError, match="not running here"):
        report_metrics({"loss": 1.0}, trial_name="exp-zzz", retries=0)


def test_no_endpoint_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KATIB_API_URL", raising=False)
    monkeypatch.setenv("KATIB_TRIAL_NAME", "x")
    with pytest.raises(ReportError, match="KATIB_API_URL"):
        report_metrics({"loss": 1.0})


def test_unreachable_endpoint_retries_then_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KATIB_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("KATIB_TRIAL_NAME", "x")
    with pytest.raises(ReportError, match="after 2 attempts"):
        report_metrics({"loss": 1.0}, retries=1, timeout=1)


@pytest.mark.parametrize("body,message", [
    ([], "JSON object"),
    ({"observations": "x"}, "observations"),
    ({"observations": [{"value": 1}]}, "observations[0]: needs a string 'name'"),
    ({"observations": [{"name": "a", "value": True}]}, "observations[0].value"),
    ({"observations": [{"name": "a", "value": 1, "step": 1.5}]}, "observations[0].step"),
    ({"observations": [{"name": "a", "value": "nan"}]}, "finite"),
])
def test_bad_bodies_name_the_problem(body: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_observations(body)


def test_metrics_shorthand() -> None:
    [obs] = parse_observations({"metrics": {"loss": 2}})
    assert (obs.name, obs.value, obs.step) == ("loss", 2.0, None)
