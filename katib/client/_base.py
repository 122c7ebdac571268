"""The operations the CLI and the SDK need, whatever holds the experiments.

Every method answers with Katib's JSON (camelCase dicts) exactly as the REST API does, and
raises :mod:`katib.errors`: ``NotFoundError`` (no such object, or none the token may see),
``ConflictError`` (a refusal), ``InvalidExperimentError`` (with every field error),
``UnauthorizedError``/``ForbiddenError`` (a server refused the token), ``TemporaryError``
(retrying may help).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, TypedDict

from katib.errors import NoLogError

#: Trial conditions of a trial that may still write output.
ACTIVE_TRIAL = ("Created", "Running")
#: Bytes of the end of a log that :meth:`Backend.log_tail` reads at most.
TAIL_BYTES = 64 * 1024


def last_lines(data: bytes, lines: int) -> list[str]:
    """The last ``lines`` non-empty lines of some output, decoded leniently."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    kept = [line.rstrip() for line in text.split("\n") if line.strip()]
    return kept[-lines:] if lines > 0 else []


class BudgetCounts(TypedDict, total=False):
    """Trial counts to change; a missing key (or None) keeps the current value."""

    max_trial_count: int | None
    parallel_trial_count: int | None
    max_failed_trial_count: int | None


class Backend(ABC):
    """Experiments, trials, logs and tokens, in a database or behind a server."""

    #: Where the experiments are, for messages: ``database URL`` or ``server URL``.
    location: str

    # Experiments --------------------------------------------------------------------------

    @abstractmethod
    def create_experiment(
        self, document: Mapping[str, Any], *, source_dir: str | None = None
    ) -> dict[str, Any]:
        """Validate and store a Katib Experiment document; its ``metadata.namespace`` (default
        ``default``) decides where. ``source_dir``: the folder trials' relative paths resolve
        against (default: the current folder, or the server's). A server starts it at once."""

    @abstractmethod
    def get_experiment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Experiment with its status (``status.archived`` too)."""

    @abstractmethod
    def list_experiments(
        self, namespace: str | None = None, *, archived: bool = False
    ) -> list[dict[str, Any]]:
        """Experiments of ``namespace`` (None: every namespace one may see), oldest first;
        the archived ones instead when ``archived``."""

    @abstractmethod
    def best_trial(self, namespace: str, name: str) -> dict[str, Any]:
        """The optimal trial, in the shape of ``katib best -o json``."""

    @abstractmethod
    def list_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The controller's events: ``{type, reason, message, trialName, time}``, oldest first."""

    @abstractmethod
    def stop_experiment(self, namespace: str, name: str) -> bool:
        """Stop it; True when it ended at once, False when its controller ends it shortly."""

    @abstractmethod
    def delete_experiment(self, namespace: str, name: str) -> None:
        """Delete a stopped experiment with its trials, observations and logs."""

    @abstractmethod
    def edit_budget(self, namespace: str, name: str, counts: BudgetCounts) -> dict[str, Any]:
        """Change the trial counts by the rule of :func:`katib.service.change_budget`: an
        unfinished experiment picks them up within seconds; a finished one restarts when its
        resumePolicy allows it, and is refused (``ConflictError``) otherwise."""

    @abstractmethod
    def restart_experiment(
        self, namespace: str, name: str, counts: BudgetCounts
    ) -> dict[str, Any]:
        """Mark a finished experiment Restarting with a new budget (a server then runs it)."""

    # Trials -------------------------------------------------------------------------------

    @abstractmethod
    def list_trials(self, namespace: str, experiment: str) -> list[dict[str, Any]]:
        """Every trial of the experiment, oldest first."""

    @abstractmethod
    def get_trial(self, namespace: str, name: str) -> dict[str, Any]:
        """One Trial with its status."""

    @abstractmethod
    def find_trials(self, name: str) -> list[dict[str, Any]]:
        """The trials of that name, in every namespace one may see."""

    @abstractmethod
    def trial_observations(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Every reported value: ``{timeStamp, step, metric: {name, value}}``, oldest first."""

    @abstractmethod
    def trial_log(self, namespace: str, name: str, offset: int = 0) -> bytes | None:
        """The trial's output from byte ``offset`` on, as written; None while it has no log.

        A chunk may stop short of the end: ask again from ``offset + len(chunk)``.
        """

    def log_chunks(
        self, namespace: str, name: str, *, follow: bool = False, poll: float = 0.2
    ) -> Iterator[bytes]:
        """The trial's output as written, chunk by chunk, from the start.

        With ``follow``, waits for more (every ``poll`` seconds) until the trial has ended.

        Raises:
            NotFoundError: no such trial.
            NoLogError: it has no log (with ``follow``: it ended without one).
        """
        offset = 0
        while True:
            # The state is read before the log: once the trial is seen ended, its log is whole.
            active = follow and (
                self.get_trial(namespace, name)["status"]["condition"] in ACTIVE_TRIAL
            )
            chunk = self.trial_log(namespace, name, offset)
            if chunk:
                offset += len(chunk)
                yield chunk
                continue
            if not active:
                if chunk is None and offset == 0:
                    raise NoLogError(
                        f"no log for trial {namespace}/{name} (it has not started, or its log "
                        "was removed)"
                    )
                return
            time.sleep(poll)

    def log_tail(self, namespace: str, name: str, lines: int = 10) -> list[str]:
        """The last ``lines`` lines of the trial's output (empty when it has none)."""
        tail = b""
        offset = 0
        while True:
            chunk = self.trial_log(namespace, name, offset)
            if not chunk:
                break
            offset += len(chunk)
            tail = (tail + chunk)[-TAIL_BYTES:]
        return last_lines(tail, lines)

    # Tokens -------------------------------------------------------------------------------

    @abstractmethod
    def create_token(self, name: str, namespace: str, role: str) -> dict[str, Any]:
        """A new token (``{id, name, namespace, role, createdAt, token}``; ``token`` only here)."""

    @abstractmethod
    def list_tokens(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Tokens, never their secrets."""

    @abstractmethod
    def rotate_token(self, token_id: int) -> dict[str, Any]:
        """Replace a token by a new secret (same name, role, expiry); the old one is revoked.
        Returns the new one with its ``token``."""

    @abstractmethod
    def revoke_token(self, token_id: int) -> dict[str, Any]:
        """Revoke a token; requests with it are refused from now on. Returns it."""

    # Namespaces ---------------------------------------------------------------------------

    @abstractmethod
    def list_namespaces(self) -> list[dict[str, Any]]:
        """Namespaces with their experiments, tokens, limit and running trials."""

    @abstractmethod
    def set_namespace_limit(self, namespace: str, max_running_trials: int | None) -> dict[str, Any]:
        """Set (None: remove) how many trials of a namespace run at once; returns it."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
