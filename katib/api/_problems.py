"""Errors as RFC 9457 problem details (``application/problem+json``), never tracebacks.

Every error the API answers has ``type``, ``title``, ``status`` and ``detail``; an invalid
experiment, or an invalid request, adds ``errors``: ``[{"path", "message"}]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from katib.api._auth import ForbiddenError, UnauthorizedError
from katib.controller import NotRunnableError
from katib.errors import (
    ConflictError,
    FieldError,
    InvalidExperimentError,
    InvalidValueError,
    KatibError,
    NoLogError,
    NotFoundError,
    TemporaryError,
)
from katib.storage import StorageError

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("katib.api")


class BadRequestError(KatibError):
    """The request body cannot be used (HTTP 400)."""


class InvalidRequestError(KatibError):
    """The request's fields are wrong (HTTP 422); carries every problem with its path."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class PayloadTooLargeError(KatibError):
    """The request body is over the size limit (HTTP 413)."""


class UnsupportedMediaTypeError(KatibError):
    """The request body is in a format this endpoint does not read (HTTP 415)."""


# Most specific first: the first class an error is an instance of decides.
_STATUS: Sequence[tuple[type[Exception], int, str]] = (
    (UnauthorizedError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (NoLogError, 404, "no-log"),
    (NotFoundError, 404, "not-found"),
    (ConflictError, 409, "conflict"),
    (InvalidExperimentError, 422, "invalid-experiment"),
    (NotRunnableError, 422, "not-runnable"),
    (InvalidRequestError, 422, "invalid-request"),
    (BadRequestError, 400, "bad-request"),
    (InvalidValueError, 400, "invalid-value"),
    (PayloadTooLargeError, 413, "payload-too-large"),
    (UnsupportedMediaTypeError, 415, "unsupported-media-type"),
    (StorageError, 503, "unavailable"),
    (TemporaryError, 503, "unavailable"),
    (KatibError, 400, "bad-request"),
)


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:katib:problem:{kind}" if kind else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [{"path": e.path, "message": e.message} for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _classify(error: KatibError) -> tuple[int, str]:
    return next(((s, k) for cls, s, k in _STATUS if isinstance(error, cls)), (400, "bad-request"))


def katib_error_response(error: KatibError) -> JSONResponse:
    status, kind = _classify(error)
    errors: list[FieldError] | None = None
    if isinstance(error, InvalidExperimentError | InvalidRequestError):
        errors = error.errors
    elif isinstance(error, NotRunnableError):
        errors = [FieldError("spec.nasConfig", str(error))]
    headers = {"WWW-Authenticate": 'Bearer realm="katib"'} if status == 401 else None
    if status == 503:
        headers = {"Retry-After": "1"}
    return problem(status, str(error), kind=kind, errors=errors, headers=headers)


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    out = parts[0] if parts else ""
    for part in parts[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem JSON."""

    async def on_katib_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KatibError)
        if isinstance(exc, StorageError | TemporaryError):
            log.warning("%s %s: %s", request.method, request.url.path, exc)
        return katib_error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            FieldError(_field_path(e.get("loc", ())), str(e.get("msg", "invalid")))
            for e in exc.errors()
        ]
        detail = "; ".join(str(e) for e in errors) or "the request is not valid"
        return problem(422, detail, kind="invalid-request", errors=errors)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        return problem(exc.status_code, str(exc.detail), headers=headers or None)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error; the server log has the details")

    app.add_exception_handler(KatibError, on_katib_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
