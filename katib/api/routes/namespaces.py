"""Namespaces (list, create) and the caller's own token (``whoami``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from katib._time import rfc3339
from katib.api import _audit
from katib.api._auth import ForbiddenError, Role, visible_namespaces
from katib.api.deps import PrincipalDep, StorageDep
from katib.api.routes._common import Namespace, problems
from katib.api.schemas import (
    NamespaceCreate,
    NamespaceLimit,
    NamespaceList,
    NamespacePublic,
    WhoAmI,
)
from katib.storage import NamespaceRecord
from katib.views import token_view

router = APIRouter(prefix="/api/v1", tags=["namespaces"])


def namespace_view(record: NamespaceRecord, role: str) -> dict[str, Any]:
    return {
        "name": record.name,
        "createdAt": rfc3339(record.created_at),
        "createdBy": record.created_by,
        "experiments": record.experiments,
        "tokens": record.tokens,
        "role": role,
        "maxRunningTrials": record.max_running_trials,
        "runningTrials": record.running_trials,
    }


@router.get("/whoami", response_model=WhoAmI, responses=problems())
def whoami(principal: PrincipalDep) -> Any:
    """The token of this request: its name, role, namespace and expiry (never its secret)."""
    return token_view(principal)


@router.get("/namespaces", response_model=NamespaceList, responses=problems())
def list_namespaces(storage: StorageDep, principal: PrincipalDep) -> Any:
    """The namespaces the token sees (admins: every one) with the token's role in each."""
    names = visible_namespaces(principal)
    records = storage.list_namespaces(names)
    if names is not None and not records:
        records = [NamespaceRecord(principal.namespace)]
    return {"items": [namespace_view(r, principal.role) for r in records]}


@router.post(
    "/namespaces",
    status_code=status.HTTP_201_CREATED,
    response_model=NamespacePublic,
    responses=problems(403, 409),
)
def create_namespace(
    request: NamespaceCreate, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """Create an (empty) namespace to hand out tokens for (admins only)."""
    if Role.of(principal) != Role.ADMIN:
        raise ForbiddenError("only admins create namespaces")
    record = storage.create_namespace(request.name, created_by=principal.name)
    _audit.record(storage, principal, request.name, "namespace.create", request.name)
    return namespace_view(record, principal.role)



@router.put(
    "/namespaces/{namespace}/limits",
    response_model=NamespacePublic,
    responses=problems(403),
)
def set_limits(
    namespace: Namespace, request: NamespaceLimit, storage: StorageDep, principal: PrincipalDep
) -> Any:
    """Set how many trials of a namespace may run at once on a server (admins only): the fair
    share that keeps one team from starving the others. ``null`` removes the limit."""
    if Role.of(principal) != Role.ADMIN:
        raise ForbiddenError("only admins set namespace limits")
    storage.set_namespace_limit(namespace, request.max_running_trials)
    _audit.record(
        storage, principal, namespace, "namespace.limits", namespace,
        maxRunningTrials=request.max_running_trials,
    )
    [record] = storage.list_namespaces([namespace])
    return namespace_view(record, principal.role)
