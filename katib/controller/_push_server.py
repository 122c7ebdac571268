"""The loopback endpoint where trials of ``katib run`` push metrics (no server needed).

It accepts the same request as the REST API's observation push, checks a per-run token, and
hands the points to the controller's event queue; the controller stores them.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from katib._time import now
from katib.storage import ObservationPoint
from trial_runner import Observation

_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/trials/([^/]+)/observations/?$")
MAX_BODY = 8 * 1024 * 1024


def parse_observations(payload: Any) -> list[Observation]:
    """Observations from a push body; ValueError naming what is wrong.

    Accepts ``{"observations": [{"name", "value", "step"?, "timestamp"?}, ...]}`` or a plain
    ``{"metrics": {"loss": 0.3}}``. An item may hold ``"text"`` instead of ``"value"``: a
    value reported as text, which only a text metric keeps (DARTS' ``Best-Genotype``).
    """
    if not isinstance(payload, dict):
        raise ValueError("body must be a JSON object")
    items = payload.get("observations")
    if items is None and isinstance(payload.get("metrics"), dict):
        items = [{"name": k, "value": v} for k, v in payload["metrics"].items()]
    if not isinstance(items, list):
        raise ValueError("body needs an 'observations' list (or a 'metrics' object)")
    out: list[Observation] = []
    for i, item in enumerate(items):
        where = f"observations[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"{where}: needs a string 'name'")
        step = item.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            raise ValueError(f"{where}.step: must be an integer")
        ts = item.get("timestamp")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float)):
            raise ValueError(f"{where}.timestamp: must be a unix time in seconds")
        when = None if ts is None else float(ts)
        if "text" in item and "value" not in item:
            # A value reported as text (DARTS' genotype); only a text metric keeps it.
            text = item["text"]
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{where}.text: must be a non-empty string")
            out.append(Observation(item["name"], math.nan, step, when, text.strip()))
            continue
        raw = item.get("value")
        if isinstance(raw, bool):
            raise ValueError(f"{where}.value: {raw!r} is not a number")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}.value: {raw!r} is not a number") from e
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{where}.value: {raw!r} is not a finite number")
        out.append(Observation(item["name"], value, step, when))
    return out


def observation_points(observations: Sequence[Observation]) -> list[ObservationPoint]:
    """Pushed observations as storable points (a missing time is now); values reported as
    text are not points (they live in the trial's metrics)."""
    t = now()
    return [
        ObservationPoint(o.name, float(o.value), o.step, o.timestamp or t)
        for o in observations
        if o.text is None
    ]


#: How often the push server checks whether it is asked to stop (seconds).
_POLL_INTERVAL = 0.05


class PushServer:
    """Serves the push endpoint on 127.0.0.1 for the trials of one ``katib run``."""

    def __init__(self, deliver: Callable[[str, str, list[Observation]], bool]) -> None:
        """``deliver(namespace, trial, observations)`` hands pushed points to the controller,
        False when no trial of that name runs here (the request then gets 404)."""
        self.token = secrets.token_urlsafe(24)
        self._deliver = deliver
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> str:
        handler = _handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        # serve_forever looks for shutdown() every poll interval: the default half second was
        # most of the time `katib run` took to end once its last trial had.
        thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name="katib-push",
            daemon=True,
        )
        thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _handler(push: PushServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # trial pushes are not news

        def _answer(self, code: int, detail: str) -> None:
            body = json.dumps({"status": code, "detail": detail}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            match = _PATH.match(self.path)
            if match is None:
                self._answer(404, f"no such endpoint: {self.path}")
                return
            if self.headers.get("Authorization") != f"Bearer {push.token}":
                self._answer(401, "missing or wrong token")
                return
            namespace, trial = match.groups()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, f"body over {MAX_BODY} bytes")
                return
            try:
                observations = parse_observations(json.loads(self.rfile.read(length) or b"null"))
            except (ValueError, UnicodeDecodeError) as e:
                self._answer(400, str(e))
                return
            if not push._deliver(namespace, trial, observations):
                self._answer(404, f"trial {namespace}/{trial} is not running here")
                return
            self._answer(200, f"{len(observations)} observations recorded")

    return Handler
