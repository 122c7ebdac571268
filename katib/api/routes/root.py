"""``/`` until a dashboard serves it: where the API, its documentation and the probes are.

:func:`add_fallback` mounts it only when nothing else answers ``GET /``, so a dashboard
router included before it (in :func:`katib.api.app.create_app`) owns ``/``.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.routing import Match

LINKS = {
    "docs": ("/docs", "the REST API, with its OpenAPI documentation (try it in the browser)"),
    "openapi": ("/openapi.json", "the OpenAPI document"),
    "api": ("/api/v1", "the REST API (Authorization: Bearer <token>)"),
    "healthz": ("/healthz", "liveness"),
    "readyz": ("/readyz", "readiness: the database answers and the controller runs"),
    "metrics": ("/metrics", "Prometheus metrics"),
}


def serves_root(app: FastAPI) -> bool:
    """Whether a route (a dashboard's, included or mounted) already answers ``GET /``."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "app": app,
    }
    for route in app.router.routes:
        try:
            match, _ = route.matches(scope)
        except Exception:  # noqa: BLE001 - a route that cannot tell does not serve `/`
            continue
        if match == Match.FULL:
            return True
    return False


def add_fallback(app: FastAPI) -> None:
    """Answer ``GET /`` with links to the API's documentation, unless something else does."""
    if serves_root(app):
        return

    async def root(request: Request) -> Any:
        accept = request.headers.get("accept", "")
        if "text/html" not in accept:
            return JSONResponse(
                {
                    "name": app.title,
                    "version": app.version,
                    "dashboard": None,
                    **{key: path for key, (path, _) in LINKS.items()},
                }
            )
        items = "\n".join(
            f'<li><a href="{path}">{escape(path)}</a>: {escape(what)}</li>'
            for path, what in LINKS.values()
        )
        return HTMLResponse(
            "<!doctype html><html><head><meta charset=\"utf-8\">"
            f"<title>{escape(app.title)}</title></head><body>"
            f"<h1>{escape(app.title)} {escape(app.version)}</h1>"
            "<p>This server has no dashboard yet. The REST API and its documentation:</p>"
            f"<ul>\n{items}\n</ul></body></html>"
        )

    app.add_api_route("/", root, methods=["GET"], include_in_schema=False, name="root-fallback")
