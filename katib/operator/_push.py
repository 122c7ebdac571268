"""Where trials of the operator push metrics: an HTTP endpoint of the operator itself.

The metrics-collector sidecar (and ``katib.report_metrics`` for the Push collector) POSTs to
``KATIB_API_URL`` + ``/api/v1/namespaces/<ns>/trials/<trial>/observations`` with
``Authorization: Bearer <KATIB_API_TOKEN>``, the same request as to ``katib server``. The
token of a namespace is an HMAC of its name under a key kept in a Secret of the operator's
namespace: every replica and every restart of the operator derives the same token, so
trials that outlive an operator keep pushing to the next one. The Kubernetes launcher puts
it in a Secret of the experiment's namespace (``katib-push-<experiment>``) that the pods
read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from katib.controller import PushEndpoint, parse_observations
from katib.records import ExperimentRecord
from trial_runner import Observation
from trial_runner.kubernetes import KubeApi, KubeApiError

log = logging.getLogger("katib.operator")

_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/trials/([^/]+)/observations/?$")
MAX_BODY = 8 * 1024 * 1024
KEY_SECRET = "katib-operator-push-key"


def load_push_key(api: KubeApi, namespace: str) -> bytes:
    """The operator's push key: read from its Secret, or made (once, by whoever is first)."""
    found = api.get("v1", "Secret", namespace, KEY_SECRET)
    if found is None:
        key = secrets.token_urlsafe(32)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": KEY_SECRET},
            "type": "Opaque",
            "stringData": {"key": key},
        }
        try:
            api.create(body, namespace)
            return key.encode()
        except KubeApiError as e:
            if e.status != 409:
                raise
            found = api.get("v1", "Secret", namespace, KEY_SECRET)
            assert found is not None
    return base64.b64decode((found.get("data") or {})["key"])


class OperatorPush(PushEndpoint):
    """Serves the push endpoint on ``host:port``; trials reach it at ``url``.

    Args:
        key: The push key (:func:`load_push_key`).
        host, port: Where to listen (port 0: any free port; :attr:`port` tells which).
        url: What trials use as ``KATIB_API_URL`` (default: ``http://<host>:<port>``).
    """

    def __init__(self, key: bytes, *, host: str = "0.0.0.0", port: int = 8080,
                 url: str | None = None) -> None:
        self.key = key
        self.host = host
        self.port = port
        self.url = url or ""
        self.accepted = 0
        self._server: ThreadingHTTPServer | None = None
        self._deliver: Callable[[str, str, list[Observation]], bool] | None = None

    def token_for(self, namespace: str) -> str:
        digest = hmac.new(self.key, f"push:{namespace}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def listen(self) -> None:
        """Start serving (before leadership, so that a new leader is reachable at once)."""
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        if not self.url:
            host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
            self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self._server.serve_forever, name="katib-push",
                         daemon=True).start()

    def open(self, deliver: Callable[[str, str, list[Observation]], bool]) -> None:
        self._deliver = deliver
        self.listen()

    def env_for(self, record: ExperimentRecord) -> dict[str, str]:
        return {"KATIB_API_URL": self.url, "KATIB_API_TOKEN": self.token_for(record.namespace)}

    def close(self) -> None:
        self._deliver = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def deliver(self, namespace: str, trial: str, observations: list[Observation]) -> bool:
        deliver = self._deliver
        return deliver is not None and deliver(namespace, trial, observations)


def _handler(push: OperatorPush) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _answer(self, code: int, detail: str) -> None:
            body = json.dumps({"status": code, "detail": detail}).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path in ("/healthz", "/readyz"):
                self._answer(200, "ok")
            else:
                self._answer(404, f"no such endpoint: {self.path}")

        def do_POST(self) -> None:  # noqa: N802
            match = _PATH.match(self.path)
            if match is None:
                self._answer(404, f"no such endpoint: {self.path}")
                return
            namespace, trial = match.groups()
            expected = f"Bearer {push.token_for(namespace)}"
            given = self.headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), expected.encode()):
                self._answer(401, "missing or wrong token for this namespace")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, f"body over {MAX_BODY} bytes")
                return
            try:
                observations = parse_observations(json.loads(self.rfile.read(length) or b"null"))
            except (ValueError, UnicodeDecodeError) as e:
                self._answer(400, str(e))
                return
            if not push.deliver(namespace, trial, observations):
                # Not (yet) driven here: an operator starting up, or not the leader.
                self._answer(404, f"trial {namespace}/{trial} is not running here")
                return
            push.accepted += len(observations)
            self._answer(200, f"{len(observations)} observations recorded")

    return Handler
