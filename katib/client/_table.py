"""Trials as flat rows, for ``katib get trials -o csv`` and the SDK's ``get_trials_dataframe()``.

Both read the Katib JSON a :class:`~katib.client.Backend` answers with, so a table is the same
from the database and through a server. Columns follow Optuna's ``trials_dataframe()`` where
Katib has the same notion (``value``, ``params_<name>``, ``datetime_start``, ``duration``),
with Katib's own beside them (``name``, ``metrics_<name>``, ``reason``, ``message``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from katib.records import MetricSummary
from katib.spec import Objective

#: Parameter types whose values are numbers.
NUMERIC_TYPES = ("double", "int", "discrete")


def objective_of(experiment: Mapping[str, Any]) -> Objective:
    """The experiment's objective (metric strategies as stored)."""
    return Objective.model_validate(experiment["spec"]["objective"])


def parameter_types(experiment: Mapping[str, Any]) -> dict[str, str]:
    """``{parameter: parameterType}`` in the order of the spec."""
    return {
        str(p["name"]): str(p.get("parameterType") or "")
        for p in experiment["spec"].get("parameters") or []
    }


def typed_value(kind: str, text: str) -> Any:
    """A parameter's value (text, as Katib substitutes it) as its type's Python value.

    ``double`` gives a float, ``int`` an int, ``discrete`` an int when the text is an integer
    and a float otherwise; ``categorical`` (and anything that does not parse) stays text.
    """
    try:
        if kind == "double":
            return float(text)
        if kind == "int":
            number = float(text)
            return int(number) if number.is_integer() else number
        if kind == "discrete":
            try:
                return int(text)
            except ValueError:
                return float(text)
    except ValueError:
        return text
    return text


def typed_assignments(
    experiment: Mapping[str, Any], assignments: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``parameterAssignments`` as ``{name: typed value}`` (see :func:`typed_value`)."""
    kinds = parameter_types(experiment)
    return {
        str(a["name"]): typed_value(kinds.get(str(a["name"]), ""), str(a["value"]))
        for a in assignments
    }


def metric_values(
    trial: Mapping[str, Any], objective: Objective
) -> dict[str, float]:
    """Each reported metric reduced by its metric strategy, as the controller reduces the
    objective (``min``/``max``/``latest``)."""
    out: dict[str, float] = {}
    for m in trial["status"]["observation"]["metrics"]:
        summary = MetricSummary.from_json(m["name"], m)
        if summary.text is None:  # a text (DARTS' genotype) is no value to reduce or sort
            out[summary.name] = summary.value(objective.strategy_for(summary.name))
    return out


def metric_names(experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> list[str]:
    """The objective metric, the additional ones, then any other metric a trial reported."""
    names = objective_of(experiment).all_metric_names()
    for trial in trials:
        for m in trial["status"]["observation"]["metrics"]:
            if m["name"] not in names:
                names.append(m["name"])
    return names


def _time(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)


def trial_rows(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], *, typed: bool
) -> list[dict[str, Any]]:
    """One flat dict per trial, every row with the same keys in the same order.

    Keys: ``name``, ``state``, ``value`` (the objective after its metric strategy),
    ``params_<parameter>`` (text exactly as the trial got it, or typed values when
    ``typed``), ``metrics_<metric>`` (each metric after its strategy), ``datetime_start``,
    ``datetime_complete`` (RFC 3339 text, or ``datetime`` when ``typed``), ``duration``
    (seconds), ``reason``, ``message``, ``exit_code``. Missing values are None.
    """
    objective = objective_of(experiment)
    params = list(parameter_types(experiment))
    metrics = metric_names(experiment, trials)
    rows = []
    for t in trials:
        status = t["status"]
        given = t["spec"]["parameterAssignments"]
        values: Mapping[str, Any] = (
            typed_assignments(experiment, given)
            if typed
            else {str(a["name"]): str(a["value"]) for a in given}
        )
        reduced = metric_values(t, objective)
        start, end = status.get("startTime"), status.get("completionTime")
        start_at, end_at = _time(start), _time(end)
        duration = None
        if start_at is not None and end_at is not None:
            duration = (end_at - start_at).total_seconds()
        row: dict[str, Any] = {
            "name": t["metadata"]["name"],
            "state": status["condition"],
            "value": reduced.get(objective.objective_metric_name or ""),
        }
        row.update({f"params_{p}": values.get(p) for p in params})
        row.update({f"metrics_{m}": reduced.get(m) for m in metrics})
        row.update(
            datetime_start=start_at if typed else start,
            datetime_complete=end_at if typed else end,
            duration=duration,
            reason=status.get("reason") or "",
            message=status.get("message") or "",
            exit_code=status.get("exitCode"),
        )
        rows.append(row)
    return rows


def trial_columns(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The keys of :func:`trial_rows`, in order (also when there are no trials)."""
    return [
        "name",
        "state",
        "value",
        *(f"params_{p}" for p in parameter_types(experiment)),
        *(f"metrics_{m}" for m in metric_names(experiment, trials)),
        "datetime_start",
        "datetime_complete",
        "duration",
        "reason",
        "message",
        "exit_code",
    ]
