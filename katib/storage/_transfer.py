"""Experiments as JSON lines: export from one database, import into another.

``katib export NAME... > file.jsonl`` writes a header line, then for each experiment one
``experiment`` line, one ``trial`` line per trial (with its observation log), its
``algorithmState`` and its ``event`` lines. ``katib import file.jsonl`` reads them back into
any database (SQLite or PostgreSQL), one transaction per experiment, keeping every id-free
field exactly: states, times, metrics, observation points, algorithm state, events. This is
also how a SQLite database moves to PostgreSQL.

An imported experiment is driven by nobody; an unfinished one resumes when it is run again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from katib.errors import ConflictError, FieldError, InvalidExperimentError, NotFoundError
from katib.records import ExperimentRecord
from katib.storage._schema import (
    AlgorithmStateRow,
    EventRow,
    ExperimentRow,
    ObservationRow,
    TrialRow,
)

FORMAT = "katib-export"
VERSION = 1

_EXPERIMENT_FIELDS = {
    "spec": "spec", "condition": "condition", "conditions": "conditions", "message": "message",
    "sourceDir": "source_dir", "createdAt": "created_at", "startedAt": "started_at",
    "completedAt": "completed_at", "optimalTrialName": "optimal_trial_name",
    "archived": "archived",
}
_TRIAL_FIELDS = {
    "assignments": "assignments", "state": "state", "reason": "reason", "message": "message",
    "createdAt": "created_at", "startedAt": "started_at", "completedAt": "completed_at",
    "exitCode": "exit_code", "pid": "pid", "objective": "objective", "metrics": "metrics",
    "labels": "labels",
}


def export_lines(storage: Any, records: Sequence[ExperimentRecord]) -> Iterator[dict[str, Any]]:
    """The export of ``records``: a header, then each experiment's lines."""
    from katib.storage._engine import SCHEMA_REVISION

    yield {"type": "header", "format": FORMAT, "version": VERSION,
           "schemaRevision": SCHEMA_REVISION}
    for record in records:
        yield from _experiment_lines(storage, record.id)


def _experiment_lines(storage: Any, experiment_id: int) -> Iterator[dict[str, Any]]:
    with storage.engine.connect() as conn:
        row = conn.execute(
            select(ExperimentRow.__table__).where(ExperimentRow.id == experiment_id)
        ).mappings().one()
        where = f"{row['namespace']}/{row['name']}"
        line: dict[str, Any] = {"type": "experiment", "namespace": row["namespace"],
                                "name": row["name"]}
        line.update({wire: row[column] for wire, column in _EXPERIMENT_FIELDS.items()})
        yield line
        trials = conn.execute(
            select(TrialRow.__table__).where(TrialRow.experiment_id == experiment_id)
            .order_by(TrialRow.id)
        ).mappings().all()
        for trial in trials:
            points = conn.execute(
                select(ObservationRow.metric_name, ObservationRow.value, ObservationRow.step,
                       ObservationRow.timestamp)
                .where(ObservationRow.trial_id == trial["id"]).order_by(ObservationRow.id)
            ).all()
            out: dict[str, Any] = {"type": "trial", "experiment": where, "name": trial["name"]}
            out.update({wire: trial[column] for wire, column in _TRIAL_FIELDS.items()})
            out["observations"] = [list(p) for p in points]
            yield out
        state = conn.execute(
            select(AlgorithmStateRow.__table__)
            .where(AlgorithmStateRow.experiment_id == experiment_id)
        ).mappings().first()
        if state is not None:
            yield {"type": "algorithmState", "experiment": where,
                   "algorithm": state["algorithm"], "state": state["state"],
                   "updatedAt": state["updated_at"]}
        for event in conn.execute(
            select(EventRow.__table__).where(EventRow.experiment_id == experiment_id)
            .order_by(EventRow.id)
        ).mappings():
            yield {"type": "event", "experiment": where, "trialName": event["trial_name"],
                   "eventType": event["type"], "reason": event["reason"],
                   "message": event["message"], "createdAt": event["created_at"]}


def parse_lines(text_lines: Iterable[str], source: str) -> list[dict[str, Any]]:
    """The JSON objects of an export; InvalidExperimentError naming each bad line."""
    out: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for number, raw in enumerate(text_lines, 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as e:
            errors.append(FieldError(f"line {number}", f"not JSON: {e}"))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            errors.append(FieldError(f"line {number}", "not an object with a 'type'"))
            continue
        item["_line"] = number
        out.append(item)
    if out and out[0].get("type") == "header":
        header = out.pop(0)
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            errors.append(FieldError("line 1", f"not a {FORMAT} file of version {VERSION}"))
    elif not errors:
        errors.append(FieldError("line 1", f"the {FORMAT} header is missing"))
    if errors:
        raise InvalidExperimentError(errors, source)
    return out


def import_lines(
    storage: Any, items: Sequence[dict[str, Any]], source: str, *, namespace: str | None = None
) -> list[tuple[str, str]]:
    """Store the experiments of parsed export lines; returns their (namespace, name).

    Each experiment goes in one transaction. Raises ConflictError (naming it) when an
    experiment of that name exists, InvalidExperimentError for lines that do not fit.
    """
    groups: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for item in items:
        if item["type"] == "experiment":
            groups.append((item, []))
        elif not groups:
            raise InvalidExperimentError(
                [FieldError(f"line {item['_line']}", "comes before any experiment line")],
                source,
            )
        else:
            groups[-1][1].append(item)
    for experiment, _ in groups:
        ns, name = namespace or experiment.get("namespace"), experiment.get("name")
        try:
            storage.get_experiment(ns, name)
        except NotFoundError:
            continue
        raise ConflictError(
            f"experiment {ns}/{name} exists in the target database; delete it there, or import "
            "into another namespace with --namespace"
        )
    done = []
    for experiment, rest in groups:
        done.append(_import_one(storage, experiment, rest, source, namespace))
    return done


def _import_one(
    storage: Any,
    experiment: dict[str, Any],
    rest: list[dict[str, Any]],
    source: str,
    namespace: str | None,
) -> tuple[str, str]:
    line = experiment["_line"]
    try:
        ns = str(namespace or experiment["namespace"])
        name = str(experiment["name"])
        values: dict[str, Any] = {"namespace": ns, "name": name}
        for wire, column in _EXPERIMENT_FIELDS.items():
            values[column] = experiment.get(wire)
        values["archived"] = bool(values["archived"])
        values["conditions"] = values["conditions"] or []
        values["message"] = values["message"] or ""
        values["source_dir"] = values["source_dir"] or ""
        if namespace:
            values["spec"] = {**values["spec"],
                              "metadata": {**values["spec"].get("metadata", {}),
                                           "namespace": ns}}
        with storage.engine.begin() as conn:
            experiment_id = conn.execute(
                insert(ExperimentRow).returning(ExperimentRow.id), [values]
            ).scalar_one()
            for item in rest:
                line = item["_line"]
                _import_item(conn, experiment_id, ns, item)
    except (KeyError, TypeError, ValueError, AttributeError, SQLAlchemyError) as e:
        raise InvalidExperimentError(
            [FieldError(f"line {line}", f"does not fit an export: {type(e).__name__}: {e}")],
            source,
        ) from e
    return ns, name


def _import_item(conn: Any, experiment_id: int, namespace: str, item: dict[str, Any]) -> None:
    kind = item["type"]
    if kind == "trial":
        values: dict[str, Any] = {"experiment_id": experiment_id, "namespace": namespace,
                                  "name": str(item["name"])}
        for wire, column in _TRIAL_FIELDS.items():
            values[column] = item.get(wire)
        values["metrics"] = values["metrics"] or {}
        values["labels"] = values["labels"] or {}
        values["reason"] = values["reason"] or ""
        values["message"] = values["message"] or ""
        trial_id = conn.execute(insert(TrialRow).returning(TrialRow.id), [values]).scalar_one()
        points = [
            {"trial_id": trial_id, "metric_name": str(m), "value": float(v),
             "step": None if s is None else int(s), "timestamp": float(t)}
            for m, v, s, t in item.get("observations") or []
        ]
        if points:
            conn.execute(insert(ObservationRow), points)
    elif kind == "algorithmState":
        conn.execute(insert(AlgorithmStateRow).values(
            experiment_id=experiment_id, algorithm=str(item["algorithm"]),
            state=dict(item["state"]), updated_at=float(item["updatedAt"])))
    elif kind == "event":
        conn.execute(insert(EventRow).values(
            experiment_id=experiment_id, trial_name=item.get("trialName"),
            type=str(item["eventType"]), reason=str(item["reason"]),
            message=str(item["message"]), created_at=float(item["createdAt"])))
    else:
        raise ValueError(f"unknown line type {kind!r}")
