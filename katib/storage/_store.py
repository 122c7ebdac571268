"""The storage service: every read and write of experiments, trials and observations.

Each method is one short transaction, so that a crash never leaves half an update behind and
readers in other processes (``katib get``) see consistent rows. Hot-path methods (trial
creation, observations, trial completion) touch only the rows they change: nothing here reads
an experiment's whole history except the methods that are asked for it.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from katib._faults import fault_point
from katib._time import now
from katib.errors import (
    ConflictError,
    InvalidValueError,
    KatibError,
    NotFoundError,
    TrialFinishedError,
)
from katib.records import (
    REASON_INTERRUPTED,
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    MetricSummary,
    TrialRecord,
    TrialResult,
    TrialState,
)
from katib.spec import Experiment
from katib.storage._access import AccessStore
from katib.storage._engine import StorageError, default_url, make_engine, migrate
from katib.storage._schema import (
    AlgorithmStateRow,
    EventRow,
    ExperimentRow,
    ObservationRow,
    TokenRow,
    TrialRow,
)
from katib.storage._tables import TrialTableStore

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


class _Unset(Enum):
    """The value of a keyword argument that was not given (None is a value here)."""

    UNSET = 0


UNSET = _Unset.UNSET

#: Roles a token can carry, weakest first; an admin token's namespace is ``*``.
TOKEN_ROLES = ("viewer", "editor", "owner", "admin")
#: The namespace of admin tokens: every namespace.
ALL_NAMESPACES = "*"
#: Seconds between two records of a token's last use.
LAST_USE_RESOLUTION = 60.0
#: How trial pages can be ordered (``-`` for descending).
TRIAL_SORTS = ("created", "-created", "objective", "-objective")


@dataclass(frozen=True)
class ObservationPoint:
    """One reported metric value of a trial."""

    metric_name: str
    value: float
    step: int | None
    timestamp: float


@dataclass(frozen=True)
class NewEvent:
    """An event to store together with a trial's end (:meth:`Storage.finish_trial`)."""

    reason: str
    message: str
    trial_name: str | None = None
    type: str = "Normal"


@dataclass(frozen=True)
class EventRecord:
    id: int
    trial_name: str | None
    type: str
    reason: str
    message: str
    created_at: float


@dataclass(frozen=True)
class TokenRecord:
    """An API token (never its plaintext, which is shown once when it is created)."""

    id: int
    name: str
    namespace: str
    role: str
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    last_used_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, at: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now() if at is None else at)


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token; the prefix makes leaked ones easy to recognise (secret scanners)."""
    return "katib_" + secrets.token_urlsafe(32)


# The controller's hot path: Core statements built once, executed on a connection (no ORM
# unit of work, no statement built per call). A trial costs two transactions: its row (with
# the algorithm state that produced it) and its end (with its last points and events).
_TRIALS: Table = TrialRow.__table__  # type: ignore[assignment]
_OBSERVATIONS: Table = ObservationRow.__table__  # type: ignore[assignment]
_STATES: Table = AlgorithmStateRow.__table__  # type: ignore[assignment]
_EVENTS: Table = EventRow.__table__  # type: ignore[assignment]
_EXPERIMENTS: Table = ExperimentRow.__table__  # type: ignore[assignment]
_ACTIVE = (TrialState.CREATED.value, TrialState.RUNNING.value)
_INSERT_TRIAL = insert(_TRIALS).returning(_TRIALS.c.id)
_INSERT_OBSERVATIONS = insert(_OBSERVATIONS)
_INSERT_EVENT = insert(_EVENTS)
_INSERT_STATE = insert(_STATES)
_UPDATE_STATE = (
    update(_STATES)
    .where(_STATES.c.experiment_id == bindparam("eid"))
    .values(
        algorithm=bindparam("algorithm"), state=bindparam("state"), updated_at=bindparam("at")
    )
)
_FINISH_TRIAL = (
    update(_TRIALS)
    .where(_TRIALS.c.id == bindparam("tid"), _TRIALS.c.state.in_(_ACTIVE))
    .values(
        state=bindparam("state"),
        reason=bindparam("reason"),
        message=bindparam("message"),
        completed_at=bindparam("completed_at"),
        exit_code=bindparam("exit_code"),
        metrics=bindparam("metrics"),
        objective=bindparam("objective"),
        pid=func.coalesce(bindparam("pid_value", type_=Integer), _TRIALS.c.pid),
    )
)
_START_TRIAL = (
    update(_TRIALS)
    .where(_TRIALS.c.id == bindparam("tid"), _TRIALS.c.state.in_(_ACTIVE))
    .values(
        state=TrialState.RUNNING.value,
        reason="TrialRunning",
        message=bindparam("message"),
        started_at=bindparam("started_at"),
        pid=bindparam("pid_value"),
    )
)
_SET_OPTIMAL = (
    update(_EXPERIMENTS)
    .where(_EXPERIMENTS.c.id == bindparam("eid"))
    .values(optimal_trial_name=bindparam("optimal"))
)


class Storage(AccessStore, TrialTableStore):
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

    def ping(self) -> str | None:
        """None when the database answers, else what is wrong (for readiness checks)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as e:
            return f"database unreachable: {type(e).__name__}"
        return None

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction on a connection, for Core statements (the hot path)."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {e}") from e

    @contextmanager
    def _session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except DataError as e:
            session.rollback()
            raise InvalidValueError(f"a value cannot be stored or looked up: {e.orig}") from e
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

    def experiment_id(self, namespace: str, name: str) -> int:
        """The id of an experiment, without reading its spec (for hot paths)."""
        with self._session() as s:
            found = s.scalar(
                select(ExperimentRow.id).where(
                    ExperimentRow.namespace == namespace, ExperimentRow.name == name
                )
            )
        if found is None:
            raise NotFoundError(f"experiment {namespace}/{name} not found")
        return int(found)

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

    def list_experiments_page(
        self,
        *,
        namespaces: Sequence[str] | None = None,
        conditions: Sequence[ExperimentCondition] | None = None,
        archived: bool | None = False,
        after: int | None = None,
        limit: int = 100,
    ) -> list[ExperimentRecord]:
        """Up to ``limit`` experiments in id order, those after the id ``after`` (keyset).

        Args:
            namespaces: Only these namespaces (None: every namespace).
            conditions: Only experiments in one of these conditions.
            archived: Only archived (True) or only not archived (False) ones; None for both.
            after: The id of the last experiment of the previous page.
            limit: Most experiments returned.
        """
        query = select(ExperimentRow)
        if namespaces is not None:
            query = query.where(ExperimentRow.namespace.in_(list(namespaces)))
        if conditions is not None:
            query = query.where(ExperimentRow.condition.in_([str(c) for c in conditions]))
        if archived is not None:
            query = query.where(ExperimentRow.archived.is_(archived))
        if after is not None:
            query = query.where(ExperimentRow.id > after)
        with self._session() as s:
            rows = s.scalars(query.order_by(ExperimentRow.id).limit(limit))
            return [_experiment(r) for r in rows]

    def unfinished_experiments(self) -> list[tuple[int, str | None, float | None]]:
        """``(id, owner, owner_heartbeat)`` of every experiment that has not finished."""
        unfinished = [str(c) for c in ExperimentCondition if not c.is_finished]
        query = (
            select(ExperimentRow.id, ExperimentRow.owner, ExperimentRow.owner_heartbeat)
            .where(ExperimentRow.condition.in_(unfinished))
            .order_by(ExperimentRow.id)
        )
        with self._session() as s:
            return [(int(i), o, h) for i, o, h in s.execute(query).all()]

    def set_archived(self, experiment_id: int, archived: bool) -> None:
        with self._session() as s:
            s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.id == experiment_id)
                .values(archived=archived)
            )

    def archived_ids(self, experiment_ids: Iterable[int]) -> set[int]:
        """Which of these experiments are archived."""
        ids = list(experiment_ids)
        if not ids:
            return set()
        query = select(ExperimentRow.id).where(
            ExperimentRow.id.in_(ids), ExperimentRow.archived.is_(True)
        )
        with self._session() as s:
            return {int(i) for i in s.scalars(query)}

    def condition_counts(self) -> dict[ExperimentCondition, int]:
        """How many experiments are in each condition (every namespace)."""
        query = select(ExperimentRow.condition, func.count()).group_by(ExperimentRow.condition)
        with self._session() as s:
            return {ExperimentCondition(c): int(n) for c, n in s.execute(query).all()}

    def update_experiment(
        self,
        experiment_id: int,
        *,
        condition: ExperimentCondition | _Unset = UNSET,
        conditions: Sequence[Condition] | _Unset = UNSET,
        message: str | _Unset = UNSET,
        spec: Experiment | _Unset = UNSET,
        source_dir: str | _Unset = UNSET,
        started_at: float | None | _Unset = UNSET,
        completed_at: float | None | _Unset = UNSET,
        optimal_trial_name: str | None | _Unset = UNSET,
        stop_requested: bool | _Unset = UNSET,
        owner_heartbeat: float | None | _Unset = UNSET,
    ) -> None:
        """Set the given columns of an experiment; the others stay as they are."""
        given: dict[str, Any] = {
            "condition": condition,
            "conditions": conditions,
            "message": message,
            "spec": spec,
            "source_dir": source_dir,
            "started_at": started_at,
            "completed_at": completed_at,
            "optimal_trial_name": optimal_trial_name,
            "stop_requested": stop_requested,
            "owner_heartbeat": owner_heartbeat,
        }
        values = {k: v for k, v in given.items() if v is not UNSET}
        if not values:
            return
        if isinstance(spec, Experiment):
            values["spec"] = spec.to_wire()
        if isinstance(condition, ExperimentCondition):
            values["condition"] = condition.value
        if not isinstance(conditions, _Unset):
            values["conditions"] = [c.to_json() for c in conditions]
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

    def complete_experiment(
        self,
        experiment_id: int,
        owner: str,
        *,
        condition: ExperimentCondition,
        conditions: Sequence[Condition],
        message: str,
        completed_at: float,
    ) -> None:
        """Record an experiment's end and release ``owner``'s claim, in one transaction:
        nobody sees it finished and still owned, or released and not yet finished."""
        with self._session() as s:
            s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.id == experiment_id)
                .values(
                    condition=condition.value,
                    conditions=[c.to_json() for c in conditions],
                    message=message,
                    completed_at=completed_at,
                )
            )
            s.execute(
                update(ExperimentRow)
                .where(ExperimentRow.id == experiment_id, ExperimentRow.owner == owner)
                .values(owner=None, owner_heartbeat=None)
            )

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
        return self.create_trials(experiment, [(assignments, labels or {})])[0]

    def create_trials(
        self,
        experiment: ExperimentRecord,
        trials: Sequence[tuple[dict[str, str], dict[str, str]]],
        *,
        algorithm_state: tuple[str, dict[str, Any]] | None = None,
        started_at: float | None = None,
    ) -> list[TrialRecord]:
        """New trials (assignments, labels) and the algorithm's state, in one transaction.

        The trials an algorithm suggested and the state it was in after suggesting them are
        stored together, so that a crash can't keep one without the other. They are Created;
        with ``started_at``, already Running (a controller that launches them at once records
        them Running before their workloads start, without a second transaction).
        """
        running = started_at is not None
        for _ in range(20):
            t = now()
            rows = [
                {
                    "experiment_id": experiment.id,
                    "namespace": experiment.namespace,
                    "name": f"{experiment.name}-{_suffix()}",
                    "assignments": dict(assignments),
                    "state": (TrialState.RUNNING if running else TrialState.CREATED).value,
                    "reason": "TrialRunning" if running else "TrialCreated",
                    "message": "Trial is running" if running else "Trial is created",
                    "created_at": t,
                    "started_at": started_at,
                    "metrics": {},
                    "labels": dict(labels),
                }
                for assignments, labels in trials
            ]
            try:
                with self._begin() as conn:
                    ids = [conn.execute(_INSERT_TRIAL, row).scalar_one() for row in rows]
                    fault_point("while-saving-state")
                    if algorithm_state is not None:
                        _save_state(conn, experiment.id, *algorithm_state)
            except IntegrityError:
                continue  # name collision in the namespace: draw other suffixes
            return [_trial_from({**row, "id": i, "completed_at": None, "exit_code": None,
                                 "pid": None, "objective": None})
                    for i, row in zip(ids, rows, strict=True)]
        raise StorageError("could not find free trial names after 20 attempts")

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
        # Plain rows, as list_trials_page: read-only, and much cheaper than ORM objects.
        query = select(TrialRow.__table__).where(TrialRow.experiment_id == experiment_id)
        if states is not None:
            query = query.where(TrialRow.state.in_([str(s) for s in states]))
        with self._session() as s:
            return [_trial_from(r._mapping) for r in s.execute(query.order_by(TrialRow.id))]

    def count_trials(self, experiment_id: int) -> dict[TrialState, int]:
        with self._session() as s:
            rows = s.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.experiment_id == experiment_id)
                .group_by(TrialRow.state)
            ).all()
        return {TrialState(state): int(n) for state, n in rows}

    def count_trials_many(self, experiment_ids: Iterable[int]) -> dict[int, dict[TrialState, int]]:
        """:meth:`count_trials` of several experiments in one query."""
        ids = list(experiment_ids)
        out: dict[int, dict[TrialState, int]] = {i: {} for i in ids}
        if not ids:
            return out
        query = (
            select(TrialRow.experiment_id, TrialRow.state, func.count())
            .where(TrialRow.experiment_id.in_(ids))
            .group_by(TrialRow.experiment_id, TrialRow.state)
        )
        with self._session() as s:
            for experiment_id, state, n in s.execute(query).all():
                out[int(experiment_id)][TrialState(state)] = int(n)
        return out

    def state_counts(self) -> dict[TrialState, int]:
        """How many trials are in each state (every experiment)."""
        query = select(TrialRow.state, func.count()).group_by(TrialRow.state)
        with self._session() as s:
            return {TrialState(state): int(n) for state, n in s.execute(query).all()}

    def recorded_best_trials(
        self, experiments: Sequence[ExperimentRecord]
    ) -> dict[int, TrialRecord | None]:
        """The trials the controller recorded as optimal (``optimal_trial_name``), one query.

        Which trial is best is the controller's rule (:func:`katib.controller.optimal_trial`),
        not storage's: an experiment with none recorded maps to None.
        """
        out: dict[int, TrialRecord | None] = {e.id: None for e in experiments}
        named = {e.id: e.optimal_trial_name for e in experiments if e.optimal_trial_name}
        if not named:
            return out
        with self._session() as s:
            rows = s.execute(
                select(TrialRow.__table__).where(
                    TrialRow.experiment_id.in_(list(named)),
                    TrialRow.name.in_(list(named.values())),
                )
            )
            for row in rows:
                trial = _trial_from(row._mapping)
                if named.get(trial.experiment_id) == trial.name:
                    out[trial.experiment_id] = trial
        return out

    def list_trials_page(
        self,
        experiment_id: int,
        *,
        states: Iterable[TrialState] | None = None,
        sort: str = "created",
        after: int | None = None,
        limit: int = 100,
    ) -> list[TrialRecord]:
        """Up to ``limit`` trials of an experiment, those after the trial with id ``after``.

        A keyset page: the cost does not grow with the number of trials before the cursor.

        Args:
            experiment_id: The experiment.
            states: Only trials in one of these states.
            sort: ``created`` (id order), ``objective`` (trials without a value last), or
                either with a leading ``-`` for descending.
            after: The id of the last trial of the previous page; a trial that is not in
                this experiment raises NotFoundError.
            limit: Most trials returned.

        Raises:
            ValueError: An unknown ``sort``.
            NotFoundError: ``after`` names no trial of this experiment (objective sorts only).
        """
        if sort not in TRIAL_SORTS:
            raise ValueError(f"sort must be one of {', '.join(TRIAL_SORTS)}")
        descending = sort.startswith("-")
        # Plain rows, not ORM objects: a page is read, never changed, and this halves its cost.
        query = select(TrialRow.__table__).where(TrialRow.experiment_id == experiment_id)
        if states is not None:
            query = query.where(TrialRow.state.in_([str(s) for s in states]))
        with self._session() as s:
            if sort.endswith("created"):
                if after is not None:
                    query = query.where(TrialRow.id < after if descending else TrialRow.id > after)
                order = TrialRow.id.desc() if descending else TrialRow.id.asc()
                query = query.order_by(order)
            else:
                if after is not None:
                    cursor = s.execute(
                        select(TrialRow.objective).where(
                            TrialRow.id == after, TrialRow.experiment_id == experiment_id
                        )
                    ).first()
                    if cursor is None:
                        raise NotFoundError(f"no trial #{after} in this experiment")
                    query = query.where(_after_objective(cursor[0], after, descending))
                value = TrialRow.objective.desc() if descending else TrialRow.objective.asc()
                query = query.order_by(value.nulls_last(), TrialRow.id)
            return [_trial_from(r._mapping) for r in s.execute(query.limit(limit))]

    def start_trial(
        self,
        trial_id: int,
        *,
        started_at: float,
        pid: int | None = None,
        message: str = "Trial is running",
    ) -> None:
        """Record that a trial's workload runs (again, for a retry).

        Raises:
            TrialFinishedError: the trial has finished: finished trials are never changed.
        """
        params = {"tid": trial_id, "message": message, "started_at": started_at, "pid_value": pid}
        with self._begin() as conn:
            if not conn.execute(_START_TRIAL, params).rowcount:
                raise self._finished(conn, trial_id)

    def finish_trial(
        self,
        trial_id: int,
        result: TrialResult,
        observations: Sequence[ObservationPoint] = (),
        *,
        experiment_id: int | None = None,
        optimal_trial_name: str | None = None,
        events: Sequence[NewEvent] = (),
    ) -> None:
        """Store how a trial ended, with its last observations, in one transaction.

        Args:
            trial_id: The trial.
            result: How it ended.
            observations: Its last metric points.
            experiment_id: Its experiment (needed with the next two).
            optimal_trial_name: The experiment's new optimal trial, recorded with the end.
            events: Events of the experiment recorded with the end (why it failed, a new
                best).

        Raises:
            TrialFinishedError: the trial has finished already: finished trials are immutable.
        """
        if not result.state.is_finished:
            raise ValueError(f"{result.state.value} is not a finished state")
        if (optimal_trial_name is not None or events) and experiment_id is None:
            raise ValueError("optimal_trial_name and events need the experiment_id")
        params = {
            "tid": trial_id,
            "state": result.state.value,
            "reason": result.reason,
            "message": result.message,
            "completed_at": result.completed_at,
            "exit_code": result.exit_code,
            "metrics": {k: v.to_json() for k, v in result.metrics.items()},
            "objective": result.objective,
            "pid_value": result.pid,
        }
        with self._begin() as conn:
            if not conn.execute(_FINISH_TRIAL, params).rowcount:
                raise self._finished(conn, trial_id)
            if observations:
                conn.execute(_INSERT_OBSERVATIONS, _observation_rows(trial_id, observations))
            if optimal_trial_name is not None:
                conn.execute(_SET_OPTIMAL, {"eid": experiment_id, "optimal": optimal_trial_name})
            if events:
                t = now()
                conn.execute(
                    _INSERT_EVENT,
                    [
                        {
                            "experiment_id": experiment_id,
                            "trial_name": e.trial_name,
                            "type": e.type,
                            "reason": e.reason,
                            "message": e.message,
                            "created_at": t,
                        }
                        for e in events
                    ],
                )
            fault_point("while-finishing")

    def reset_trial(self, trial_id: int) -> None:
        """Forget a trial's run so that it runs again from scratch.

        Only a trial whose run was cut short may be reset: one still recorded Running (its
        controller died) or Killed by an interruption.

        Raises:
            TrialFinishedError: the trial finished otherwise.
        """
        resettable = or_(
            TrialRow.state.in_([TrialState.CREATED.value, TrialState.RUNNING.value]),
            and_(
                TrialRow.state == TrialState.KILLED.value,
                TrialRow.reason == REASON_INTERRUPTED,
            ),
        )
        with self._session() as s:
            result = s.execute(
                update(TrialRow)
                .where(TrialRow.id == trial_id, resettable)
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
            if not getattr(result, "rowcount", 0):
                raise self._finished(s, trial_id)
            s.execute(delete(ObservationRow).where(ObservationRow.trial_id == trial_id))

    @staticmethod
    def _finished(s: Session | Connection, trial_id: int) -> KatibError:
        row = s.execute(
            select(TrialRow.namespace, TrialRow.name, TrialRow.state).where(TrialRow.id == trial_id)
        ).first()
        if row is None:
            return NotFoundError(f"trial #{trial_id} not found")
        return TrialFinishedError(
            f"trial {row.namespace}/{row.name} has finished ({row.state}); "
            "finished trials are never changed"
        )

    # Observation logs --------------------------------------------------------------------

    def add_observations(self, trial_id: int, observations: Sequence[ObservationPoint]) -> None:
        if not observations:
            return
        with self._begin() as conn:
            conn.execute(_INSERT_OBSERVATIONS, _observation_rows(trial_id, observations))
            fault_point("while-metrics")

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

    def metric_histories(self, experiment_id: int, metric: str) -> dict[str, list[float]]:
        """Every finished trial's reported values of ``metric`` in order (for early
        stopping), by trial name; trials that never reported it are absent."""
        query = (
            select(TrialRow.name, ObservationRow.value)
            .join(ObservationRow, ObservationRow.trial_id == TrialRow.id)
            .where(
                TrialRow.experiment_id == experiment_id,
                TrialRow.state.not_in([TrialState.CREATED.value, TrialState.RUNNING.value]),
                ObservationRow.metric_name == metric,
            )
            .order_by(ObservationRow.id)
        )
        out: dict[str, list[float]] = {}
        with self._session() as s:
            for name, value in s.execute(query).all():
                out.setdefault(name, []).append(float(value))
        return out

    # Algorithm state ---------------------------------------------------------------------

    def save_algorithm_state(
        self, experiment_id: int, algorithm: str, state: dict[str, Any]
    ) -> None:
        with self._begin() as conn:
            _save_state(conn, experiment_id, algorithm, state)

    def load_algorithm_state(self, experiment_id: int) -> tuple[str, dict[str, Any]] | None:
        with self._session() as s:
            row = s.get(AlgorithmStateRow, experiment_id)
            return None if row is None else (row.algorithm, dict(row.state))

    # API tokens --------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        namespace: str,
        role: str,
        *,
        plaintext: str | None = None,
        expires_at: float | None = None,
    ) -> tuple[TokenRecord, str]:
        """A new token; returns it with its plaintext, which is not stored and never shown again.

        ``expires_at`` (unix seconds) ends its validity; None keeps it valid until revoked.

        Raises:
            ValueError: An unknown role, or an admin token not for ``*`` (or the reverse).
            ConflictError: ``plaintext`` was given and is already a token.
        """
        _check_role(namespace, role)
        secret = plaintext or new_token()
        row = TokenRow(
            name=name,
            token_hash=hash_token(secret),
            namespace=namespace,
            role=role,
            created_at=now(),
            revoked_at=None,
            expires_at=expires_at,
        )
        try:
            with self._session() as s:
                s.add(row)
        except IntegrityError as e:
            raise ConflictError("that token already exists") from e
        return _token(row), secret

    def ensure_token(self, plaintext: str, name: str, namespace: str, role: str) -> TokenRecord:
        """Make ``plaintext`` a valid token with this role (creating or reinstating it)."""
        _check_role(namespace, role)
        digest = hash_token(plaintext)
        with self._session() as s:
            row = s.scalar(select(TokenRow).where(TokenRow.token_hash == digest))
            if row is None:
                row = TokenRow(
                    name=name,
                    token_hash=digest,
                    namespace=namespace,
                    role=role,
                    created_at=now(),
                    revoked_at=None,
                )
                s.add(row)
            else:
                row.namespace, row.role, row.revoked_at = namespace, role, None
            s.flush()
            return _token(row)

    def list_tokens(
        self, namespace: str | None = None, *, include_revoked: bool = False
    ) -> list[TokenRecord]:
        """Tokens in id order: every one, or those of ``namespace``."""
        query = select(TokenRow).order_by(TokenRow.id)
        if namespace is not None:
            query = query.where(TokenRow.namespace == namespace)
        if not include_revoked:
            query = query.where(TokenRow.revoked_at.is_(None))
        with self._session() as s:
            return [_token(r) for r in s.scalars(query)]

    def get_token(self, token_id: int) -> TokenRecord:
        with self._session() as s:
            row = s.get(TokenRow, token_id)
            if row is None:
                raise NotFoundError(f"token #{token_id} not found")
            return _token(row)

    def revoke_token(self, token_id: int) -> TokenRecord:
        """Revoke a token (revoking it again changes nothing); NotFoundError if unknown."""
        with self._session() as s:
            row = s.get(TokenRow, token_id)
            if row is None:
                raise NotFoundError(f"token #{token_id} not found")
            if row.revoked_at is None:
                row.revoked_at = now()
            return _token(row)

    def resolve_token(self, plaintext: str) -> TokenRecord | None:
        """The valid (not revoked, not expired) token with this plaintext, or None.

        Records the use (``last_used_at``), at most once a minute per token so that reads
        don't all become writes.
        """
        digest = hash_token(plaintext)
        t = now()
        with self._session() as s:
            row = s.scalar(
                select(TokenRow).where(TokenRow.token_hash == digest, TokenRow.revoked_at.is_(None))
            )
            if row is None or (row.expires_at is not None and row.expires_at <= t):
                return None
            if row.last_used_at is None or t - row.last_used_at >= LAST_USE_RESOLUTION:
                row.last_used_at = t
            return _token(row)

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
        with self._begin() as conn:
            conn.execute(
                _INSERT_EVENT,
                {
                    "experiment_id": experiment_id,
                    "trial_name": trial_name,
                    "type": type,
                    "reason": reason,
                    "message": message,
                    "created_at": now(),
                },
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


def _check_role(namespace: str, role: str) -> None:
    if role not in TOKEN_ROLES:
        raise ValueError(f"role must be one of {', '.join(TOKEN_ROLES)}, not {role!r}")
    if (role == "admin") != (namespace == ALL_NAMESPACES):
        raise ValueError(f"admin tokens, and only they, have namespace {ALL_NAMESPACES!r}")


def _token(row: TokenRow) -> TokenRecord:
    return TokenRecord(
        row.id,
        row.name,
        row.namespace,
        row.role,
        row.created_at,
        row.revoked_at,
        row.expires_at,
        row.last_used_at,
    )


def _after_objective(value: float | None, after: int, descending: bool) -> ColumnElement[bool]:
    """Rows after (value, id) in the order ``objective [DESC] NULLS LAST, id``."""
    if value is None:
        return and_(TrialRow.objective.is_(None), TrialRow.id > after)
    beyond = TrialRow.objective < value if descending else TrialRow.objective > value
    return or_(
        beyond,
        and_(TrialRow.objective == value, TrialRow.id > after),
        TrialRow.objective.is_(None),
    )


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(8))


def _save_state(
    conn: Connection, experiment_id: int, algorithm: str, state: dict[str, Any]
) -> None:
    params = {"eid": experiment_id, "algorithm": algorithm, "state": state, "at": now()}
    if not conn.execute(_UPDATE_STATE, params).rowcount:
        conn.execute(
            _INSERT_STATE,
            {"experiment_id": experiment_id, "algorithm": algorithm, "state": state,
             "updated_at": params["at"]},
        )


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


def _trial_from(m: Mapping[Any, Any]) -> TrialRecord:
    """A trial from a plain row of the trials table (see :meth:`Storage.list_trials_page`)."""
    return TrialRecord(
        id=m["id"],
        experiment_id=m["experiment_id"],
        namespace=m["namespace"],
        name=m["name"],
        assignments=dict(m["assignments"]),
        state=TrialState(m["state"]),
        reason=m["reason"] or "",
        message=m["message"] or "",
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        exit_code=m["exit_code"],
        pid=m["pid"],
        objective=m["objective"],
        metrics={
            k: MetricSummary.from_json(k, v)
            for k, v in (m["metrics"] or {}).items()
        },
        labels=dict(m["labels"] or {}),
    )


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
            k: MetricSummary.from_json(k, v)
            for k, v in (row.metrics or {}).items()
        },
        labels=dict(row.labels or {}),
    )
