"""Request dependencies: the storage, the controller, and the principal (the bearer token).

Use them as annotated parameters, as in FastAPI's full-stack template::

    def get_experiment(storage: StorageDep, principal: PrincipalDep, ...) -> ...
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from katib.api._auth import Principal, UnauthorizedError
from katib.controller import BackgroundController
from katib.storage import Storage

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer <token>`")


def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


def get_controller(request: Request) -> BackgroundController | None:
    controller: BackgroundController | None = request.app.state.controller
    return controller


StorageDep = Annotated[Storage, Depends(get_storage)]
ControllerDep = Annotated[BackgroundController | None, Depends(get_controller)]


def get_principal(
    storage: StorageDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The valid token of the request; UnauthorizedError (401) without one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("this endpoint needs an API token: Authorization: Bearer <token>")
    principal = storage.resolve_token(credentials.credentials)
    if principal is None:
        raise UnauthorizedError("the token is unknown or revoked")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
