"""What every router shares: path parameters, error responses for the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from katib.api.schemas import Problem

#: Largest row id (ids are 32-bit integers in PostgreSQL).
MAX_ID = 2**31 - 1
#: A Kubernetes namespace (RFC 1123 label).
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Namespace = Annotated[
    str, Path(min_length=1, max_length=63, pattern=NAMESPACE_PATTERN, description="Namespace.")
]
Name = Annotated[str, Path(min_length=1, max_length=253, description="Object name.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Most items in the page.")]
After = Annotated[
    int | None,
    Query(ge=0, le=MAX_ID, description="Cursor: the `metadata.continue` of the previous page."),
]


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem responses an endpoint may give (401 always)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({401, 422, *codes}):
        out[code] = {"model": Problem, "content": {"application/problem+json": {}}}
    return out


YAML_OR_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A Katib Experiment (kubeflow.org/v1beta1), as JSON or as YAML.",
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
