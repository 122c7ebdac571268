"""Experiments: create (JSON or YAML), list, get, delete, stop, restart, edit, archive, best,
Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse

from katib import service
from katib.api import _audit
from katib.api import _operations as ops
from katib.api._auth import Principal, Role, require, visible_namespaces
from katib.api._body import Body, experiment_body, one_experiment
from katib.api._problems import InvalidRequestError
from katib.api._views import page
from katib.api.deps import ControllerDep, PrincipalDep, StorageDep
from katib.api.routes._common import (
    YAML_OR_JSON_BODY,
    After,
    Limit,
    Name,
    Namespace,
    problems,
)
from katib.api.schemas import (
    BestTrial,
    BudgetUpdate,
    EventList,
    ExperimentList,
    ExperimentPublic,
    ParetoFront,
    RestartRequest,
)
from katib.controller import check_runnable
from katib.errors import FieldError, InvalidExperimentError
from katib.records import ExperimentCondition, ExperimentRecord
from katib.storage import Storage
from katib.views import events_json

router = APIRouter(prefix="/api/v1", tags=["experiments"])

ConditionFilter = Annotated[
    ExperimentCondition | None, Query(description="Only experiments in this condition.")
]
SourceDir = Annotated[
    str | None,
    Query(
        alias="sourceDir",
        min_length=1,
        max_length=4096,
        description="The folder on the server's machine that the trials' relative paths (the "
        "script in `command`, `workingDir`) resolve against, as `katib run` resolves them "
        "against the YAML file's folder: absolute, or relative to the folder the server was "
        "started in (the default).",
    ),
]
ArchivedFilter = Annotated[
    bool, Query(description="List archived experiments (true) instead of the others (false).")
]


def experiment_for(
    storage: Storage, principal: Principal, namespace: str, name: str, role: Role
) -> ExperimentRecord:
    """The experiment, if the token has ``role`` in its namespace (404 without any role)."""
    missing = f"experiment {namespace}/{name} not found"
    require(principal, namespace, role, hidden=missing)
    return storage.get_experiment(namespace, name)


@router.post(
    "/namespaces/{namespace}/experiments",
    status_code=status.HTTP_201_CREATED,
    response_model=ExperimentPublic,
    responses=problems(400, 403, 404, 409, 413, 415),
    openapi_extra=YAML_OR_JSON_BODY,
)
def create_experiment(
    namespace: Namespace,
    storage: StorageDep,
    principal: PrincipalDep,
    body: Annotated[Body, Depends(experiment_body)],
    request: Request,
    response: Response,
    source_dir: SourceDir = None,
) -> Any:
    """Create an experiment from a Katib Experiment document (JSON, or YAML with
    `Content-Type: application/yaml`). `metadata.namespace` must be absent or match.
    The server's controller starts it at once."""
    require(principal, namespace, Role.EDITOR, hidden=f"namespace {namespace} not found")
    folder = _source_folder(request.app.state.work_dir, source_dir)
    exp = one_experiment(body)
    given = exp.metadata.namespace
    if given is not None and given != namespace:
        raise InvalidExperimentError(
            [
                FieldError(
                    "metadata.namespace",
                    f"{given!r} differs from the namespace in the URL ({namespace!r}); "
                    "leave it out or make them equal",
                )
            ],
            "request body",
        )
    exp.metadata.namespace = namespace
    check_runnable(exp, storage)
    record = storage.create_experiment(exp, source_dir=folder)
    _audit.record(storage, principal, namespace, "experiment.create", record.name)
    response.headers["Location"] = f"/api/v1/namespaces/{namespace}/experiments/{record.name}"
    return service.experiment_view(storage, record)


def _source_folder(work_dir: str, source_dir: str | None) -> str:
    """The folder trials of a new experiment resolve relative paths against."""
    if source_dir is None:
        return work_dir
    try:
        folder = (Path(work_dir) / source_dir).resolve()
        ok = folder.is_dir()
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise InvalidRequestError(
            [FieldError("sourceDir", f"{source_dir!r} is not a folder on the server's machine")]
        )
    return str(folder)


def _list(
    storage: Storage,
    namespaces: list[str] | None,
    condition: ExperimentCondition | None,
    archived: bool,
    after: int | None,
    limit: int,
) -> JSONResponse:
    records = storage.list_experiments_page(
        namespaces=namespaces,
        conditions=None if condition is None else [condition],
        archived=archived,
        after=after,
        limit=limit,
    )
    cursor = records[-1].id if records else after
    return JSONResponse(page(service.experiments_view(storage, records), cursor))


@router.get(
    "/namespaces/{namespace}/experiments",
    response_model=ExperimentList,
    responses=problems(404),
)
def list_namespace_experiments(
    namespace: Namespace,
    storage: StorageDep,
    principal: PrincipalDep,
    condition: ConditionFilter = None,
    archived: ArchivedFilter = False,
    after: After = None,
    limit: Limit = 100,
) -> Any:
    """The experiments of one namespace, oldest first, a page at a time."""
    require(principal, namespace, Role.VIEWER, hidden=f"namespace {namespace} not found")
    return _list(storage, [namespace], condition, archived, after, limit)


@router.get("/experiments", response_model=ExperimentList, responses=problems())
def list_experiments(
    storage: StorageDep,
    principal: PrincipalDep,
    condition: ConditionFilter = None,
    archived: ArchivedFilter = False,
    after: After = None,
    limit: Limit = 100,
) -> Any:
    """The experiments of every namespace the token sees, oldest first, a page at a time."""
    return _list(storage, visible_namespaces(principal), condition, archived, after, limit)


@router.get(
    "/namespaces/{namespace}/experiments/{name}",
    response_model=ExperimentPublic,
    responses=problems(404),
)
def get_experiment(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """One experiment with its status and optimal trial."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    return service.experiment_view(storage, record)


@router.delete(
    "/namespaces/{namespace}/experiments/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 409),
)
def delete_experiment(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    controller: ControllerDep,
) -> Response:
    """Delete a stopped experiment with its trials, observations and logs (owners only)."""
    record = experiment_for(storage, principal, namespace, name, Role.OWNER)
    ops.delete(storage, record, controller)
    _audit.record(storage, principal, namespace, "experiment.delete", name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/namespaces/{namespace}/experiments/{name}/stop",
    response_model=ExperimentPublic,
    responses={202: {"model": ExperimentPublic}, **problems(403, 404, 409)},
)
def stop_experiment(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    controller: ControllerDep,
) -> Any:
    """Stop an experiment: 200 when it ended at once, 202 when its controller stops it."""
    record = experiment_for(storage, principal, namespace, name, Role.EDITOR)
    record, ended = ops.stop(storage, record, controller)
    _audit.record(storage, principal, namespace, "experiment.stop", name)
    if controller is not None and not ended:
        controller.refresh(record.id)
    body = service.experiment_view(storage, record)
    return body if ended else JSONResponse(body, status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/namespaces/{namespace}/experiments/{name}/restart",
    response_model=ExperimentPublic,
    responses=problems(403, 404, 409),
)
def restart_experiment(
    namespace: Namespace,
    name: Name,
    budget: RestartRequest,
    storage: StorageDep,
    principal: PrincipalDep,
) -> Any:
    """Restart a finished experiment (resumePolicy not Never) with a larger budget."""
    record = experiment_for(storage, principal, namespace, name, Role.EDITOR)
    record = ops.restart(
        storage,
        record,
        budget.max_trial_count,
        budget.parallel_trial_count,
        budget.max_failed_trial_count,
    )
    _audit.record(
        storage, principal, namespace, "experiment.restart", name, **_budget_detail(budget)
    )
    return service.experiment_view(storage, record)


def _budget_detail(budget: BudgetUpdate) -> dict[str, Any]:
    return budget.model_dump(by_alias=True, exclude_none=True)


@router.patch(
    "/namespaces/{namespace}/experiments/{name}",
    response_model=ExperimentPublic,
    responses=problems(403, 404, 409),
)
def edit_experiment(
    namespace: Namespace,
    name: Name,
    budget: BudgetUpdate,
    storage: StorageDep,
    principal: PrincipalDep,
    controller: ControllerDep,
) -> Any:
    """Change the trial budget; an experiment this server runs takes it at once, one that
    another process runs within seconds. A finished experiment restarts with the new budget
    when its resumePolicy allows it (409 when it is Never, saying how to continue)."""
    record = experiment_for(storage, principal, namespace, name, Role.EDITOR)
    record = ops.apply_budget(
        storage,
        record,
        budget.max_trial_count,
        budget.parallel_trial_count,
        budget.max_failed_trial_count,
    )
    detail = _budget_detail(budget)
    _audit.record(storage, principal, namespace, "experiment.budget", name, **detail)
    if controller is not None:
        controller.refresh(record.id)
    return service.experiment_view(storage, record)


@router.post(
    "/namespaces/{namespace}/experiments/{name}/archive",
    response_model=ExperimentPublic,
    responses=problems(403, 404, 409),
)
def archive_experiment(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """Hide a finished experiment from lists (unless they ask for `archived=true`)."""
    record = experiment_for(storage, principal, namespace, name, Role.EDITOR)
    ops.set_archived(storage, record, True)
    _audit.record(storage, principal, namespace, "experiment.archive", name)
    return service.experiment_view(storage, record)


@router.post(
    "/namespaces/{namespace}/experiments/{name}/unarchive",
    response_model=ExperimentPublic,
    responses=problems(403, 404),
)
def unarchive_experiment(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """Show an archived experiment in lists again."""
    record = experiment_for(storage, principal, namespace, name, Role.EDITOR)
    ops.set_archived(storage, record, False)
    _audit.record(storage, principal, namespace, "experiment.unarchive", name)
    return service.experiment_view(storage, record)


@router.get(
    "/namespaces/{namespace}/experiments/{name}/best",
    response_model=BestTrial,
    # paretoFront only where there is one: a single-objective body stays Katib's shape.
    response_model_exclude_unset=True,
    responses=problems(404),
)
def best_trial(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """The optimal trial (as `katib best NAME -o json`); `bestTrialName` is null without one.
    With several objectives, `paretoFront` lists the trials no other trial dominates."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    return service.best_view(storage, record)


@router.get(
    "/namespaces/{namespace}/experiments/{name}/pareto",
    response_model=ParetoFront,
    responses=problems(404),
)
def pareto_front(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """The optimized metrics (`objectives`, with their directions) and the Pareto front: the
    trials no other trial dominates, each with its value of every objective (with one
    objective: the trials with the best value). What a dashboard plots."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    return service.pareto_view(storage, record)


@router.get(
    "/namespaces/{namespace}/experiments/{name}/events",
    response_model=EventList,
    responses=problems(404),
)
def list_events(
    namespace: Namespace, name: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """What the controller did and saw, oldest first (as `katib describe experiment`)."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    return {"items": events_json(storage.list_events(record.id))}
