"""``katib.report_metrics``: push metric values from inside a trial.

The trial's environment names where to send them (``KATIB_API_URL``, ``KATIB_API_TOKEN``,
``KATIB_TRIAL_NAME``, ``KATIB_NAMESPACE``): a server, or the loopback endpoint that
``katib run`` serves for its own trials. Only the standard library is used, so that reporting
adds nothing to a training script's start-up.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from katib.errors import KatibError, TemporaryError

if TYPE_CHECKING:
    import urllib.error
    import urllib.request


class ReportError(KatibError):
    """The metrics could not be reported (bad values, no endpoint, or the server refused)."""


def push_path(namespace: str, trial: str) -> str:
    return f"/api/v1/namespaces/{namespace}/trials/{trial}/observations"


def report_metrics(
    metrics: Mapping[str, float | int | str],
    *,
    step: int | None = None,
    timestamp: float | None = None,
    trial_name: str | None = None,
    timeout: float = 10.0,
    retries: int = 3,
) -> None:
    """Send ``{"loss": 0.3, ...}`` as observations of the current trial.

    Args:
        metrics: metric name → number (or numeric string).
        step: optional training step of these values.
        timestamp: unix time of the values (default: now).
        trial_name: defaults to ``KATIB_TRIAL_NAME``.
        timeout: seconds per attempt.
        retries: further attempts after a connection error or a 5xx answer.

    Raises:
        ReportError: a value is not a finite number, the trial has no endpoint, or the
            endpoint rejected the request.
    """
    trial = trial_name or os.environ.get("KATIB_TRIAL_NAME")
    url = os.environ.get("KATIB_API_URL")
    if not trial or not url:
        raise ReportError(
            "report_metrics needs KATIB_TRIAL_NAME and KATIB_API_URL: call it inside a trial "
            "started by katib"
        )
    points = []
    when = time.time() if timestamp is None else timestamp
    for name, raw in metrics.items():
        try:
            value = float(raw)
        except (TypeError, ValueError) as e:
            raise ReportError(f"metric {name!r}: {raw!r} is not a number") from e
        if math.isnan(value) or math.isinf(value):
            raise ReportError(f"metric {name!r}: {raw!r} is not a finite number")
        points.append({"name": str(name), "value": value, "step": step, "timestamp": when})
    push_observations(
        points,
        url=url,
        namespace=os.environ.get("KATIB_NAMESPACE", "default"),
        trial=trial,
        token=os.environ.get("KATIB_API_TOKEN"),
        timeout=timeout,
        retries=retries,
    )


def push_observations(
    points: list[dict[str, Any]],
    *,
    url: str,
    namespace: str,
    trial: str,
    token: str | None,
    timeout: float = 10.0,
    retries: int = 3,
) -> None:
    """POST observations (``{"name", "value", "step", "timestamp"}``) for one trial."""
    import urllib.request  # here: most of what `import katib` would otherwise cost

    body = json.dumps({"observations": points}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url.rstrip("/") + push_path(namespace, trial), data=body, headers=headers, method="POST"
    )
    _send(request, timeout=timeout, retries=retries)


def _send(request: urllib.request.Request, *, timeout: float, retries: int) -> None:
    import urllib.error
    import urllib.request

    delay = 0.2
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return
        except urllib.error.HTTPError as e:
            detail = _detail(e)
            if e.code < 500:
                raise ReportError(f"metrics rejected ({e.code}): {detail}") from e
            last = TemporaryError(f"server error {e.code}: {detail}")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            last = e
        if attempt < retries:
            time.sleep(delay)
            delay *= 2
    raise ReportError(f"could not report metrics after {retries + 1} attempts: {last}")


def _detail(error: urllib.error.HTTPError) -> Any:
    try:
        payload = json.loads(error.read() or b"{}")
    except (ValueError, OSError):
        return error.reason
    return payload.get("detail") or payload.get("title") or error.reason
