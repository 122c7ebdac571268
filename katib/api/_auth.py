"""Who may do what: roles per namespace, and the errors that say no.

A token carries one role in one namespace (admin tokens: every namespace, ``*``). Roles are
ordered: a viewer reads; an editor also creates, stops, kills, edits and pushes observations;
an owner also deletes and manages the tokens of its namespace; an admin does everything
everywhere. A token with no role in a namespace gets 404 for everything in it, exactly as if
the object did not exist, so that names never leak across namespaces.
"""

from __future__ import annotations

from enum import IntEnum

from katib.errors import ForbiddenError, NotFoundError, UnauthorizedError
from katib.storage import ALL_NAMESPACES, TokenRecord

__all__ = [
    "ForbiddenError",
    "Principal",
    "Role",
    "UnauthorizedError",
    "article",
    "require",
    "sees",
    "visible_namespaces",
]

#: The principal of a request is the token that authenticated it.
Principal = TokenRecord


class Role(IntEnum):
    """Roles, weakest first; a role may do everything the weaker ones may."""

    VIEWER = 0
    EDITOR = 1
    OWNER = 2
    ADMIN = 3

    @classmethod
    def of(cls, principal: Principal) -> Role:
        return cls[principal.role.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


def sees(principal: Principal, namespace: str) -> bool:
    """Whether the token has any role in ``namespace``."""
    return principal.namespace in (namespace, ALL_NAMESPACES)


def require(principal: Principal, namespace: str, role: Role, *, hidden: str) -> None:
    """Allow the action in ``namespace`` to ``role`` and stronger roles only.

    Args:
        principal: The request's token.
        namespace: Where the action happens.
        role: The weakest role allowed.
        hidden: The not-found message to answer when the token has no role in the namespace
            (the same message a missing object gets, so the answer tells nothing).

    Raises:
        NotFoundError: The token has no role in the namespace.
        ForbiddenError: Its role there is too weak.
    """
    if not sees(principal, namespace):
        raise NotFoundError(hidden)
    have = Role.of(principal)
    if have < role:
        raise ForbiddenError(
            f"{article(have.label)} {have.label} token may not do this in namespace {namespace} "
            f"(needs {role.label} or stronger)"
        )


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def visible_namespaces(principal: Principal) -> list[str] | None:
    """The namespaces the token sees; None for every namespace."""
    return None if principal.namespace == ALL_NAMESPACES else [principal.namespace]
