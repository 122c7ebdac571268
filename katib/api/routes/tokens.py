"""API tokens: create (the plaintext is shown once), list, revoke.

Admins manage every token; owners manage the tokens of their namespace, up to owner; editors
and viewers manage none.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from katib.api._auth import ForbiddenError, Principal, Role, article, require
from katib.api._problems import InvalidRequestError
from katib.api.deps import PrincipalDep, StorageDep
from katib.api.routes._common import MAX_ID, problems
from katib.api.schemas import TokenCreate, TokenCreated, TokenList
from katib.errors import ConflictError, FieldError, NotFoundError
from katib.storage import ALL_NAMESPACES, Storage, TokenRecord
from katib.views import token_view

router = APIRouter(prefix="/api/v1", tags=["tokens"])


def _may_manage(principal: Principal, namespace: str, hidden: str) -> None:
    if Role.of(principal) == Role.ADMIN:
        return
    if namespace == ALL_NAMESPACES:
        raise ForbiddenError("only admins manage admin tokens")
    require(principal, namespace, Role.OWNER, hidden=hidden)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=problems(403, 404),
)
def create_token(request: TokenCreate, storage: StorageDep, principal: PrincipalDep) -> Any:
    """A new token with a role in one namespace (admin tokens: namespace `*`). The token
    itself is in the answer, and only there: it is stored hashed."""
    if (request.role == "admin") != (request.namespace == ALL_NAMESPACES):
        raise InvalidRequestError(
            [FieldError("namespace", "admin tokens, and only they, have namespace '*'")]
        )
    _may_manage(principal, request.namespace, f"namespace {request.namespace} not found")
    if Role[request.role.upper()] > Role.of(principal):
        raise ForbiddenError(
            f"{article(principal.role)} {principal.role} token cannot create "
            f"{request.role} tokens"
        )
    token, secret = storage.create_token(request.name, request.namespace, request.role)
    return {**token_view(token), "token": secret}


@router.get("/tokens", response_model=TokenList, responses=problems(403))
def list_tokens(
    storage: StorageDep,
    principal: PrincipalDep,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
) -> Any:
    """Every token an admin manages, or those of an owner's namespace."""
    if Role.of(principal) == Role.ADMIN:
        tokens = storage.list_tokens(include_revoked=revoked)
    else:
        _may_manage(principal, principal.namespace, "not found")
        tokens = storage.list_tokens(principal.namespace, include_revoked=revoked)
    return {"items": [token_view(t) for t in tokens]}


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(403, 404, 409),
)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], storage: StorageDep, principal: PrincipalDep
) -> Response:
    """Revoke a token: requests with it get 401 from now on."""
    hidden = f"token #{token_id} not found"
    token = storage.get_token(token_id)
    if Role.of(principal) != Role.ADMIN and token.namespace != principal.namespace:
        raise NotFoundError(hidden)  # other namespaces' tokens do not exist for this one
    _may_manage(principal, token.namespace, hidden)
    if token.role == "admin" and not token.revoked and _last_admin(storage, token):
        raise ConflictError("this is the last admin token; create another one first")
    storage.revoke_token(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _last_admin(storage: Storage, token: TokenRecord) -> bool:
    others = [t for t in storage.list_tokens(ALL_NAMESPACES) if t.id != token.id]
    return not any(t.role == "admin" for t in others)
