"""What the dashboard reads: trials as columns (with live updates), curves, importance.

These answer compressed (gzip) when the client accepts it: 10,000 trials are a few hundred
kilobytes on the wire.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from katib import service
from katib.api._auth import Role
from katib.api._importance import METHODS, ImportanceUnavailableError, importance
from katib.api._problems import InvalidRequestError
from katib.api._trial_table import table_json
from katib.api._trial_table import wanted as wanted_columns
from katib.api.deps import PrincipalDep, StorageDep
from katib.api.routes._common import MAX_ID, After, Name, Namespace, problems
from katib.api.routes.experiments import experiment_for
from katib.api.schemas import Curves, Importance, TrialTable
from katib.errors import FieldError
from katib.records import TrialState
from katib.storage import TrialColumns

router = APIRouter(prefix="/api/v1", tags=["analysis"])

#: Most trials one trial-table page carries.
MAX_TABLE_PAGE = 20_000
#: Most trials whose curves one request asks for.
MAX_CURVES = 200
#: Bodies smaller than this are sent as they are.
_GZIP_MIN = 1024


def _ids(text: str | None, field: str, most: int) -> list[int]:
    if not text:
        return []
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidRequestError(
            [FieldError(field, "a comma-separated list of trial ids")]
        ) from None
    if len(ids) > most or any(not 0 < i <= MAX_ID for i in ids):
        raise InvalidRequestError(
            [FieldError(field, f"at most {most} trial ids, each from 1 to {MAX_ID}")]
        )
    return ids


class _Encoded:
    """A JSON body, and its gzip form once someone asked for it."""

    def __init__(self, body: Any) -> None:
        self.raw = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        self._packed: bytes | None = None

    @property
    def packed(self) -> bytes:
        if self._packed is None:
            self._packed = gzip.compress(self.raw, compresslevel=4)
        return self._packed

    def response(self, request: Request) -> Response:
        headers = {"Vary": "Accept-Encoding", "Cache-Control": "no-store"}
        data = self.raw
        if len(data) >= _GZIP_MIN and "gzip" in request.headers.get("accept-encoding", ""):
            data = self.packed
            headers["Content-Encoding"] = "gzip"
        return Response(data, media_type="application/json", headers=headers)


def compact_json(request: Request, body: Any) -> Response:
    """JSON without spaces, gzip-compressed when the client accepts it."""
    return _Encoded(body).response(request)


# Answers about experiments whose trials have all finished (finished trials never change),
# keyed by everything they depend on: a second look at a large finished experiment is served
# from memory.
_answers: OrderedDict[tuple[Any, ...], _Encoded] = OrderedDict()
_answers_lock = threading.Lock()
_ANSWERS_KEPT = 8
_ANSWER_WORTH_KEEPING = 64 * 1024


@router.get(
    "/namespaces/{namespace}/experiments/{name}/trial-table",
    response_model=TrialTable,
    responses=problems(404),
)
def trial_table(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    request: Request,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=MAX_TABLE_PAGE, description="Most new trials.")] = 10_000,
    refresh: Annotated[
        str | None,
        Query(
            max_length=6_000,
            description="Comma-separated ids of trials to send again as they are now (the "
            "ones a live view knows as Created or Running).",
        ),
    ] = None,
    events_after: Annotated[
        int | None,
        Query(alias="eventsAfter", ge=0, le=MAX_ID, description="Only events after this id."),
    ] = None,
) -> Response:
    """Trials as columns, in creation order, for tables and plots; and the experiment's
    status and events. A live view polls with `after` = the last `cursor`, `refresh` = the
    ids of its unfinished trials and `eventsAfter` = the last `eventsCursor`: the answer then
    holds only what changed."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    wanted = _ids(refresh, "refresh", 500)
    events = storage.events_after(record.id, events_after)
    status = service.experiment_view(storage, record)["status"]
    key: tuple[Any, ...] | None = None
    if not wanted:
        count, largest, unfinished = storage.trial_fingerprint(record.id)
        if unfinished == 0:
            last_event = events[-1].id if events else None
            key = (record.id, record.created_at, after, limit, events_after, count, largest,
                   json.dumps(status, sort_keys=True), last_event)
            with _answers_lock:
                cached = _answers.get(key)
                if cached is not None:
                    _answers.move_to_end(key)
                    return cached.response(request)
    parameters, metrics = wanted_columns(record)
    trials = storage.trial_columns(
        record.id, parameters=parameters, metrics=metrics, after=after, limit=limit
    )
    refreshed = (
        storage.trial_columns(record.id, parameters=parameters, metrics=metrics, ids=wanted)
        if wanted
        else TrialColumns()
    )
    body = table_json(
        record,
        trials,
        refreshed,
        trials.id[-1] if trials.id else after,
        len(trials) < limit,
        status,
        events,
        events[-1].id if events else events_after,
    )
    encoded = _Encoded(body)
    if key is not None and len(encoded.raw) >= _ANSWER_WORTH_KEEPING:
        with _answers_lock:
            _answers[key] = encoded
            while len(_answers) > _ANSWERS_KEPT:
                _answers.popitem(last=False)
    return encoded.response(request)


@router.get(
    "/namespaces/{namespace}/experiments/{name}/curves",
    response_model=Curves,
    responses=problems(404),
)
def curves(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    request: Request,
    metric: Annotated[str, Query(min_length=1, max_length=253, description="The metric.")],
    trials: Annotated[
        str, Query(min_length=1, max_length=4000, description="Comma-separated trial ids.")
    ],
) -> Response:
    """Every reported value of `metric` for each of the given trials (intermediate curves):
    `{"curves": {"<id>": [[step, value, unix time], ...]}}`."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    ids = _ids(trials, "trials", MAX_CURVES)
    owned = {t.id for t in storage.trials_by_id(record.id, ids)}
    found = storage.observation_curves(sorted(owned), metric)
    body = {
        "metric": metric,
        "curves": {
            str(i): [[s, v, round(ts, 3)] for s, v, ts in points] for i, points in found.items()
        },
    }
    return compact_json(request, body)


@router.get(
    "/namespaces/{namespace}/experiments/{name}/importance",
    response_model=Importance,
    responses=problems(404),
)
def parameter_importance(
    namespace: Namespace,
    name: Name,
    storage: StorageDep,
    principal: PrincipalDep,
    method: Annotated[
        str, Query(pattern="^(" + "|".join(METHODS) + ")$", description="The evaluator.")
    ] = "ped-anova",
) -> Any:
    """How much each parameter matters to the objective, from Optuna's importance
    evaluators over the succeeded trials (PED-ANOVA by default, `fanova`,
    `mean-decrease-impurity`), on a seeded sample of at most 2,000 of them (1,000 for
    fANOVA). `importances` is empty,
    with the reason in `detail`, while there are too few trials."""
    record = experiment_for(storage, principal, namespace, name, Role.VIEWER)
    done = storage.list_trials(record.id, [TrialState.SUCCEEDED])
    try:
        return {**importance(record, done, method), "detail": ""}
    except ImportanceUnavailableError as e:
        return {"method": method, "trials": len(done), "importances": [], "detail": str(e)}
