"""Trials as columns: the compact shape the dashboard draws tables and plots from.

One array per field instead of one Katib Trial object per trial: 10,000 trials fit in a few
hundred kilobytes once compressed, and a browser reads them without building 10,000 objects.
Parameter values are numbers for double and int parameters (and discrete lists of numbers),
strings otherwise; each metric is reduced by its metric strategy, as the objective is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from katib.records import ExperimentRecord, TrialRecord
from katib.storage import EventRecord
from katib.views import events_json

NUMERIC_TYPES = frozenset({"double", "int"})


def numeric_parameters(experiment: ExperimentRecord) -> dict[str, bool]:
    """Each parameter's name, and whether its values are numbers."""
    out: dict[str, bool] = {}
    for p in experiment.spec.spec.parameters or []:
        if p.name is None:
            continue
        kind = (p.parameter_type or "").lower()
        values = (p.feasible_space.values if p.feasible_space else None) or []
        numbers = kind == "discrete" and all(_is_number(v) for v in values)
        out[p.name] = kind in NUMERIC_TYPES or numbers
    return out


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _seconds(ts: float | None) -> float | None:
    return None if ts is None else round(ts, 3)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def columns(experiment: ExperimentRecord, trials: Sequence[TrialRecord]) -> dict[str, Any]:
    """The trials as arrays of equal length, keyed by field."""
    objective = experiment.spec.spec.objective
    metric_names = objective.all_metric_names() if objective else []
    strategies = {m: objective.strategy_for(m) if objective else "latest" for m in metric_names}
    numeric = numeric_parameters(experiment)
    params: dict[str, list[Any]] = {name: [] for name in numeric}
    metrics: dict[str, list[float | None]] = {name: [] for name in metric_names}
    out: dict[str, list[Any]] = {
        "id": [],
        "name": [],
        "state": [],
        "objective": [],
        "created": [],
        "started": [],
        "completed": [],
    }
    for t in trials:
        out["id"].append(t.id)
        out["name"].append(t.name)
        out["state"].append(t.state.value)
        out["objective"].append(_finite(t.objective))
        out["created"].append(_seconds(t.created_at))
        out["started"].append(_seconds(t.started_at))
        out["completed"].append(_seconds(t.completed_at))
        for name, values in params.items():
            raw = t.assignments.get(name)
            values.append(_number(raw) if numeric[name] else raw)
        for name, values in metrics.items():
            summary = t.metrics.get(name)
            values.append(None if summary is None else _finite(summary.value(strategies[name])))
    return {**out, "params": params, "metrics": metrics}


def table_json(
    experiment: ExperimentRecord,
    trials: Sequence[TrialRecord],
    refreshed: Sequence[TrialRecord],
    cursor: int | None,
    complete: bool,
    status: dict[str, Any],
    events: Sequence[EventRecord],
    events_cursor: int | None,
) -> dict[str, Any]:
    """The answer of the trial-table endpoint (see its route for the meaning of each part)."""
    return {
        "experiment": experiment.name,
        "namespace": experiment.namespace,
        "parameters": [
            {"name": name, "numeric": is_numeric}
            for name, is_numeric in numeric_parameters(experiment).items()
        ],
        "cursor": None if cursor is None else str(cursor),
        "complete": complete,
        "trials": columns(experiment, trials),
        "refreshed": columns(experiment, refreshed),
        "status": status,
        "events": [
            {"id": e.id, **view} for e, view in zip(events, events_json(events), strict=True)
        ],
        "eventsCursor": None if events_cursor is None else str(events_cursor),
    }
