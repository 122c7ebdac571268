"""The tables and text of ``get``, ``describe``, ``best`` and ``token list``, from JSON.

Everything here reads the Katib JSON a :class:`~katib.client.Backend` answers with (the
shapes of docs/cli.md), never records, so a command prints the same whether it works on the
database or through a server.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from katib.cli._display import (
    STATE_STYLES,
    TrialRow,
    finished_line,
    fmt_value,
)
from katib.controller import objective_value
from katib.records import MetricSummary, TrialState
from katib.spec import Objective

#: The status counters of an experiment, in the order ``describe`` shows them.
COUNTERS = (
    "trials",
    "trialsPending",
    "trialsRunning",
    "trialsSucceeded",
    "trialsFailed",
    "trialsKilled",
    "trialsEarlyStopped",
    "trialMetricsUnavailable",
)
FINISHED_CONDITIONS = ("Succeeded", "Failed")


def timestamp(value: str | None) -> float | None:
    """Unix seconds of an RFC 3339 time (None stays None)."""
    return None if not value else datetime.fromisoformat(value).timestamp()


def when(value: str | None) -> str:
    """An RFC 3339 time as local ``YYYY-MM-DD HH:MM`` (empty when None)."""
    ts = timestamp(value)
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def objective_of(experiment: Mapping[str, Any]) -> Objective:
    """The experiment's objective (metric strategies defaulted, as stored)."""
    return Objective.model_validate(experiment["spec"]["objective"])


def metric_value(metrics: Iterable[Mapping[str, Any]], objective: Objective) -> float | None:
    """The objective metric of an ``observation.metrics`` list reduced by its metric strategy,
    as the controller reduces it."""
    summaries = {
        m["name"]: MetricSummary(m["name"], m["min"], m["max"], m["latest"]) for m in metrics
    }
    return objective_value(summaries, objective)


def trial_objective(trial: Mapping[str, Any], objective: Objective) -> float | None:
    return metric_value(trial["status"]["observation"]["metrics"], objective)


def assignments(item: Mapping[str, Any]) -> dict[str, str]:
    """``parameterAssignments`` (of a trial's spec, or of a best trial) as a dict."""
    return {a["name"]: a["value"] for a in item["parameterAssignments"]}


def duration(trial: Mapping[str, Any]) -> float | None:
    start = timestamp(trial["status"].get("startTime"))
    end = timestamp(trial["status"].get("completionTime"))
    return None if start is None or end is None else end - start


def state_text(condition: str) -> str:
    return f"[{STATE_STYLES.get(TrialState(condition), '')}]{condition}[/]"


def is_finished(experiment: Mapping[str, Any]) -> bool:
    return experiment["status"]["condition"] in FINISHED_CONDITIONS


# get / best / describe ------------------------------------------------------------------------


def experiments_table(experiments: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None)
    for col in ("NAMESPACE", "NAME", "CONDITION", "TRIALS", "SUCCEEDED", "FAILED", "BEST",
                "CREATED"):
        table.add_column(col)
    for e in experiments:
        status = e["status"]
        best = metric_value(status["currentOptimalTrial"]["observation"]["metrics"],
                            objective_of(e))
        table.add_row(
            e["metadata"]["namespace"],
            e["metadata"]["name"],
            status["condition"],
            str(status["trials"]),
            str(status["trialsSucceeded"]),
            str(status["trialsFailed"] + status["trialMetricsUnavailable"]),
            fmt_value(best),
            when(e["metadata"]["creationTimestamp"]),
        )
    return table


def trials_table(experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Table:
    objective = objective_of(experiment)
    params = [p["name"] for p in experiment["spec"]["parameters"]]
    table = Table(box=None)
    for col in ("NAME", "STATE", *params, objective.objective_metric_name, "DURATION", "MESSAGE"):
        table.add_column(str(col))
    for t in trials:
        status = t["status"]
        given = assignments(t["spec"])
        seconds = duration(t)
        table.add_row(
            t["metadata"]["name"],
            state_text(status["condition"]),
            *[given.get(p, "") for p in params],
            fmt_value(trial_objective(t, objective)),
            "" if seconds is None else f"{seconds:.1f}s",
            "" if status["condition"] == "Succeeded" else status["message"],
        )
    return table


def print_best(console: Console, best: Mapping[str, Any], message: str) -> None:
    """The end of ``katib run`` and ``katib best``: the condition, then the best trial."""
    suffix = f" ({message})" if message else ""
    console.print(f"[bold]{best['namespace']}/{best['experiment']}[/]: {best['condition']}{suffix}")
    if best["bestTrialName"] is None:
        console.print("no trial succeeded, so there are no best parameters")
        return
    table = Table(title=f"best trial {best['bestTrialName']}", box=None, title_justify="left")
    table.add_column("parameter")
    table.add_column("value")
    for name, value in assignments(best).items():
        table.add_row(name, value)
    for m in best["observation"]["metrics"]:
        table.add_row(
            f"[dim]{m['name']}[/]",
            f"[dim]min {m['min']:.6g}  max {m['max']:.6g}  latest {m['latest']:.6g}[/]",
        )
    console.print(table)
    if "paretoFront" in best:
        console.print(pareto_table(best["paretoFront"]))


def pareto_table(front: Sequence[Mapping[str, Any]]) -> Table:
    """The Pareto front of a multi-objective experiment: one row per trial, its objectives'
    values, then its parameters."""
    objectives = list(front[0]["objectives"]) if front else []
    params = list(assignments(front[0])) if front else []
    table = Table(title=f"Pareto front ({len(front)} trials)", box=None, title_justify="left")
    table.add_column("trial")
    for o in objectives:
        arrow = "↑" if o["type"] == "maximize" else "↓"
        table.add_column(f"{o['name']} {arrow}", justify="right")
    for name in params:
        table.add_column(name, style="dim")
    for trial in front:
        values = [fmt_value(o["value"]) for o in trial["objectives"]]
        table.add_row(trial["trialName"], *values, *assignments(trial).values())
    return table


def print_experiment(
    out: Console, experiment: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> None:
    """``katib describe experiment``: spec summary, status, conditions, best trial, events."""
    meta, spec, status = experiment["metadata"], experiment["spec"], experiment["status"]
    objective, algorithm = spec["objective"], spec["algorithm"]
    goal = objective.get("goal")
    out.print(f"[bold]Name:[/]        {meta['name']}\n[bold]Namespace:[/]   {meta['namespace']}")
    out.print(f"[bold]Condition:[/]   {status['condition']}  {status['message']}")
    out.print(
        f"[bold]Objective:[/]   {objective.get('type')} {objective.get('objectiveMetricName')}"
        + (f" (goal {goal:g})" if goal is not None else "")
    )
    out.print(
        f"[bold]Algorithm:[/]   {algorithm['algorithmName']} "
        + " ".join(f"{s['name']}={s.get('value')}" for s in algorithm.get("algorithmSettings", []))
    )
    out.print(
        f"[bold]Budget:[/]      maxTrialCount={spec.get('maxTrialCount')} "
        f"parallelTrialCount={spec.get('parallelTrialCount')} "
        f"maxFailedTrialCount={spec.get('maxFailedTrialCount')}"
    )
    out.print(
        f"[bold]Created:[/]     {meta['creationTimestamp']}   [bold]Started:[/] "
        f"{status['startTime']}   [bold]Completed:[/] {status['completionTime']}"
    )
    out.print("[bold]Trials:[/]      " + "  ".join(f"{k}={status[k]}" for k in COUNTERS))
    out.print("[bold]Conditions:[/]")
    for c in status["conditions"]:
        out.print(f"  {c['type']:<11} {c['status']:<6} {c['reason']:<34} {c['message']}")
    best = status["currentOptimalTrial"]
    if best["bestTrialName"] is not None:
        out.print(f"[bold]Best trial:[/]  {best['bestTrialName']}")
        for k, v in assignments(best).items():
            out.print(f"  {k} = {v}")
        for m in best["observation"]["metrics"]:
            out.print(
                f"  {m['name']}: min {m['min']:.6g}  max {m['max']:.6g}  latest {m['latest']:.6g}"
            )
    if events:
        out.print("[bold]Events:[/]")
        for ev in events[-20:]:
            out.print(f"  {ev['time']} {ev['type']} {ev['reason']} {ev['message']}")


def tokens_table(tokens: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None)
    for col in ("ID", "NAME", "NAMESPACE", "ROLE", "CREATED", "REVOKED"):
        table.add_column(col)
    for t in tokens:
        table.add_row(
            str(t["id"]), t["name"], t["namespace"], t["role"], when(t["createdAt"]),
            when(t.get("revokedAt")),
        )
    return table


# progress of experiments a server runs -------------------------------------------------------


def trial_row(trial: Mapping[str, Any], objective: Objective, now: float | None = None) -> TrialRow:
    """A trial's JSON as progress shows it; ``now`` gives running trials their time so far."""
    status = trial["status"]
    state = TrialState(status["condition"])
    seconds = duration(trial)
    if state == TrialState.RUNNING and now is not None:
        start = timestamp(status.get("startTime"))
        seconds = None if start is None else now - start
    return TrialRow(
        trial["metadata"]["name"],
        state,
        assignments(trial["spec"]),
        trial_objective(trial, objective),
        status["message"],
        seconds,
    )


def trial_line(trial: Mapping[str, Any], objective: Objective) -> Text:
    """One finished trial, as ``katib run`` prints it when not on a terminal."""
    metric = objective.objective_metric_name or "objective"
    return finished_line(trial_row(trial, objective), metric)
