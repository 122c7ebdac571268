"""ORM tables. Private to ``katib.storage``: other packages see ``katib.records`` only.

Schema changes go through an Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false


class Base(DeclarativeBase):
    pass


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("namespace", "name", name="uq_experiment_name"),
        # Keyset pages of one namespace's experiments (the REST API's lists).
        Index("ix_experiments_namespace_id", "namespace", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    condition: Mapped[str] = mapped_column(String(32))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    source_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    optimal_trial_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    # The controller that currently drives the experiment ("host:pid:uuid") and its last
    # sign of life; another controller may take over once the owner is gone.
    owner: Mapped[str | None] = mapped_column(String(253), nullable=True)
    owner_heartbeat: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Set by `katib stop`; the owning controller notices it on its next heartbeat.
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Hidden from lists unless asked for (the REST API's archive / unarchive).
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("namespace", "name", name="uq_trial_name"),
        Index("ix_trials_experiment_state", "experiment_id", "state"),
        # Keyset pages of an experiment's trials, by creation and by objective value.
        Index("ix_trials_experiment_id_id", "experiment_id", "id"),
        Index("ix_trials_experiment_objective", "experiment_id", "objective", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), index=True
    )
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    assignments: Mapped[dict[str, str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    completed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class ObservationRow(Base):
    __tablename__ = "observation_logs"
    __table_args__ = (Index("ix_observation_trial_metric", "trial_id", "metric_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    metric_name: Mapped[str] = mapped_column(String(253))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    timestamp: Mapped[float] = mapped_column(Float)


class AlgorithmStateRow(Base):
    __tablename__ = "algorithm_states"

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True
    )
    algorithm: Mapped[str] = mapped_column(String(253))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_experiment", "experiment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    trial_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(253))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)


class TokenRow(Base):
    """An API token: only its SHA-256 is stored; the plaintext is shown once, on creation."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The namespace the role applies to; "*" for admin tokens (every namespace).
    namespace: Mapped[str] = mapped_column(String(253), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Past this time the token is refused; None: never.
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # When a request last used it (written at most once a minute per token).
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class NamespaceRow(Base):
    """A namespace an admin created. Namespaces that experiments or tokens name exist too,
    implicitly; this table lists those that were made on purpose (possibly still empty)."""

    __tablename__ = "namespaces"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(253), nullable=True)
    #: At most this many trials of the namespace run at once on a server (None: no limit).
    max_running_trials: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AuditRow(Base):
    """Who did what: one row per change made through the API (never a read)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_namespace_id", "namespace", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Float)
    namespace: Mapped[str] = mapped_column(String(253))
    # A dotted verb: experiment.create, experiment.stop, token.revoke, ...
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(253))
    principal_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    principal_name: Mapped[str] = mapped_column(String(253))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
