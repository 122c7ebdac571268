"""The first admin token of a server: from ``KATIB_ADMIN_TOKEN``, or made and shown once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from katib.errors import KatibError
from katib.storage import ALL_NAMESPACES, Storage

ADMIN_TOKEN_ENV = "KATIB_ADMIN_TOKEN"
#: Shortest token accepted from the environment (guessable ones are refused).
MIN_TOKEN_LENGTH = 16


def ensure_admin_token(storage: Storage, environ: Mapping[str, str] | None = None) -> str | None:
    """Make sure the server has an admin token.

    With ``KATIB_ADMIN_TOKEN`` set, that token is made a valid admin token (stored hashed;
    reinstated if it had been revoked). Otherwise, if no valid admin token exists, one is
    created.

    Returns:
        The plaintext of a token created now (to print once), else None.

    Raises:
        KatibError: ``KATIB_ADMIN_TOKEN`` is shorter than 16 characters.
    """
    env = os.environ if environ is None else environ
    given = env.get(ADMIN_TOKEN_ENV, "")
    if given:
        if len(given) < MIN_TOKEN_LENGTH:
            raise KatibError(f"{ADMIN_TOKEN_ENV} must be at least {MIN_TOKEN_LENGTH} characters")
        storage.ensure_token(given, f"admin ({ADMIN_TOKEN_ENV})", ALL_NAMESPACES, "admin")
        return None
    if any(t.role == "admin" for t in storage.list_tokens(ALL_NAMESPACES)):
        return None
    _, secret = storage.create_token("admin", ALL_NAMESPACES, "admin")
    return secret
