"""PrometheusCollector, against a real HTTP server on a loopback port."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trial_runner.metrics import InvalidCollectorError, Observation, PrometheusCollector

T_2024 = 1704164645.0  # 2024-01-02T03:04:05Z
INTERVAL = 0.05


class Rejects:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, name: str, raw: str, reason: str) -> None:
        self.seen.append((name, raw, reason))


class MetricsServer:
    """Serves ``page`` at /metrics (other paths: 404); ``status`` and ``delay`` can be changed."""

    def __init__(self, port: int = 0) -> None:
        self.page = ""
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                server.requests += 1
                if server.delay:
                    time.sleep(server.delay)
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = server.page.encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    running = MetricsServer()
    yield running
    running.stop()


@pytest.fixture
def collectors() -> Iterator[list[PrometheusCollector]]:
    made: list[PrometheusCollector] = []
    yield made
    for collector in made:
        collector.close()


def scraper(
    collectors: list[PrometheusCollector],
    url: str,
    *,
    interval: float,
    on_reject: Callable[[str, str, str], None] | None = None,
) -> PrometheusCollector:
    names = ["accuracy", "loss", "requests_total"]
    collector = PrometheusCollector(url, names, interval=interval, on_reject=on_reject)
    collectors.append(collector)
    return collector


def poll_until(
    collector: PrometheusCollector,
    done: Callable[[list[Observation]], bool],
    timeout: float = 10.0,
) -> list[Observation]:
    found: list[Observation] = []
    deadline = time.monotonic() + timeout
    while not done(found):
        assert time.monotonic() < deadline, f"gave up; found {found}"
        found.extend(collector.poll())
        time.sleep(0.01)
    return found


def wait_for_scrapes(collector: PrometheusCollector, count: int) -> None:
    target = collector.scrapes + count
    deadline = time.monotonic() + 10
    while collector.scrapes < target:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def values(observations: list[Observation]) -> list[tuple[str, float]]:
    return [(o.name, o.value) for o in observations]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_server_not_up_yet_then_up(
    collectors: list[PrometheusCollector], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    collector = scraper(collectors, f"http://127.0.0.1:{port}/metrics", interval=INTERVAL)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        for _ in range(10):
            assert collector.poll() == []
            time.sleep(INTERVAL)
    assert caplog.text == ""  # refused connections are normal while the trial starts
    late = MetricsServer(port)
    try:
        late.page = "# TYPE accuracy gauge\naccuracy 0.5\n"
        found = poll_until(collector, lambda f: len(f) >= 1)
        assert values(found) == [("accuracy", 0.5)]
        assert found[0].step is None
        assert abs(found[0].timestamp - time.time()) < 10  # type: ignore[operator]
    finally:
        late.stop()


def test_values_that_change_between_scrapes_are_recorded_once_each(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy 0.5\nloss 2\n"
    collector = scraper(collectors, server.url, interval=INTERVAL)
    found = poll_until(collector, lambda f: len(f) >= 2)
    server.page = "accuracy 0.6\nloss 2\n"
    found += poll_until(collector, lambda f: len(f) >= 1)
    wait_for_scrapes(collector, 3)  # unchanged values add nothing
    found += collector.poll()
    server.page = "accuracy 0.5\nloss 2\n"  # back to an earlier value: a new point
    found += poll_until(collector, lambda f: len(f) >= 1)
    assert values(found) == [("accuracy", 0.5), ("loss", 2), ("accuracy", 0.6), ("accuracy", 0.5)]
    assert server.requests >= 5


def test_scrapes_are_no_more_frequent_than_the_interval(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy 1\n"
    collector = scraper(collectors, server.url, interval=0.5)
    started = time.monotonic()
    while time.monotonic() - started < 1.2:
        collector.poll()
        time.sleep(0.01)
    assert 2 <= server.requests <= 4


def test_labels_first_sample_or_the_unlabelled_one(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = (
        '# TYPE accuracy gauge\naccuracy{split="train"} 0.9\naccuracy{split="test"} 0.8\n'
        '# TYPE loss gauge\nloss{split="a"} 0.1\nloss 0.2\nloss{split="b"} 0.3\n'
        "# TYPE requests counter\nrequests_total 3\nrequests_created 1.7e9\n"
    )
    collector = scraper(collectors, server.url, interval=INTERVAL)
    found = poll_until(collector, lambda f: len(f) >= 3)
    assert sorted(values(found)) == [("accuracy", 0.9), ("loss", 0.2), ("requests_total", 3)]


def test_sample_timestamps_are_kept(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = f"accuracy 0.5 {int(T_2024 * 1000)}\n"
    collector = scraper(collectors, server.url, interval=INTERVAL)
    found = poll_until(collector, lambda f: len(f) >= 1)
    assert [(o.value, o.timestamp) for o in found] == [(0.5, T_2024)]


def test_nan_and_infinite_values_are_dropped_and_reported_once(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy NaN\nloss +Inf\n"
    rejects = Rejects()
    collector = scraper(collectors, server.url, interval=INTERVAL, on_reject=rejects)
    collector.poll()
    wait_for_scrapes(collector, 4)
    assert collector.poll() == []
    assert sorted(rejects.seen) == [("accuracy", "nan", "NaN"), ("loss", "inf", "infinite")]
    server.page = "accuracy 0.7\nloss 1\n"
    found = poll_until(collector, lambda f: len(f) >= 2)
    assert sorted(values(found)) == [("accuracy", 0.7), ("loss", 1)]


def test_a_slow_server_does_not_block_poll(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy 0.5\n"
    server.delay = 1.0
    collector = scraper(collectors, server.url, interval=INTERVAL)
    for _ in range(20):
        started = time.perf_counter()
        collector.poll()
        assert time.perf_counter() - started < 0.05
        time.sleep(0.01)


def test_finish_scrapes_once_more(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy 0.5\n"
    collector = scraper(collectors, server.url, interval=60)
    found = poll_until(collector, lambda f: len(f) >= 1)
    server.page = "accuracy 0.75\n"  # the next scrape of the thread is a minute away
    found += collector.finish()
    assert values(found) == [("accuracy", 0.5), ("accuracy", 0.75)]
    assert collector.poll() == [] and collector.finish() == []


def test_finish_keeps_what_was_scraped_when_the_server_is_gone(
    server: MetricsServer, collectors: list[PrometheusCollector]
) -> None:
    server.page = "accuracy 0.5\nloss 0.1\n"
    collector = scraper(collectors, server.url, interval=INTERVAL)
    # The first scrape may land before this poll takes the pending list: keep what it hands.
    early = collector.poll()
    wait_for_scrapes(collector, 1)
    server.stop()
    started = time.monotonic()
    found = collector.finish()  # the observations the thread found but poll didn't hand over
    assert time.monotonic() - started < 2
    assert sorted(values(early + found)) == [("accuracy", 0.5), ("loss", 0.1)]


def test_errors_and_bad_pages_dont_raise(
    server: MetricsServer,
    collectors: list[PrometheusCollector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.status = 500
    server.page = "accuracy 0.5\n"
    collector = scraper(collectors, server.url, interval=INTERVAL)
    with caplog.at_level(logging.WARNING, logger="katib.metrics"):
        for _ in range(5):
            assert collector.poll() == []
            time.sleep(INTERVAL)
        assert "HTTP 500" in caplog.text
        server.status = 200
        server.page = "accuracy 0.25\nthis is { not prometheus\nloss 3\n"
        found = poll_until(collector, lambda f: len(f) >= 1)
        assert values(found) == [("accuracy", 0.25)]  # the samples before the bad line
        assert "not in Prometheus text format" in caplog.text
    missing = scraper(collectors, server.url.replace("/metrics", "/other"), interval=INTERVAL)
    assert missing.poll() == []
    assert missing.finish() == []


def test_proxy_settings_are_ignored(
    server: MetricsServer,
    collectors: list[PrometheusCollector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    server.page = "loss 0.5\n"
    collector = scraper(collectors, server.url, interval=INTERVAL)
    assert values(poll_until(collector, lambda f: len(f) >= 1)) == [("loss", 0.5)]


@pytest.mark.parametrize(
    ("url", "interval"),
    [("ftp://127.0.0.1/metrics", 1.0), ("127.0.0.1:8080/metrics", 1.0), ("http://h/m", 0.0)],
)
def test_bad_settings_raise_when_built(url: str, interval: float) -> None:
    with pytest.raises(InvalidCollectorError):
        PrometheusCollector(url, ["accuracy"], interval=interval)
