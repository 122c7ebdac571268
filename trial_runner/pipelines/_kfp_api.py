"""A small client of the Kubeflow Pipelines REST API (``/apis/v2beta1``), over httpx.

Only the endpoints the KFP launcher uses, with the field names of KFP's published v2beta1
OpenAPI (``backend/api/v2beta1/swagger``): upload a compiled pipeline package, find a
pipeline by name and its versions, create, find (by name), get and terminate a run, read an
artifact.
Errors carry the HTTP status and KFP's ``message``; connection failures and 5xx answers are
:class:`KfpApiError` with ``temporary`` set, so the caller knows that retrying may help.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from katib.errors import KatibError

__all__ = ["KfpApi", "KfpApiError"]

_PREFIX = "/apis/v2beta1"


class KfpApiError(KatibError):
    """A KFP API request failed. ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def temporary(self) -> bool:
        """Whether the same request may succeed later (no answer, or a server error)."""
        return self.status == 0 or self.status >= 500 or self.status == 429


class KfpApi:
    """The KFP API server at ``host`` (``http://ml-pipeline.kubeflow:8888``, or the UI's
    address, which proxies ``/apis``).

    Args:
        host: Base URL of the API server.
        token: Bearer token, when the deployment wants one (multi-user Kubeflow).
        timeout: Seconds per request.
    """

    def __init__(self, host: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.host = host.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.host, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # Pipelines -------------------------------------------------------------------------------

    def upload_pipeline(
        self, name: str, package: bytes, *, filename: str, namespace: str | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """``POST /pipelines/upload``: a compiled package (YAML) as a new pipeline."""
        params = {"name": name, "description": description}
        if namespace:
            params["namespace"] = namespace
        files = {"uploadfile": (filename, package, "application/x-yaml")}
        return self._request("POST", "/pipelines/upload", params=params, files=files)

    def pipeline_by_name(self, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        params = {"namespace": namespace} if namespace else None
        return self._request("GET", f"/pipelines/names/{quote(name, safe='')}", params=params)

    def latest_version(self, pipeline_id: str) -> dict[str, Any] | None:
        """The newest version of a pipeline (``GET /pipelines/{id}/versions``), or None."""
        answer = self._request(
            "GET",
            f"/pipelines/{quote(pipeline_id, safe='')}/versions",
            params={"page_size": 1, "sort_by": "created_at desc"},
        )
        versions = answer.get("pipeline_versions") or []
        return dict(versions[0]) if versions else None

    def pipeline_version(self, pipeline_id: str, version_id: str) -> dict[str, Any]:
        return self._request(
            "GET",
            f"/pipelines/{quote(pipeline_id, safe='')}/versions/{quote(version_id, safe='')}",
        )

    # Runs ------------------------------------------------------------------------------------

    def create_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        params = {"experiment_id": body["experiment_id"]} if body.get("experiment_id") else None
        return self._request("POST", "/runs", params=params, json_body=dict(body))

    def runs_named(
        self, display_name: str, *, namespace: str | None = None,
        experiment_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /runs`` filtered on ``display_name`` (KFP's JSON ``Filter``), newest first."""
        params: dict[str, Any] = {
            "filter": json.dumps({"predicates": [{
                "key": "display_name", "operation": "EQUALS", "string_value": display_name,
            }]}),
            "sort_by": "created_at desc",
            "page_size": 20,
        }
        if namespace:
            params["namespace"] = namespace
        if experiment_id:
            params["experiment_id"] = experiment_id
        answer = self._request("GET", "/runs", params=params)
        return [dict(r) for r in answer.get("runs") or [] if isinstance(r, Mapping)]

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._request("GET", f"/runs/{quote(run_id, safe='')}")

    def terminate_run(self, run_id: str) -> None:
        self._request("POST", f"/runs/{quote(run_id, safe='')}:terminate", json_body={})

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        return self._request("GET", f"/artifacts/{quote(artifact_id, safe='')}")

    # ------------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            response = self._http.request(
                method, _PREFIX + path, params=params, json=json_body, files=files
            )
        except httpx.HTTPError as e:
            raise KfpApiError(f"{method} {self.host}{_PREFIX}{path}: {e}") from e
        if response.status_code >= 400:
            raise KfpApiError(
                f"{method} {_PREFIX}{path}: {response.status_code} {_message(response)}",
                status=response.status_code,
            )
        if not response.content:
            return {}
        try:
            answer = response.json()
        except json.JSONDecodeError as e:
            raise KfpApiError(f"{method} {_PREFIX}{path}: the answer is not JSON") from e
        return answer if isinstance(answer, dict) else {}


def _message(response: httpx.Response) -> str:
    """KFP's error text (``{"code", "message", "details"}``, or ``error_message``)."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        return response.text[:500]
    if isinstance(body, dict):
        for key in ("message", "error_message", "error"):
            if body.get(key):
                return str(body[key])[:500]
    return response.text[:500]
