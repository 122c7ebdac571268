"""The server's own Prometheus metrics, in a registry of its own (none at import).

``katib_experiments{condition}`` and ``katib_trials{state}`` are read from the database when
scraped; ``katib_api_request_duration_seconds{method,route}`` times every request by its
route template (``/api/v1/namespaces/{namespace}/experiments``), never by its raw path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Receive, Scope, Send

from katib.controller import BackgroundController
from katib.records import ExperimentCondition, TrialState
from katib.storage import Storage

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StorageCollector(Collector):
    def __init__(self, storage: Storage, controller: BackgroundController | None) -> None:
        self.storage = storage
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("katib_database_up", "Whether the database answered the scrape.")
        try:
            conditions = self.storage.condition_counts()
            states = self.storage.state_counts()
        except Exception:  # noqa: BLE001 - a scrape reports the outage instead of failing
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        experiments = GaugeMetricFamily(
            "katib_experiments", "Experiments by condition.", labels=["condition"]
        )
        for condition in ExperimentCondition:
            experiments.add_metric([condition.value], conditions.get(condition, 0))
        yield experiments
        trials = GaugeMetricFamily("katib_trials", "Trials by state.", labels=["state"])
        for state in TrialState:
            trials.add_metric([state.value], states.get(state, 0))
        yield trials
        if self.controller is not None:
            yield GaugeMetricFamily(
                "katib_controller_experiments",
                "Experiments this server's controller is driving.",
                value=self.controller.experiments(),
            )


class Metrics:
    """The registry of one app, and the middleware that times its requests."""

    def __init__(self, storage: Storage, controller: BackgroundController | None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "katib_api_request_duration_seconds",
            "REST API request latency by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StorageCollector(storage, controller))


class LatencyMiddleware:
    """Pure ASGI middleware (no per-request task) that observes request latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(scope.get("method", ""), template).observe(
                time.perf_counter() - start
            )
