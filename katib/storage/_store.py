"""The storage service: every read and write of experiments, trials and observations.

Each method is one short transaction, so that a crash never leaves half an update behind and
readers in other processes (``katib get``) see consistent rows. Hot-path methods (trial
creation, observations, trial completion) touch only the rows they change: nothing here reads
an experiment's whole history except the methods that are asked for it.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from katib._time import now
from katib.errors import ConflictError, NotFoundError
from katib.records import (
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    MetricSummary,
    TrialRecord,
    TrialState,
)
from katib.spec import Experiment
from katib.storage._engine import StorageError, default_url, make_engine, migrate
from katib.storage._schema import (
    AlgorithmStateRow,
    EventRow,
    ExperimentRow,
    ObservationRow,
    TrialRow,
)

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class ObservationPoint:
    """One reported metric value of a trial."""

    metric_name: str
    value: float
    step: int | None
    timestamp: float


@dataclass(frozen=True)
class EventRecord:
    id: int
    trial_name: str | None
    type: str
    reason: str
    message: str
    created_at: float


class Storage:
    """Experiments, trials, observation logs, algorithm state and events in one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None) -> Storage:
        """Open (creating and migrating as needed) the database at ``url`` or the default."""
        engine = make_engine(url or default_url())
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except SQLAlchemyError as e:
            session.rollback()
            raise StorageError(f"database error: {e}") from e
        finally:
            session.close()

    # Experiments -------------------------------------------------------------------------

    def create_experiment(
        self, spec: Experiment, *, source_dir: str = "", owner: str | None = None
    ) -> ExperimentRecord:
        """Store a new, defaulted experiment; ConflictError if the name is taken."""
        t = now()
        row = ExperimentRow(
            namespace=spec.namespace,
            name=spec.name,
            spec=spec.to_wire(),
            condition=ExperimentCondition.CREATED.value,
            conditions=[
                Condition(
                    "Created", "True", "ExperimentCreated", "Experiment is created", t
                ).to_json()
            ],
            message="",
            source_dir=source_dir,
            created_at=t,
            owner=owner,
            owner_heartbeat=t if owner else None,
            stop_requested=False,
        )
        try:
            with self._session() as s:
                s.add(row)
        except IntegrityError as e:
            raise ConflictError(f"experiment {spec.namespace}/{spec.name} already exists") from e
        return _experiment(row)

    def get_experiment(self, namespace: str, name: str) -> ExperimentRecord:
        with self._session() as s:
            row = s.scalar(
                select(ExperimentRow).where(
                    ExperimentRow.namespace == namespace, ExperimentRow.name == name
                )
            )
            if row is None:
                raise NotFoundError(f"experiment {namespace}/{name} not found")
            return _experiment(row)

    def get_experiment_by_id(self, experiment_id: int) -> ExperimentRecord:
        with self._session() as s:
            row = s.get(ExperimentRow, experiment_id)
            if row is None:
                raise NotFoundError(f"experiment #{experiment_id} not found")
            return _experiment(row)

    def list_experiments(self, namespace: str | None = None) -> list[ExperimentRecord]:
        query = select(ExperimentRow).order_by(ExperimentRow.created_at, ExperimentRow.id)
        if namespace is not None:
            query = query.where(ExperimentRow.namespace == namespace)
        with self._session() as s:
            return [_experiment(r) for r in s.scalars(query)]

    def update_experiment(self, experiment_id: int, **fields: Any) -> None:
        """Set columns of an experiment: condition, conditions, message, started_at, ..."""
        values = dict(fields)
        if "spec" in values and isinstance(values["spec"], Experiment):
            values["spec"] = values["spec"].to_wire()
        if "condition" in values:
            values["condition"] = str(values["condition"])
        if "conditions" in values:
            values["conditions"] = [
                c.to_json() if isinstance(c, Condition) else c for c in values["conditions"]
            ]
        with self._session() as s:
            s.execute(update(ExperimentRow).where(ExperimentRow.id == experiment_id).values(values))

    def delete_experiment(self, namespace: str, name: str) -> None:
        record = self.get_experiment(namespace, name)
        with self._session() as s:
            trial_ids = select(TrialRow.id).where(TrialRow.experiment_id == record.id)
            # Explicit deletes: SQLite enforces ON DELETE CASCADE only with foreign_keys on,
            # and other databases may have been created without it.
            s.execute(delete(ObservationRow).where(ObservationRow.trial_id.in_(trial_ids)))
            s.execute(delete(TrialRow).where(TrialRow.experiment_id == record.id))
            s.execute(delete(EventRow).where(EventRow.experiment_id == record.id))
            s.execute(delete(AlgorithmStateRow).where(AlgorithmStateRow.experiment_id == record.id))
            s.execute(delete(ExperimentRow).where(ExperimentRow.id == record.id))

    def claim(self, experiment_id: int, owner: str, *, expected: str | None) -> bool:
        """Take ownership if the current owner is ``expected``; False if someone else won."""
        current = (
            ExperimentRow.owner.is_(None) if expected is None else ExperimentRow.owner == expected
        )
        with self._session() as s:
            result = s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.id == experiment_id, current)
                .values(owner=owner, owner_heartbeat=now())
            )
            return bool(getattr(result, "rowcount", 0))

    def release(self, experiment_id: int, owner: str) -> None:
        with self._session() as s:
            s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.id == experiment_id, ExperimentRow.owner == owner)
                .values(owner=None, owner_heartbeat=None)
            )

    # Trials ------------------------------------------------------------------------------

    def create_trial(
        self,
        experiment: ExperimentRecord,
        assignments: dict[str, str],
        *,
        labels: dict[str, str] | None = None,
    ) -> TrialRecord:
        """A new trial in state Created, named ``<experiment>-<8 random characters>``."""
        for _ in range(20):
            suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(8))
            row = TrialRow(
                experiment_id=experiment.id,
                namespace=experiment.namespace,
                name=f"{experiment.name}-{suffix}",
                assignments=dict(assignments),
                state=TrialState.CREATED.value,
                reason="TrialCreated",
                message="Trial is created",
                created_at=now(),
                metrics={},
                labels=dict(labels or {}),
            )
            try:
                with self._session() as s:
                    s.add(row)
                return _trial(row)
            except IntegrityError:
                continue  # name collision in the namespace: draw another suffix
        raise StorageError("could not find a free trial name after 20 attempts")

    def get_trial(self, namespace: str, name: str) -> TrialRecord:
        with self._session() as s:
            row = s.scalar(
                select(TrialRow).where(TrialRow.namespace == namespace, TrialRow.name == name)
            )
            if row is None:
                raise NotFoundError(f"trial {namespace}/{name} not found")
            return _trial(row)

    def find_trials(self, name: str) -> list[TrialRecord]:
        """Trials of that name in any namespace (for commands given a bare trial name)."""
        with self._session() as s:
            return [_trial(r) for r in s.scalars(select(TrialRow).where(TrialRow.name == name))]

    def list_trials(
        self, experiment_id: int, states: Iterable[TrialState] | None = None
    ) -> list[TrialRecord]:
        query = select(TrialRow).where(TrialRow.experiment_id == experiment_id)
        if states is not None:
            query = query.where(TrialRow.state.in_([str(s) for s in states]))
        with self._session() as s:
            return [_trial(r) for r in s.scalars(query.order_by(TrialRow.id))]

    def count_trials(self, experiment_id: int) -> dict[TrialState, int]:
        with self._session() as s:
            rows = s.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.experiment_id == experiment_id)
                .group_by(TrialRow.state)
            ).all()
        return {TrialState(state): int(n) for state, n in rows}

    def update_trial(self, trial_id: int, **fields: Any) -> None:
        """Set columns of a trial: state, reason, message, started_at, pid, exit_code, ..."""
        with self._session() as s:
            s.execute(update(TrialRow).where(TrialRow.id == trial_id).values(_trial_values(fields)))

    def finish_trial(
        self,
        trial_id: int,
        observations: Sequence[ObservationPoint],
        **fields: Any,
    ) -> None:
        """Store a trial's remaining observations and its final fields in one transaction."""
        values = _trial_values(fields)
        with self._session() as s:
            if observations:
                s.execute(insert(ObservationRow), _observation_rows(trial_id, observations))
            s.execute(update(TrialRow).where(TrialRow.id == trial_id).values(values))

    def reset_trial(self, trial_id: int) -> None:
        """Forget a trial's run (after an interruption) so that it runs again from scratch."""
        with self._session() as s:
            s.execute(delete(ObservationRow).where(ObservationRow.trial_id == trial_id))
            s.execute(
                update(TrialRow)
                .where(TrialRow.id == trial_id)
                .values(
                    state=TrialState.CREATED.value,
                    reason="TrialRestarted",
                    message="Trial is created again after an interruption",
                    started_at=None,
                    completed_at=None,
                    exit_code=None,
                    pid=None,
                    objective=None,
                    metrics={},
                )
            )

    # Observation logs --------------------------------------------------------------------

    def add_observations(self, trial_id: int, observations: Sequence[ObservationPoint]) -> None:
        if not observations:
            return
        with self._session() as s:
            s.execute(insert(ObservationRow), _observation_rows(trial_id, observations))

    def get_observations(
        self, trial_id: int, metric_name: str | None = None
    ) -> list[ObservationPoint]:
        query = select(ObservationRow).where(ObservationRow.trial_id == trial_id)
        if metric_name is not None:
            query = query.where(ObservationRow.metric_name == metric_name)
        with self._session() as s:
            return [
                ObservationPoint(r.metric_name, r.value, r.step, r.timestamp)
                for r in s.scalars(query.order_by(ObservationRow.id))
            ]

    def objective_means(self, experiment_id: int, metric: str) -> dict[str, float]:
        """Succeeded trials' mean reported value of ``metric`` (for early stopping), by name."""
        query = (
            select(TrialRow.name, func.avg(ObservationRow.value))
            .join(ObservationRow, ObservationRow.trial_id == TrialRow.id)
            .where(
                TrialRow.experiment_id == experiment_id,
                TrialRow.state == TrialState.SUCCEEDED.value,
                ObservationRow.metric_name == metric,
            )
            .group_by(TrialRow.name)
        )
        with self._session() as s:
            return {name: float(mean) for name, mean in s.execute(query).all()}

    # Algorithm state ---------------------------------------------------------------------

    def save_algorithm_state(
        self, experiment_id: int, algorithm: str, state: dict[str, Any]
    ) -> None:
        with self._session() as s:
            row = s.get(AlgorithmStateRow, experiment_id)
            if row is None:
                s.add(
                    AlgorithmStateRow(
                        experiment_id=experiment_id,
                        algorithm=algorithm,
                        state=state,
                        updated_at=now(),
                    )
                )
            else:
                row.algorithm, row.state, row.updated_at = algorithm, state, now()

    def load_algorithm_state(self, experiment_id: int) -> tuple[str, dict[str, Any]] | None:
        with self._session() as s:
            row = s.get(AlgorithmStateRow, experiment_id)
            return None if row is None else (row.algorithm, dict(row.state))

    # Events ------------------------------------------------------------------------------

    def add_event(
        self,
        experiment_id: int,
        reason: str,
        message: str,
        *,
        trial_name: str | None = None,
        type: str = "Normal",
    ) -> None:
        with self._session() as s:
            s.add(
                EventRow(
                    experiment_id=experiment_id,
                    trial_name=trial_name,
                    type=type,
                    reason=reason,
                    message=message,
                    created_at=now(),
                )
            )

    def list_events(self, experiment_id: int) -> list[EventRecord]:
        with self._session() as s:
            rows = s.scalars(
                select(EventRow)
                .where(EventRow.experiment_id == experiment_id)
                .order_by(EventRow.id)
            )
            return [
                EventRecord(r.id, r.trial_name, r.type, r.reason, r.message, r.created_at)
                for r in rows
            ]


def _trial_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Trial columns from record values (enums as strings, metric summaries as JSON)."""
    values = dict(fields)
    if "state" in values:
        values["state"] = str(values["state"])
    if "metrics" in values:
        values["metrics"] = {
            k: (v.to_json() if isinstance(v, MetricSummary) else v)
            for k, v in values["metrics"].items()
        }
    return values


def _observation_rows(
    trial_id: int, observations: Sequence[ObservationPoint]
) -> list[dict[str, Any]]:
    return [
        {
            "trial_id": trial_id,
            "metric_name": o.metric_name,
            "value": o.value,
            "step": o.step,
            "timestamp": o.timestamp,
        }
        for o in observations
    ]


def _experiment(row: ExperimentRow) -> ExperimentRecord:
    return ExperimentRecord(
        id=row.id,
        namespace=row.namespace,
        name=row.name,
        spec=Experiment.model_validate(row.spec),
        condition=ExperimentCondition(row.condition),
        conditions=[
            Condition(
                c["type"],
                c["status"],
                c.get("reason", ""),
                c.get("message", ""),
                _parse_time(c.get("lastTransitionTime")),
            )
            for c in row.conditions or []
        ],
        source_dir=row.source_dir or "",
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        optimal_trial_name=row.optimal_trial_name,
        owner=row.owner,
        owner_heartbeat=row.owner_heartbeat,
        message=row.message or "",
        stop_requested=bool(row.stop_requested),
    )


def _parse_time(value: Any) -> float:
    if value is None:
        return 0.0
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _trial(row: TrialRow) -> TrialRecord:
    return TrialRecord(
        id=row.id,
        experiment_id=row.experiment_id,
        namespace=row.namespace,
        name=row.name,
        assignments=dict(row.assignments),
        state=TrialState(row.state),
        reason=row.reason or "",
        message=row.message or "",
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        exit_code=row.exit_code,
        pid=row.pid,
        objective=row.objective,
        metrics={
            k: MetricSummary(k, v["min"], v["max"], v["latest"])
            for k, v in (row.metrics or {}).items()
        },
        labels=dict(row.labels or {}),
    )
