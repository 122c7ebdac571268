"""Namespaces and the audit trail: who may work where, and who did what.

A mixin of :class:`katib.storage.Storage`: namespaces an admin created on purpose (others exist
implicitly, as soon as an experiment or a token names them) and one audit row per change made
through the API.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from katib._time import now
from katib.errors import ConflictError
from katib.storage._schema import AuditRow, ExperimentRow, NamespaceRow, TokenRow, TrialRow


@dataclass(frozen=True)
class NamespaceRecord:
    """A namespace: made on purpose (``created_at`` set) or named by experiments or tokens."""

    name: str
    created_at: float | None = None
    created_by: str | None = None
    experiments: int = 0
    tokens: int = 0
    #: An admin's limit of concurrently running trials (None: none), and how many run now.
    max_running_trials: int | None = None
    running_trials: int = 0


@dataclass(frozen=True)
class AuditRecord:
    """One change made through the API, and the token that made it."""

    id: int
    created_at: float
    namespace: str
    action: str
    target: str
    principal_id: int | None
    principal_name: str
    detail: dict[str, Any] = field(default_factory=dict)


class AccessStore:
    """Namespaces and audit records (mixed into :class:`Storage`)."""

    @abstractmethod
    def _session(self) -> AbstractContextManager[Session]: ...

    # Namespaces --------------------------------------------------------------------------

    def create_namespace(self, name: str, *, created_by: str | None = None) -> NamespaceRecord:
        """Record a namespace; ConflictError when it was created before."""
        row = NamespaceRow(name=name, created_at=now(), created_by=created_by)
        try:
            with self._session() as s:
                s.add(row)
        except IntegrityError as e:
            raise ConflictError(f"namespace {name} already exists") from e
        return NamespaceRecord(name, row.created_at, created_by)

    def list_namespaces(self, names: Sequence[str] | None = None) -> list[NamespaceRecord]:
        """Every namespace (those made, and those experiments or live tokens name), by name.

        Args:
            names: Only these (None: all).
        """
        with self._session() as s:
            made = {r.name: r for r in s.scalars(select(NamespaceRow))}
            experiments = dict(
                s.execute(
                    select(ExperimentRow.namespace, func.count()).group_by(ExperimentRow.namespace)
                ).all()
            )
            tokens = dict(
                s.execute(
                    select(TokenRow.namespace, func.count())
                    .where(TokenRow.revoked_at.is_(None), TokenRow.namespace != "*")
                    .group_by(TokenRow.namespace)
                ).all()
            )
            running = self._running_by_namespace(s)
        every = set(made) | set(experiments) | set(tokens)
        if names is not None:
            every &= set(names)
        out = []
        for name in sorted(every):
            row = made.get(name)
            out.append(
                NamespaceRecord(
                    name,
                    None if row is None else row.created_at,
                    None if row is None else row.created_by,
                    int(experiments.get(name, 0)),
                    int(tokens.get(name, 0)),
                    None if row is None else row.max_running_trials,
                    int(running.get(name, 0)),
                )
            )
        return out

    def set_namespace_limit(self, name: str, max_running_trials: int | None) -> None:
        """Set (None: remove) a namespace's limit of concurrently running trials."""
        with self._session() as s:
            row = s.get(NamespaceRow, name)
            if row is None:
                row = NamespaceRow(name=name, created_at=now(), created_by=None)
                s.add(row)
            row.max_running_trials = max_running_trials

    def namespace_limits(self) -> tuple[dict[str, int], dict[str, int]]:
        """(limit by namespace, running trials by namespace) for the namespaces with a limit;
        two empty dicts, at the cost of one small query, when there are none."""
        with self._session() as s:
            limits = {
                str(n): m
                for n, m in s.execute(
                    select(NamespaceRow.name, NamespaceRow.max_running_trials).where(
                        NamespaceRow.max_running_trials.is_not(None)
                    )
                ).all()
                if m is not None
            }
            if not limits:
                return {}, {}
            return limits, self._running_by_namespace(s, list(limits))

    @staticmethod
    def _running_by_namespace(s: Session, names: list[str] | None = None) -> dict[str, int]:
        query = select(TrialRow.namespace, func.count()).where(TrialRow.state == "Running")
        if names is not None:
            query = query.where(TrialRow.namespace.in_(names))
        return {str(n): int(c) for n, c in s.execute(query.group_by(TrialRow.namespace)).all()}

    # Audit trail -------------------------------------------------------------------------

    def add_audit(
        self,
        namespace: str,
        action: str,
        target: str,
        *,
        principal_id: int | None,
        principal_name: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self._session() as s:
            s.add(
                AuditRow(
                    created_at=now(),
                    namespace=namespace,
                    action=action,
                    target=target,
                    principal_id=principal_id,
                    principal_name=principal_name,
                    detail=dict(detail or {}),
                )
            )

    def list_audit(
        self,
        *,
        namespaces: Sequence[str] | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit records, newest first, those older than the record ``before`` (keyset)."""
        query = select(AuditRow)
        if namespaces is not None:
            query = query.where(AuditRow.namespace.in_(list(namespaces)))
        if before is not None:
            query = query.where(AuditRow.id < before)
        with self._session() as s:
            rows = s.scalars(query.order_by(AuditRow.id.desc()).limit(limit))
            return [
                AuditRecord(
                    r.id,
                    r.created_at,
                    r.namespace,
                    r.action,
                    r.target,
                    r.principal_id,
                    r.principal_name,
                    dict(r.detail or {}),
                )
                for r in rows
            ]
