"""Liveness, readiness (the database answers) and the server's Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from katib.api.deps import ControllerDep, StorageDep
from katib.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Any:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(storage: StorageDep, controller: ControllerDep) -> Any:
    """The database answers (and the controller runs, in a server that has one)."""
    problem = storage.ping()
    if problem is None and controller is not None and not controller.running:
        problem = "the experiment controller is not running"
    if problem is not None:
        return JSONResponse({"status": "unavailable", "detail": problem}, status_code=503)
    return {"status": "ok", "detail": ""}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics: experiments by condition, trials by state, request latency."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
