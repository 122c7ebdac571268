"""The project's exception hierarchy.

Every error a user can cause derives from :class:`KatibError`; the CLI and the API turn these
into messages and exit statuses, never tracebacks. Each class says who has to act: the user
(fix the input), or nobody yet (retrying helps).
"""

from __future__ import annotations

from dataclasses import dataclass


class KatibError(Exception):
    """Base class of every error this project raises on purpose."""


@dataclass(frozen=True)
class FieldError:
    """One problem in an experiment, located by its field path (``spec.parameters[1].name``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidExperimentError(KatibError):
    """The experiment (or the file holding it) is not valid; carries every problem found."""

    def __init__(self, errors: list[FieldError], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(e) for e in self.errors))


class NotFoundError(KatibError):
    """The named experiment or trial does not exist."""


class NoLogError(NotFoundError):
    """The trial exists but has no output yet (it has not started, or its log was removed)."""


class UnauthorizedError(KatibError):
    """No API token, or one that is unknown or revoked (HTTP 401)."""


class ForbiddenError(KatibError):
    """The token sees the namespace but its role does not allow the action (HTTP 403)."""


class ConflictError(KatibError):
    """The request contradicts what is stored (rerun of a finished experiment, changed spec)."""


class TrialFinishedError(ConflictError):
    """A finished trial was to be changed: finished trials are immutable."""


class InvalidValueError(KatibError):
    """A value the database cannot hold or look up (text with a NUL character, a number out of
    the column's range): the caller's input is wrong, nothing was written (HTTP 400)."""


class TemporaryError(KatibError):
    """Something that may succeed if retried (a busy database, a server not yet up)."""
