"""Reading request bodies: size limit, JSON or YAML by Content-Type, experiment documents."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from katib.api._problems import (
    BadRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from katib.errors import FieldError, InvalidExperimentError
from katib.spec import MAX_FILE_BYTES, Experiment, load_experiments, parse_experiment

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json", ""})
SOURCE = "request body"


@dataclass(frozen=True)
class Body:
    """A request body and the format it claims to be in (``json`` or ``yaml``)."""

    format: str
    data: bytes


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, *, limit: int = MAX_FILE_BYTES, yaml: bool = True) -> Body:
    """The body, refused when over ``limit`` bytes or in a format other than JSON (or YAML)."""
    kind = media_type(request)
    if yaml and kind in YAML_TYPES:
        fmt = "yaml"
    elif kind in JSON_TYPES or kind.endswith("+json"):
        fmt = "json"
    else:
        accepted = "application/json or application/yaml" if yaml else "application/json"
        raise UnsupportedMediaTypeError(f"Content-Type {kind!r} is not accepted; send {accepted}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the body is over {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLargeError(f"the body is over {limit} bytes")
    return Body(fmt, bytes(chunks))


async def experiment_body(request: Request) -> Body:
    """Dependency: an experiment document, JSON or YAML."""
    return await read_body(request)


async def json_body(request: Request) -> Body:
    """Dependency: a JSON body of at most 8 MiB (metric pushes)."""
    return await read_body(request, limit=8 * 1024 * 1024, yaml=False)


def load_json(data: bytes) -> Any:
    """The parsed JSON; BadRequestError naming the problem."""
    try:
        return json.loads(data.decode("utf-8") or "null")
    except UnicodeDecodeError as e:
        raise BadRequestError(f"the body is not UTF-8: {e}") from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None
    except ValueError as e:
        raise BadRequestError(f"the body is not valid JSON: {e}") from None


def experiments_from(body: Body) -> list[Experiment]:
    """Every experiment in the body, validated; InvalidExperimentError with every problem."""
    if body.format == "yaml":
        try:
            text = body.data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidExperimentError([FieldError("", f"not UTF-8 text: {e}")], SOURCE) from None
        return load_experiments(SOURCE, text=text)
    try:
        data = load_json(body.data)
    except BadRequestError as e:
        raise InvalidExperimentError([FieldError("", str(e))], SOURCE) from None
    return [parse_experiment(data, SOURCE)]


def one_experiment(body: Body) -> Experiment:
    experiments = experiments_from(body)
    if len(experiments) != 1:
        raise InvalidExperimentError(
            [FieldError("", f"the body holds {len(experiments)} experiments; send one at a time")],
            SOURCE,
        )
    return experiments[0]
