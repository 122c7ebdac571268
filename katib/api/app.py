"""The FastAPI application: routers, error handling, metrics, and the controller's lifetime.

:func:`create_app` builds everything from its arguments; importing this module does nothing.
A dashboard served by the same process mounts its routes here, beside the API's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from katib.api import _problems
from katib.api._metrics import LatencyMiddleware, Metrics
from katib.api.routes import (
    algorithms,
    analysis,
    audit,
    experiments,
    health,
    namespaces,
    observations,
    root,
    tokens,
    trials,
)
from katib.controller import BackgroundController
from katib.storage import Storage

DESCRIPTION = """\
Katib-style hyperparameter tuning: experiments, trials, observation logs and tokens.

Every `/api/v1` endpoint needs `Authorization: Bearer <token>`. A token has one role in one
namespace (admin tokens: all of them): **viewer** reads; **editor** also creates, stops,
kills, edits and pushes observations; **owner** also deletes and manages the namespace's
tokens; **admin** does everything. Objects of namespaces the token has no role in answer 404.
Errors are `application/problem+json`.
"""


def _version() -> str:
    try:
        return version("katib-local")
    except PackageNotFoundError:
        return "0"


def create_app(
    storage: Storage,
    *,
    controller: BackgroundController | None = None,
    work_dir: str | None = None,
    dashboard: bool = True,
) -> FastAPI:
    """The REST API over ``storage``.

    Args:
        storage: The database.
        controller: Runs experiments in the background while the app is up (started and
            stopped with the app's lifespan); None serves the API only.
        work_dir: The folder trials of experiments created here run in (default: the
            current folder), as `katib run` runs them beside their file.
        dashboard: Serve the dashboard's pages and assets at ``/`` too.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if controller is not None:
            controller.start()
        try:
            yield
        finally:
            if controller is not None:
                await run_in_threadpool(controller.stop)

    app = FastAPI(
        title="Katib",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.storage = storage
    app.state.controller = controller
    app.state.work_dir = work_dir or os.getcwd()
    metrics = Metrics(storage, controller)
    app.state.metrics = metrics
    _problems.install(app)
    app.add_middleware(LatencyMiddleware, metrics=metrics)
    routers = (experiments, trials, observations, analysis, algorithms, tokens, namespaces, audit)
    for module in (*routers, health):
        app.include_router(module.router)
    if dashboard:
        from katib.dashboard import mount_dashboard

        mount_dashboard(app)
    # Last: a dashboard mounted above owns `/`; until then `/` points at the API's docs.
    root.add_fallback(app)
    return app
