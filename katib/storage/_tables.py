"""Reads for the dashboard: chosen trials by id, and many trials' observation curves at once.

A mixin of :class:`katib.storage.Storage`; each read is one query, whatever the number of
trials asked for.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from katib.records import TrialRecord
from katib.storage._schema import EventRow, ObservationRow, TrialRow

if TYPE_CHECKING:
    from katib.storage._store import EventRecord

#: Most ids one ``IN (...)`` carries (SQLite's default limit on bound parameters is 999+).
_CHUNK = 500


@dataclass
class TrialColumns:
    """Trials as parallel lists (see :meth:`TrialTableStore.trial_columns`)."""

    id: list[int] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    objective: list[float | None] = field(default_factory=list)
    created_at: list[float] = field(default_factory=list)
    started_at: list[float | None] = field(default_factory=list)
    completed_at: list[float | None] = field(default_factory=list)
    #: Each asked-for parameter's values, as assigned (strings; None where unassigned).
    params: dict[str, list[str | None]] = field(default_factory=dict)
    #: Each asked-for metric's summary value (None where not reported).
    metrics: dict[str, list[float | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.id)


class TrialTableStore:
    """Trials by id and observation curves (mixed into :class:`Storage`)."""

    @abstractmethod
    def _session(self) -> AbstractContextManager[Session]: ...

    def trials_by_id(self, experiment_id: int, trial_ids: Sequence[int]) -> list[TrialRecord]:
        """The trials of the experiment among ``trial_ids``, in id order (others are ignored)."""
        from katib.storage._store import _trial_from

        out: list[TrialRecord] = []
        ids = sorted(set(trial_ids))
        with self._session() as s:
            for i in range(0, len(ids), _CHUNK):
                query = (
                    select(TrialRow.__table__)
                    .where(
                        TrialRow.experiment_id == experiment_id,
                        TrialRow.id.in_(ids[i : i + _CHUNK]),
                    )
                    .order_by(TrialRow.id)
                )
                out.extend(_trial_from(r._mapping) for r in s.execute(query))
        return out

    def observation_curves(
        self, trial_ids: Sequence[int], metric_name: str
    ) -> dict[int, list[tuple[int | None, float, float]]]:
        """``(step, value, timestamp)`` of ``metric_name`` per trial, in the order reported."""
        out: dict[int, list[tuple[int | None, float, float]]] = {i: [] for i in trial_ids}
        ids = sorted(set(trial_ids))
        with self._session() as s:
            for i in range(0, len(ids), _CHUNK):
                query = (
                    select(
                        ObservationRow.trial_id,
                        ObservationRow.step,
                        ObservationRow.value,
                        ObservationRow.timestamp,
                    )
                    .where(
                        ObservationRow.trial_id.in_(ids[i : i + _CHUNK]),
                        ObservationRow.metric_name == metric_name,
                    )
                    .order_by(ObservationRow.trial_id, ObservationRow.id)
                )
                for trial_id, step, value, ts in s.execute(query):
                    out[int(trial_id)].append((step, float(value), float(ts)))
        return out

    def events_after(self, experiment_id: int, after: int | None) -> list[EventRecord]:
        """The experiment's events with an id above ``after`` (all of them for None)."""
        from katib.storage._store import EventRecord

        query = select(EventRow).where(EventRow.experiment_id == experiment_id)
        if after is not None:
            query = query.where(EventRow.id > after)
        with self._session() as s:
            return [
                EventRecord(r.id, r.trial_name, r.type, r.reason, r.message, r.created_at)
                for r in s.scalars(query.order_by(EventRow.id))
            ]

    def trial_columns(
        self,
        experiment_id: int,
        *,
        parameters: Sequence[str] = (),
        metrics: Mapping[str, str] | None = None,
        after: int | None = None,
        limit: int = 10_000,
        ids: Sequence[int] | None = None,
    ) -> TrialColumns:
        """Trials of the experiment as columns, in id order: those after the id ``after`` (up
        to ``limit``), or those among ``ids``.

        The fastest read of many trials: only the columns a table shows, with the parameter
        values and metric summaries taken out of their JSON by the database itself.

        Args:
            experiment_id: The experiment.
            parameters: The parameters whose values to read (as the strings assigned).
            metrics: Metric name -> which summary to read (``min``, ``max`` or ``latest``).
            after: Only trials with a larger id.
            limit: Most trials read.
            ids: Only these trials (at most 500; ``after`` is then ignored).
        """
        wanted_metrics = dict(metrics or {})
        columns: list[Any] = [
            TrialRow.id,
            TrialRow.name,
            TrialRow.state,
            TrialRow.objective,
            TrialRow.created_at,
            TrialRow.started_at,
            TrialRow.completed_at,
        ]
        columns += [TrialRow.assignments[p].as_string() for p in parameters]
        columns += [TrialRow.metrics[(m, how)].as_float() for m, how in wanted_metrics.items()]
        query = select(*columns).where(TrialRow.experiment_id == experiment_id)
        if ids is not None:
            query = query.where(TrialRow.id.in_(sorted(set(ids))[:_CHUNK]))
        elif after is not None:
            query = query.where(TrialRow.id > after)
        query = query.order_by(TrialRow.id).limit(limit)
        with self._session() as s:
            # The driver's rows as they are (ints, floats, strings): SQLAlchemy's row objects
            # cost more than the query itself at this size.
            result = s.connection().execute(query)
            rows = result.cursor.fetchall() if result.cursor is not None else []
            result.close()
        fields = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        out = TrialColumns(
            id=list(fields[0]),
            name=list(fields[1]),
            state=list(fields[2]),
            objective=list(fields[3]),
            created_at=list(fields[4]),
            started_at=list(fields[5]),
            completed_at=list(fields[6]),
        )
        k = 7
        for p in parameters:
            out.params[p] = list(fields[k])
            k += 1
        for m in wanted_metrics:
            out.metrics[m] = [None if v is None else float(v) for v in fields[k]]
            k += 1
        return out

    def trial_fingerprint(self, experiment_id: int) -> tuple[int, int, int]:
        """``(trials, largest id, unfinished trials)`` of the experiment, in one cheap query.

        Finished trials never change, so while none is unfinished the first two say whether
        anything changed since the last look.
        """
        active = case((TrialRow.state.in_(["Created", "Running"]), 1), else_=0)
        query = select(func.count(), func.max(TrialRow.id), func.sum(active)).where(
            TrialRow.experiment_id == experiment_id
        )
        with self._session() as s:
            count, largest, unfinished = s.execute(query).one()
        return int(count or 0), int(largest or 0), int(unfinished or 0)
