"""The metrics-collector sidecar: ``python -m trial_runner --sidecar --done-file F ...``.

On a cluster, Katib's collector runs as a second container of the trial's primary pod. The
primary container's command is wrapped (see ``trial_runner/kubernetes``) so that its output
is also written to a file on a shared volume and its exit status to ``--done-file``; this
loop reads the metrics as they appear (that file for StdOut, the configured file, event
directory or Prometheus endpoint otherwise), pushes them to the API in batches, and once the
done file exists reads what is left, pushes it and exits, which lets the pod finish.

Pushes that fail (the API restarting, the trial not yet known to a controller that is
starting up) are kept and sent again with the next batch; the last batch is retried for up
to ``final_wait`` seconds. Values pushed for a trial that has finished are dropped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from trial_runner.metrics import Collector, Observation

__all__ = ["HttpPusher", "PushRejected", "run_sidecar"]


class PushRejected(Exception):  # noqa: N818 - a verdict, not a bug
    """The API refused the values for good (a bad request, a finished trial)."""


class HttpPusher:
    """POSTs observations of one trial to ``<url>/api/v1/namespaces/<ns>/trials/<t>/observations``.

    Raises :class:`PushRejected` for answers that will not change (400, 409, 413) and
    ``OSError`` for the others (no answer, 401/403 until a token is known, 404 while a
    controller starts, 5xx), which the sidecar retries.
    """

    def __init__(
        self, url: str, namespace: str, trial: str, token: str | None, *, timeout: float = 10.0
    ) -> None:
        self.endpoint = (
            f"{url.rstrip('/')}/api/v1/namespaces/{namespace}/trials/{trial}/observations"
        )
        self.token = token
        self.timeout = timeout

    def __call__(self, observations: Sequence[Observation]) -> None:
        points = [o.to_wire() for o in observations]
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.endpoint,
            data=json.dumps({"observations": points}).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace")
            if e.code in (400, 409, 413, 422):
                raise PushRejected(f"{e.code}: {detail}") from None
            raise OSError(f"{e.code}: {detail}") from None


def run_sidecar(
    collector: Collector | None,
    *,
    done_file: str,
    push: Callable[[Sequence[Observation]], Any] | None,
    poll_interval: float = 0.5,
    push_interval: float = 2.0,
    final_wait: float = 120.0,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> int:
    """Collect until ``done_file`` exists (or SIGTERM), push, return the exit status (0).

    ``collector`` None means this pod is not the primary one: nothing is collected, the
    sidecar only waits for the training container to end.
    """
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
    buffer: list[Observation] = []
    last_push = time.monotonic()
    pushed = collected = 0

    def flush() -> bool:
        nonlocal buffer, pushed
        if not buffer or push is None:
            buffer = [] if push is None else buffer
            return True
        try:
            push(buffer)
        except PushRejected as e:
            log(f"trial_runner sidecar: {len(buffer)} values dropped: {e}")
            buffer = []
            return True
        except OSError as e:
            log(f"trial_runner sidecar: push failed, kept for later: {e}")
            return False
        pushed += len(buffer)
        buffer = []
        return True

    while not stop.is_set() and not os.path.exists(done_file):
        if collector is not None:
            new = collector.poll()
            collected += len(new)
            buffer.extend(new)
            if buffer and time.monotonic() - last_push >= push_interval:
                flush()
                last_push = time.monotonic()
        stop.wait(poll_interval)
    if collector is not None:
        try:
            new = collector.finish()
            collected += len(new)
            buffer.extend(new)
        finally:
            collector.close()
    # A SIGTERM (the pod deleted) leaves little time; a normal end may wait for the API.
    deadline = time.monotonic() + (5.0 if stop.is_set() else final_wait)
    delay = 0.5
    while not flush() and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 10.0)
    if buffer:
        log(f"trial_runner sidecar: {len(buffer)} values could not be pushed")
    elif collector is not None:
        log(f"trial_runner sidecar: {collected} values collected, {pushed} pushed")
    return 0
