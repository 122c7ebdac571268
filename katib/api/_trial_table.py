"""Trials as columns: the compact shape the dashboard draws tables and plots from.

One array per field instead of one Katib Trial object per trial: 10,000 trials fit in a few
hundred kilobytes once compressed, and a browser reads them without building 10,000 objects.
Parameter values are numbers for double and int parameters (and discrete lists of numbers),
strings otherwise; each metric is reduced by its metric strategy, as the objective is. Times
are whole milliseconds since the experiment's creation (``origin``, unix seconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from katib.records import ExperimentRecord
from katib.storage import EventRecord, TrialColumns
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


def _ms(ts: float | None, origin: float) -> int | None:
    return None if ts is None else round((ts - origin) * 1000)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def wanted(experiment: ExperimentRecord) -> tuple[list[str], dict[str, str]]:
    """The parameters, and the metrics but the objective with the summary (min, max,
    latest) that their strategy reduces them to, that :func:`columns` shows."""
    objective = experiment.spec.spec.objective
    names = objective.all_metric_names() if objective else []
    others = {m: objective.strategy_for(m) if objective else "latest" for m in names[1:]}
    return list(numeric_parameters(experiment)), {
        m: how if how in ("min", "max") else "latest" for m, how in others.items()
    }


def columns(experiment: ExperimentRecord, trials: TrialColumns) -> dict[str, Any]:
    """The trials as arrays of equal length, keyed by field.

    Times are milliseconds since the experiment's creation; ``metrics`` has every metric but
    the objective, whose reduced value is ``objective``.
    """
    numeric = numeric_parameters(experiment)
    origin = experiment.created_at
    params: dict[str, list[Any]] = {}
    n = len(trials)
    for name, is_numeric in numeric.items():
        raw = trials.params.get(name, [None] * n)
        params[name] = [_number(v) for v in raw] if is_numeric else raw
    return {
        "id": trials.id,
        "name": trials.name,
        "state": trials.state,
        "objective": [_finite(v) for v in trials.objective],
        "created": [_ms(t, origin) for t in trials.created_at],
        "started": [_ms(t, origin) for t in trials.started_at],
        "completed": [_ms(t, origin) for t in trials.completed_at],
        "params": params,
        "metrics": {m: [_finite(v) for v in values] for m, values in trials.metrics.items()},
    }


def table_json(
    experiment: ExperimentRecord,
    trials: TrialColumns,
    refreshed: TrialColumns,
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
        "origin": round(experiment.created_at, 3),
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
