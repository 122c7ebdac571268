"""The algorithm catalogue and the validation endpoint."""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from katib.api._body import Body, experiment_body, experiments_from
from katib.api.deps import PrincipalDep
from katib.api.routes._common import YAML_OR_JSON_BODY, problems
from katib.api.schemas import AlgorithmCatalogue, ValidationResult
from katib.errors import InvalidExperimentError
from suggestion import SettingSpec, UnknownAlgorithmError, algorithm_names, get_algorithm
from suggestion.early_stopping import early_stopping_names, get_early_stopping

router = APIRouter(prefix="/api/v1", tags=["algorithms"])


def _summary(cls: type) -> str:
    """The first paragraph of the class's docstring, else of its module's."""
    doc = cls.__doc__ or getattr(sys.modules.get(cls.__module__), "__doc__", None) or ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _settings(spec: dict[str, SettingSpec]) -> list[dict[str, Any]]:
    return [
        {"name": name, "default": s.default, "description": s.description}
        for name, s in spec.items()
    ]


def _entry(name: str, cls: type, spec: dict[str, SettingSpec]) -> dict[str, Any]:
    return {"name": name, "description": _summary(cls), "settings": _settings(spec)}


@cache
def catalogue() -> dict[str, Any]:
    """Every usable algorithm with its settings (classes are imported once, on first use)."""
    algorithms: list[dict[str, Any]] = []
    for name in algorithm_names():
        try:
            cls = get_algorithm(name)
        except UnknownAlgorithmError as e:
            algorithms.append({"name": name, "description": str(e), "settings": []})
            continue
        algorithms.append(_entry(name, cls, cls.settings_spec))
    early: list[dict[str, Any]] = []
    for name in early_stopping_names():
        try:
            es = get_early_stopping(name)
        except UnknownAlgorithmError as e:
            early.append({"name": name, "description": str(e), "settings": []})
            continue
        early.append(_entry(name, es, es.settings_spec))
    return {"algorithms": algorithms, "earlyStopping": early}


@router.get("/algorithms", response_model=AlgorithmCatalogue, responses=problems())
def list_algorithms(principal: PrincipalDep) -> Any:
    """Suggestion and early-stopping algorithms, with each setting's default and meaning."""
    return catalogue()


@router.post(
    "/validate",
    response_model=ValidationResult,
    responses=problems(413, 415),
    openapi_extra=YAML_OR_JSON_BODY,
)
def validate(principal: PrincipalDep, body: Annotated[Body, Depends(experiment_body)]) -> Any:
    """Check experiment documents (JSON, or YAML with any number of documents) without
    creating anything; every problem comes with its field path."""
    try:
        experiments_from(body)
    except InvalidExperimentError as e:
        errors = [{"path": x.path, "message": x.message} for x in e.errors]
        return {"valid": False, "errors": errors}
    return {"valid": True, "errors": []}
