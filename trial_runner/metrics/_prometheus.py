"""Katib's PrometheusMetric collector: the metrics a trial serves over HTTP, scraped as it runs.

A small background thread scrapes the trial's endpoint (``source.httpGet``) every
``interval`` seconds, so that a slow or hung server never holds up the launcher's reader
thread; ``poll`` only hands over what the thread found.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from trial_runner.metrics._collector import Collector, InvalidCollectorError, logger
from trial_runner.metrics._stdout import Observation, RejectCallback

__all__ = ["PrometheusCollector"]

#: A page larger than this is cut at its last complete line: a trial's metrics are small.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: How long the scrape in ``finish`` waits; by then the trial's server is usually gone.
FINAL_SCRAPE_TIMEOUT = 0.5


class PrometheusCollector(Collector):
    """Scrapes a trial's Prometheus endpoint, in the text exposition format.

    * The first :meth:`poll` starts a background thread that scrapes at once and then every
      ``interval`` seconds; ``poll`` never waits for the network.
    * A metric's value is the sample of that name (``accuracy`` for a gauge,
      ``requests_total`` for a counter); of several samples with labels, the one without
      labels is taken, else the first on the page.
    * An observation is recorded when a metric's value differs from the one recorded before,
      so a value served unchanged for an hour is one point, not 3,600. Its time is the
      sample's timestamp if the page gives one, else the time of the scrape; it has no step.
    * NaN and infinite values are dropped (and reported to ``on_reject`` once per change).
    * A server that isn't up yet (connection refused) is normal and only logged at debug
      level; other failures are logged once as warnings, and scraping goes on.
    * :meth:`finish` tries one last scrape, but what earlier scrapes found is kept either
      way: the server usually ends with the trial.

    Args:
        url: the endpoint, ``http://127.0.0.1:<port><path>`` for a local trial's ``httpGet``.
        metric_names: the metrics to keep.
        interval: seconds between scrapes.
        on_reject: told about dropped values of tracked metrics.

    Raises:
        InvalidCollectorError: the URL isn't http(s) with a host, or interval isn't positive.
    """

    def __init__(
        self,
        url: str,
        metric_names: Iterable[str],
        *,
        interval: float = 1.0,
        on_reject: RejectCallback | None = None,
    ) -> None:
        super().__init__(metric_names, on_reject=on_reject)
        # Imported here, not with the package: it costs ~0.1 s that other trials needn't pay.
        from prometheus_client.parser import text_string_to_metric_families

        self._parse_page: Callable[[str], Iterable[Any]] = text_string_to_metric_families
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidCollectorError(f"metrics URL must be http(s)://host[:port]/path: {url!r}")
        if not interval > 0:
            raise InvalidCollectorError(f"scrape interval must be positive, not {interval!r}")
        self.url = url
        self.interval = float(interval)
        self._timeout = max(0.2, min(self.interval, 2.0))
        # No proxy: the trial's server is local, and *_proxy variables would route around it.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._lock = threading.Lock()
        self._pending: list[Observation] = []
        self._last: dict[str, str] = {}  # repr of the value last seen, per metric
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self.scrapes = 0
        """Scrapes that got a page (for tests and diagnostics)."""

    def poll(self) -> list[Observation]:
        if self._finished:
            return []
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"scrape {self.url}", daemon=True
            )
            self._thread.start()
        with self._lock:
            out, self._pending = self._pending, []
        return out

    def finish(self) -> list[Observation]:
        if self._finished:
            return []
        self._stop.set()
        self._scrape(FINAL_SCRAPE_TIMEOUT)
        with self._lock:
            self._finished = True  # a scrape of the thread that ends after this is dropped
            out, self._pending = self._pending, []
        self._join()
        return out

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._finished = True
            self._pending = []
        self._join()

    def _join(self) -> None:
        # The thread is a daemon and drops late results; don't wait out a hung server.
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._scrape(self._timeout)
            if self._stop.wait(self.interval):
                break

    def _scrape(self, timeout: float) -> None:
        page = self._fetch(timeout)
        if page is None:
            return
        scraped_at = time.time()
        samples = self._samples(page)
        rejected: list[tuple[str, str, str]] = []
        with self._lock:
            if self._finished:
                return
            self.scrapes += 1
            for name, (value, timestamp) in samples.items():
                text = repr(value)
                if self._last.get(name) == text:
                    continue
                self._last[name] = text
                if math.isnan(value) or math.isinf(value):
                    rejected.append((name, text, "NaN" if math.isnan(value) else "infinite"))
                    continue
                when = timestamp if timestamp is not None else scraped_at
                self._pending.append(Observation(name, value, None, when))
        for name, text, reason in rejected:
            self._reject(name, text, reason)

    def _fetch(self, timeout: float) -> str | None:
        try:
            with self._opener.open(self.url, timeout=timeout) as response:
                body: bytes = response.read(MAX_BODY_BYTES + 1)
        except urllib.error.HTTPError as e:
            self._note(f"{self.url}: HTTP {e.code} {e.reason}", key=(self.url, "http"))
            return None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ConnectionError):  # not up yet, or already gone
                logger.debug("%s: %s", self.url, e.reason)
            else:
                self._note(f"{self.url}: {e.reason}", key=(self.url, "url"))
            return None
        except ConnectionError as e:
            logger.debug("%s: %s", self.url, e)
            return None
        except (OSError, http.client.HTTPException, ValueError) as e:
            self._note(f"{self.url}: scrape failed: {e!r}", key=(self.url, "scrape"))
            return None
        if len(body) > MAX_BODY_BYTES:
            self._note(
                f"{self.url}: page larger than {MAX_BODY_BYTES} bytes; the rest is ignored",
                key=(self.url, "size"),
            )
            body = body[: body.rfind(b"\n", 0, MAX_BODY_BYTES) + 1]
        return body.decode("utf-8", "replace")

    def _samples(self, page: str) -> dict[str, tuple[float, float | None]]:
        """(value, timestamp) of each tracked metric on the page: unlabelled, else first."""
        wanted = set(self.metric_names)
        chosen: dict[str, tuple[float, float | None]] = {}
        labelled: set[str] = set()
        try:
            for family in self._parse_page(page):
                for sample in family.samples:
                    name = sample.name
                    if name not in wanted or (name in chosen and name not in labelled):
                        continue
                    if name in chosen and sample.labels:
                        continue  # keep the first labelled one until an unlabelled one shows
                    stamp = sample.timestamp
                    chosen[name] = (float(sample.value), None if stamp is None else float(stamp))
                    if sample.labels:
                        labelled.add(name)
                    else:
                        labelled.discard(name)
        except Exception as e:  # noqa: BLE001 - the parser raises several kinds on bad input
            self._note(
                f"{self.url}: page not in Prometheus text format ({e!r}); "
                "using the samples before the error",
                key=(self.url, "parse"),
            )
        return chosen
