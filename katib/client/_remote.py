"""The backend over a ``katib server``: the REST API under ``/api/v1``, with a bearer token.

Problem answers (RFC 9457) come back as the errors the server raised: 404 ``NotFoundError``,
409 ``ConflictError``, 422 ``InvalidExperimentError`` with every field error, 401
``UnauthorizedError``, 403 ``ForbiddenError``, 503 ``TemporaryError``. Reads are retried a few
times when the server is briefly unreachable or busy; a change is retried only when it
certainly did not reach the server (the connection was refused).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from katib.client._base import Backend, BudgetCounts
from katib.errors import (
    ConflictError,
    FieldError,
    ForbiddenError,
    InvalidExperimentError,
    KatibError,
    NoLogError,
    NotFoundError,
    TemporaryError,
    UnauthorizedError,
)

#: Items per page when a list is fetched whole (the API's largest page).
PAGE = 500
#: Pauses between attempts of a request that may be retried.
RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0)
TIMEOUT = httpx.Timeout(60.0, connect=5.0)
PROBLEM_PREFIX = "urn:katib:problem:"


class ServerUnreachableError(TemporaryError):
    """The server did not answer (not running, wrong URL, network down)."""


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


class RemoteBackend(Backend):
    """Experiments behind the server at ``url``, seen with the rights of ``token``.

    Args:
        url: The server, as ``http://127.0.0.1:8080``.
        token: An API token (``katib token create``, or the admin token the server printed).
        timeout: Seconds to wait for an answer.
        transport: An httpx transport (tests hand in the app's own).

    Raises:
        UnauthorizedError: no token was given.
        KatibError: ``url`` is not an http(s) URL.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: httpx.Timeout | float = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise KatibError(f"server URL {url!r}: expected http://HOST:PORT or https://HOST")
        if not token:
            raise UnauthorizedError(
                f"the server {url} needs an API token: give --token (or set KATIB_TOKEN); "
                "`katib token create` makes one"
            )
        self.url = url.rstrip("/")
        self.location = f"server {self.url}"
        self._http = httpx.Client(
            base_url=self.url + "/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # The wire -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; the answer if it succeeded, else the error the server gave."""
        safe = method in ("GET", "HEAD")
        for pause in (*RETRY_PAUSES, None):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.ConnectError as e:
                # The request never reached the server: retrying cannot do anything twice.
                if pause is None:
                    raise ServerUnreachableError(
                        f"cannot reach the katib server at {self.url}: {e}"
                    ) from e
            except httpx.TransportError as e:
                if not safe or pause is None:
                    raise ServerUnreachableError(
                        f"the katib server at {self.url} did not answer: {e}"
                    ) from e
            else:
                if response.status_code != 503 or not safe or pause is None:
                    if response.is_success:
                        return response
                    raise self._error(response)
            time.sleep(pause)
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as e:
            raise KatibError(
                f"the katib server at {self.url} answered {method} {path} with something "
                f"that is not JSON ({response.headers.get('content-type', '')})"
            ) from e

    def _error(self, response: httpx.Response) -> KatibError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        status = response.status_code
        detail = str(body.get("detail") or response.reason_phrase or f"HTTP {status}")
        kind = str(body.get("type", "")).removeprefix(PROBLEM_PREFIX)
        errors = body.get("errors")
        if status == 401:
            return UnauthorizedError(f"{detail} (server {self.url})")
        if status == 403:
            return ForbiddenError(detail)
        if status == 404:
            return NoLogError(detail) if kind == "no-log" else NotFoundError(detail)
        if status == 409:
            return ConflictError(detail)
        if status == 422 and isinstance(errors, list) and errors:
            if kind == "not-runnable":
                from katib.controller import NotRunnableError

                return NotRunnableError(detail)
            return InvalidExperimentError(
                [
                    FieldError(str(e.get("path", "")), str(e.get("message", "")))
                    for e in errors
                    if isinstance(e, dict)
                ]
            )
        if status == 503:
            return TemporaryError(f"the katib server at {self.url} is busy: {detail}")
        if status >= 500:
            return KatibError(f"the katib server at {self.url} failed ({status}): {detail}")
        return KatibError(detail)

    def _all(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paged list, following ``metadata.continue``."""
        items: list[dict[str, Any]] = []
        query = dict(params or {}, limit=PAGE)
        while True:
            body = self._json("GET", path, params=query)
            page = list(body.get("items") or [])
            items.extend(page)
            cursor = (body.get("metadata") or {}).get("continue")
            if len(page) < PAGE or cursor is None:
                return items
            query["after"] = cursor

    # Experiments --------------------------------------------------------------------------

    def create_experiment(
        self, document: Mapping[str, Any], *, source_dir: str | None = None
    ) -> dict[str, Any]:
        metadata = document.get("metadata")
        namespace = "default"
        if isinstance(metadata, Mapping) and isinstance(metadata.get("namespace"), str):
            namespace = metadata["namespace"] or "default"
        params = {"sourceDir": source_dir} if source_dir else None
        path = f"/namespaces/{_path(namespace)}/experiments"
        created: dict[str, Any] = self._json("POST", path, json=dict(document), params=params)
        return created

    def _experiment_path(self, namespace: str, name: str) -> str:
        return f"/namespaces/{_path(namespace)}/experiments/{_path(name)}"

    def get_experiment(self, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("GET", self._experiment_path(namespace, name))
        return body

    def list_experiments(
        self, namespace: str | None = None, *, archived: bool = False
    ) -> list[dict[str, Any]]:
        params = {"archived": "true"} if archived else None
        if namespace is None:
            return self._all("/experiments", params)
        return self._all(f"/namespaces/{_path(namespace)}/experiments", params)

    def best_trial(self, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("GET", self._experiment_path(namespace, name) + "/best")
        return body

    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        body = self._json("GET", self._experiment_path(namespace, name) + "/events")
        return list(body.get("items") or [])

    def stop_experiment(self, namespace: str, name: str) -> bool:
        response = self._request("POST", self._experiment_path(namespace, name) + "/stop")
        return response.status_code == 200

    def delete_experiment(self, namespace: str, name: str) -> None:
        self._request("DELETE", self._experiment_path(namespace, name))

    def edit_budget(self, namespace: str, name: str, counts: BudgetCounts) -> dict[str, Any]:
        body: dict[str, Any] = self._json(
            "PATCH", self._experiment_path(namespace, name), json=_counts(counts)
        )
        return body

    def restart_experiment(
        self, namespace: str, name: str, counts: BudgetCounts
    ) -> dict[str, Any]:
        body: dict[str, Any] = self._json(
            "POST", self._experiment_path(namespace, name) + "/restart", json=_counts(counts)
        )
        return body

    # Trials -------------------------------------------------------------------------------

    def _trial_path(self, namespace: str, name: str) -> str:
        return f"/namespaces/{_path(namespace)}/trials/{_path(name)}"

    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        return self._all(self._experiment_path(namespace, experiment) + "/trials")

    def get_trial(self, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json("GET", self._trial_path(namespace, name))
        return body

    def find_trials(self, name: str) -> list[dict[str, Any]]:
        body = self._json("GET", "/trials", params={"name": name})
        return list(body.get("items") or [])

    def trial_observations(self, namespace: str, name: str) -> list[dict[str, Any]]:
        body = self._json("GET", self._trial_path(namespace, name) + "/observations")
        return list(body.get("metricLogs") or [])

    def trial_log(self, namespace: str, name: str, offset: int = 0) -> bytes | None:
        path = self._trial_path(namespace, name) + "/logs"
        try:
            return self._request("GET", path, params={"offset": offset}).content
        except NoLogError:
            return None

    # Tokens -------------------------------------------------------------------------------

    def create_token(self, name: str, namespace: str, role: str) -> dict[str, Any]:
        body: dict[str, Any] = self._json(
            "POST", "/tokens", json={"name": name, "namespace": namespace, "role": role}
        )
        return body

    def list_namespaces(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/namespaces").get("items") or [])

    def set_namespace_limit(self, namespace: str, max_running_trials: int | None) -> dict[str, Any]:
        body: dict[str, Any] = self._json(
            "PUT", f"/namespaces/{namespace}/limits",
            json={"maxRunningTrials": max_running_trials},
        )
        return body

    def list_tokens(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        params = {"revoked": "true"} if include_revoked else None
        body = self._json("GET", "/tokens", params=params)
        return list(body.get("items") or [])

    def rotate_token(self, token_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self._json("POST", f"/tokens/{int(token_id)}/rotate")
        return body

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        listed = {t["id"]: t for t in self.list_tokens(include_revoked=True)}
        self._request("DELETE", f"/tokens/{int(token_id)}")
        token = listed.get(token_id) or {"id": token_id, "name": f"#{token_id}"}
        return dict(token)


def _counts(counts: BudgetCounts) -> dict[str, int]:
    wire = {
        "max_trial_count": "maxTrialCount",
        "parallel_trial_count": "parallelTrialCount",
        "max_failed_trial_count": "maxFailedTrialCount",
    }
    return {wire[k]: int(v) for k, v in counts.items() if k in wire and isinstance(v, int)}

