"""Trials: list (filter, sort, keyset pages), get, logs, kill."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from katib import service
from katib.api import _audit
from katib.api import _operations as ops
from katib.api._auth import Principal, Role, require, sees
from katib.api._views import page
from katib.api.deps import ControllerDep, PrincipalDep, StorageDep
from katib.api.routes._common import After, Limit, Name, Namespace, problems
from katib.api.schemas import TrialList, TrialPublic
from katib.errors import NoLogError
from katib.records import TrialRecord, TrialState
from katib.storage import Storage
from katib.views import trial_json

router = APIRouter(prefix="/api/v1", tags=["trials"])

#: Most log lines ``tail`` returns.
MAX_TAIL = 100_000
#: Most bytes of log one answer carries (a client asks again from ``X-Next-Offset``).
MAX_LOG_CHUNK = 16 * 1024 * 1024
#: The response header with the byte offset to ask for next.
NEXT_OFFSET = "X-Next-Offset"


def trial_for(
    storage: Storage, principal: Principal, namespace: str, name: str, role: Role
) -> TrialRecord:
    require(principal, namespace, role, hidden=f"trial {namespace}/{name} not found")
    return storage.get_trial(namespace, name)


def _experiment_name(storage: Storage, trial: TrialRecord) -> str:
    return storage.get_experiment_by_id(trial.experiment_id).name


@router.get(
    "/namespaces/{namespace}/experiments/{name}/trials",
    response_model=TrialList,
    responses=problems(404),
)
def list_trials(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    state: Annotated[
        list[TrialState] | None, Query(description="Only trials in these states (repeatable).")
    ] = None,
    sort: Annotated[
        Literal["created", "-created", "objective", "-objective"],
        Query(description="Order: by creation or by objective value; `-` for descending."),
    ] = "created",
    after: After = None,
    limit: Limit = 100,
) -> Any:
    """The trials of an experiment, a page at a time. Poll with `after` set to the last
    page's `metadata.continue` to get only the trials created since (live views)."""
    require(principal, namespace, Role.VIEWER, hidden=f"experiment {namespace}/{name} not found")
    experiment_id = storage.experiment_id(namespace, name)
    trials = storage.list_trials_page(
        experiment_id, states=state or None, sort=sort, after=after, limit=limit
    )
    cursor = trials[-1].id if trials else after
    # Built from the stored records as they are: no second validation on the hot path.
    return JSONResponse(page([trial_json(t, name) for t in trials], cursor))


@router.get(
    "/namespaces/{namespace}/trials/{trial}",
    response_model=TrialPublic,
    responses=problems(404),
)
def get_trial(
    namespace: Namespace, trial: Name, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """One trial: its parameters, state and metrics."""
    record = trial_for(storage, principal, namespace, trial, Role.VIEWER)
    return trial_json(record, _experiment_name(storage, record))


@router.get(
    "/trials",
    response_model=TrialList,
    responses=problems(),
)
def find_trials(
    storage: StorageDep,
    principal: PrincipalDep,
    name: Annotated[str, Query(min_length=1, max_length=253, description="The trial's name.")],
) -> Any:
    """The trials of that name in every namespace the token sees (`katib logs TRIAL`)."""
    found = [t for t in storage.find_trials(name) if sees(principal, t.namespace)]
    items = [trial_json(t, _experiment_name(storage, t)) for t in found]
    return JSONResponse(page(items, None))


@router.get(
    "/namespaces/{namespace}/trials/{trial}/logs",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}},
            "headers": {NEXT_OFFSET: {"description": "The offset to ask for next (bytes)."}},
        },
        **problems(404),
    },
)
def trial_logs(
    namespace: Namespace,
    trial: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    tail: Annotated[
        int | None, Query(ge=0, le=MAX_TAIL, description="Only the last lines.")
    ] = None,
    offset: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**62,
            description="Only the output from this byte on (to follow a running trial: ask "
            f"again with the `{NEXT_OFFSET}` header of the previous answer).",
        ),
    ] = None,
) -> Response:
    """The trial's output (stdout and stderr) as the process wrote it, as `katib logs`."""
    record = trial_for(storage, principal, namespace, trial, Role.VIEWER)
    path = service.trial_log_path(storage, record)
    if not path.is_file():
        raise NoLogError(f"trial {namespace}/{trial} has no log (yet)")
    if tail is not None:
        data, end = _tail(path, tail), path.stat().st_size
    else:
        start = offset or 0
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(MAX_LOG_CHUNK)
        end = start + len(data)
    return Response(
        data, media_type="text/plain; charset=utf-8", headers={NEXT_OFFSET: str(end)}
    )


def _tail(path: Path, lines: int) -> bytes:
    """The last ``lines`` lines, reading the file backwards in blocks."""
    if lines == 0:
        return b""
    with open(path, "rb") as f:
        f.seek(0, 2)
        end = f.tell()
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= lines:
            step = min(65536, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    body = data[:-1] if data.endswith(b"\n") else data
    kept = body.split(b"\n")[-lines:]
    return b"\n".join(kept) + (b"\n" if data.endswith(b"\n") else b"")


@router.post(
    "/namespaces/{namespace}/trials/{trial}/kill",
    response_model=TrialPublic,
    responses={202: {"model": TrialPublic}, **problems(403, 404, 409)},
)
def kill_trial(
    namespace: Namespace,
    trial: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    controller: ControllerDep,
) -> Any:
    """Kill a trial: 200 when it is recorded Killed at once, 202 when its controller kills
    it (it then ends as Killed, reason KilledByUser)."""
    record = trial_for(storage, principal, namespace, trial, Role.EDITOR)
    record, ended = ops.kill_trial(storage, record, controller)
    _audit.record(storage, principal, namespace, "trial.kill", trial)
    body = trial_json(record, _experiment_name(storage, record))
    return body if ended else JSONResponse(body, status_code=202)
