"""Observation logs of a trial: read them; push a batch (what ``katib.report_metrics`` does)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from katib.api._auth import Role
from katib.api._body import Body, json_body, load_json
from katib.api._problems import BadRequestError
from katib.api.deps import ControllerDep, PrincipalDep, StorageDep
from katib.api.routes._common import Name, Namespace, problems
from katib.api.routes.trials import trial_for
from katib.api.schemas import ObservationLog, ObservationPush, PushResult
from katib.controller import observation_points, parse_observations
from katib.errors import ConflictError
from katib.views import observation_log_json

router = APIRouter(prefix="/api/v1", tags=["observations"])


@router.get(
    "/namespaces/{namespace}/trials/{trial}/observations",
    response_model=ObservationLog,
    responses=problems(404),
)
def get_observations(
    namespace: Namespace,
    trial: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    metric: Annotated[str | None, Query(max_length=253, description="Only this metric.")] = None,
) -> Any:
    """Every value the trial reported, in order (Katib's observation log)."""
    record = trial_for(storage, principal, namespace, trial, Role.VIEWER)
    return observation_log_json(record, storage.get_observations(record.id, metric))


@router.post(
    "/namespaces/{namespace}/trials/{trial}/observations",
    response_model=PushResult,
    responses=problems(400, 403, 404, 409, 413, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ObservationPush.model_json_schema()}},
        }
    },
)
def push_observations(
    namespace: Namespace,
    trial: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    controller: ControllerDep,
    body: Annotated[Body, Depends(json_body)],
) -> Any:
    """Record a batch of metric values of a running trial:
    `{"observations": [{"name", "value", "step"?, "timestamp"?}]}` or `{"metrics": {...}}`.
    When this server runs the trial, its controller sees them at once (metric strategies,
    early stopping)."""
    record = trial_for(storage, principal, namespace, trial, Role.EDITOR)
    try:
        observations = parse_observations(load_json(body.data))
    except ValueError as e:
        raise BadRequestError(str(e)) from None
    if not record.state.is_active:
        raise ConflictError(
            f"trial {namespace}/{trial} has finished ({record.state.value}); "
            "it takes no more observations"
        )
    if controller is None or not controller.push(namespace, trial, observations):
        storage.add_observations(record.id, observation_points(observations))
    return {"accepted": len(observations)}
