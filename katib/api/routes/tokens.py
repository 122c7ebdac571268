"""API tokens: create (the plaintext is shown once), list, revoke.

Admins manage every token; owners manage the tokens of their namespace, up to owner; editors
and viewers manage none.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from katib._time import now, rfc3339
from katib.api import _audit
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
    expires_at = None
    if request.expires_at is not None:
        expires_at = request.expires_at.timestamp()
        if request.expires_at.tzinfo is None or expires_at <= now():
            raise InvalidRequestError(
                [FieldError("expiresAt", "a time in the future, with its time zone (RFC 3339)")]
            )
    token, secret = storage.create_token(
        request.name, request.namespace, request.role, expires_at=expires_at
    )
    _audit.record(
        storage,
        principal,
        token.namespace,
        "token.create",
        f"token #{token.id}",
        name=token.name,
        role=token.role,
        expiresAt=rfc3339(expires_at),
    )
    return {**token_view(token), "token": secret}


@router.get("/tokens", response_model=TokenList, responses=problems(403))
def list_tokens(
    storage: StorageDep,
    principal: PrincipalDep,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
    namespace: Annotated[
        str | None,
        Query(
            max_length=63,
            pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
            description="Only the tokens of this namespace (`*`: admin tokens).",
        ),
    ] = None,
) -> Any:
    """Every token an admin manages, or those of an owner's namespace."""
    if Role.of(principal) == Role.ADMIN:
        tokens = storage.list_tokens(namespace, include_revoked=revoked)
    elif namespace is not None and namespace != principal.namespace:
        raise NotFoundError(f"namespace {namespace} not found")
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
    _audit.record(
        storage, principal, token.namespace, "token.revoke", f"token #{token_id}", name=token.name
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/tokens/{token_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenCreated,
    responses=problems(403, 404, 409),
)
def rotate_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], storage: StorageDep, principal: PrincipalDep
) -> Any:
    """Replace a token with a new one of the same name, namespace, role and expiry: the new
    secret is in the answer (and only there), and the old one is revoked at once."""
    hidden = f"token #{token_id} not found"
    token = storage.get_token(token_id)
    if Role.of(principal) != Role.ADMIN and token.namespace != principal.namespace:
        raise NotFoundError(hidden)
    _may_manage(principal, token.namespace, hidden)
    if token.revoked:
        raise ConflictError(f"token #{token_id} is revoked; create a new one instead")
    new, secret = storage.create_token(
        token.name, token.namespace, token.role, expires_at=token.expires_at
    )
    storage.revoke_token(token_id)
    _audit.record(
        storage, principal, token.namespace, "token.rotate", f"token #{token_id}",
        name=token.name, replacedBy=f"token #{new.id}",
    )
    return {**token_view(new), "token": secret}


def _last_admin(storage: Storage, token: TokenRecord) -> bool:
    others = [t for t in storage.list_tokens(ALL_NAMESPACES) if t.id != token.id]
    return not any(t.role == "admin" for t in others)
