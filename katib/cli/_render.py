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
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from katib.cli._display import (
    STATE_STYLES,
    TrialRow,
    finished_line,
    fmt_value,
)
from katib.client import metric_names, metric_values, objective_of
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


def metric_value(metrics: Iterable[Mapping[str, Any]], objective: Objective) -> float | None:
    """The objective metric of an ``observation.metrics`` list reduced by its metric strategy,
    as the controller reduces it."""
    summaries = {m["name"]: MetricSummary.from_json(m["name"], m) for m in metrics}
    return objective_value(summaries, objective)


def metric_text(m: Mapping[str, Any]) -> str:
    """``min .. max .. latest ..`` of an ``observation.metrics`` item; a text metric (DARTS'
    genotype) has only its latest value."""
    if isinstance(m["latest"], str):
        return f"latest {m['latest']}"
    return f"min {m['min']:.6g}  max {m['max']:.6g}  latest {m['latest']:.6g}"


def objective_cell(trial: Mapping[str, Any], objective: Objective) -> str:
    """The objective of a trials table row: its value, or the start of its text."""
    for m in trial["status"]["observation"]["metrics"]:
        if m["name"] == objective.objective_metric_name and isinstance(m["latest"], str):
            text = str(m["latest"])
            return text if len(text) <= 40 else text[:39] + "…"
    return fmt_value(trial_objective(trial, objective))


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


def condition_text(experiment: Mapping[str, Any]) -> str:
    """The condition as tables show it: ``Interrupted`` for a Running experiment that nothing
    drives any more (its controller was stopped or crashed)."""
    status = experiment["status"]
    if status.get("interrupted") and status["condition"] == "Running":
        return "Interrupted"
    return str(status["condition"])


def resume_hint(experiment: Mapping[str, Any]) -> str | None:
    """How to continue an experiment that nothing runs, or None when something does."""
    status = experiment["status"]
    if not status.get("interrupted"):
        return None
    name = experiment["metadata"]["name"]
    if status["condition"] == "Restarting":
        return (
            f"nothing runs it yet: `katib restart {name}` runs its new trials here (a katib "
            "server on this database runs them by itself)"
        )
    return (
        f"interrupted: nothing runs it since its controller stopped (Ctrl-C, a crash); "
        f"`katib restart {name}` resumes it here, as does running its file again"
    )


EXPERIMENT_COLUMNS = ("NAMESPACE", "NAME", "CONDITION", "TRIALS", "SUCCEEDED", "FAILED", "BEST",
                      "CREATED")
EXPERIMENT_WIDE_COLUMNS = ("RUNNING", "OBJECTIVE", "ALGORITHM", "BEST TRIAL", "MAX TRIALS",
                           "MESSAGE")


def experiment_cells(e: Mapping[str, Any], wide: bool = False) -> list[str]:
    """One experiment's row of ``katib get experiments`` (plain text)."""
    status, spec = e["status"], e["spec"]
    objective = objective_of(e)
    best = metric_value(status["currentOptimalTrial"]["observation"]["metrics"], objective)
    cells = [
        e["metadata"]["namespace"],
        e["metadata"]["name"],
        condition_text(e),
        str(status["trials"]),
        str(status["trialsSucceeded"]),
        str(status["trialsFailed"] + status["trialMetricsUnavailable"]),
        fmt_value(best),
        when(e["metadata"]["creationTimestamp"]),
    ]
    if wide:
        max_trials = spec.get("maxTrialCount")
        cells += [
            str(status["trialsRunning"]),
            f"{objective.type} {objective.objective_metric_name}",
            str((spec.get("algorithm") or {}).get("algorithmName", "")),
            status["currentOptimalTrial"]["bestTrialName"] or "",
            "" if max_trials is None else str(max_trials),
            status["message"],
        ]
    return cells


def experiments_table(experiments: Sequence[Mapping[str, Any]], wide: bool = False) -> Table:
    table = Table(box=None)
    for col in (*EXPERIMENT_COLUMNS, *(EXPERIMENT_WIDE_COLUMNS if wide else ())):
        table.add_column(col)
    for e in experiments:
        cells: list[Any] = [Text(c) for c in experiment_cells(e, wide)]
        if e["status"].get("interrupted"):
            cells[2].stylize("yellow")
        table.add_row(*cells)
    return table


def trial_headers(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], wide: bool = False
) -> list[str]:
    """The columns of ``katib get trials``: wide adds the other metrics, reason, exit code and
    start time."""
    objective = objective_of(experiment)
    params = [p["name"] for p in experiment["spec"]["parameters"]]
    head = ["NAME", "STATE", *params, str(objective.objective_metric_name), "DURATION"]
    if wide:
        head += metric_names(experiment, trials)[1:]
        head += ["REASON", "EXIT", "STARTED"]
    return [*head, "MESSAGE"]


def trial_cells(
    experiment: Mapping[str, Any],
    t: Mapping[str, Any],
    wide: bool = False,
    metrics: Sequence[str] = (),
) -> list[str]:
    """One trial's row of ``katib get trials`` (plain text); ``metrics``: the wide columns'."""
    objective = objective_of(experiment)
    params = [p["name"] for p in experiment["spec"]["parameters"]]
    status = t["status"]
    given = assignments(t["spec"])
    seconds = duration(t)
    cells = [
        t["metadata"]["name"],
        status["condition"],
        *[given.get(p, "") for p in params],
        objective_cell(t, objective),
        "" if seconds is None else f"{seconds:.1f}s",
    ]
    if wide:
        reduced = metric_values(t, objective)
        exit_code = status.get("exitCode")
        cells += [fmt_value(reduced.get(m)) for m in metrics]
        cells += [
            status.get("reason") or "",
            "" if exit_code is None else str(exit_code),
            when(status.get("startTime")),
        ]
    return [*cells, "" if status["condition"] == "Succeeded" else status["message"]]


def trials_table(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], wide: bool = False
) -> Table:
    table = Table(box=None)
    for col in trial_headers(experiment, trials, wide):
        table.add_column(col, overflow="fold")
    metrics = metric_names(experiment, trials)[1:]
    for t in trials:
        cells: list[Any] = [Text(c) for c in trial_cells(experiment, t, wide, metrics)]
        cells[1].stylize(STATE_STYLES.get(TrialState(t["status"]["condition"]), ""))
        table.add_row(*cells)
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
            f"[dim]{metric_text(m)}[/]",
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
    out.print(f"[bold]Condition:[/]   {status['condition']}  {escape(status['message'])}")
    hint = resume_hint(experiment)
    if hint:
        out.print(f"             [yellow]{hint}[/]")
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
                f"  {m['name']}: {metric_text(m)}"
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


# describe trial / failures -------------------------------------------------------------------


def print_trial(
    out: Console,
    experiment: Mapping[str, Any],
    trial: Mapping[str, Any],
    tail: Sequence[str],
    log_place: str | None,
) -> None:
    """``katib describe trial``: state and why, parameters, metrics, the end of its output."""
    meta, status = trial["metadata"], trial["status"]
    objective = objective_of(experiment)
    name = meta["name"]
    seconds = duration(trial)
    exit_code = status.get("exitCode")
    out.print(f"[bold]Name:[/]        {name}\n[bold]Namespace:[/]   {meta['namespace']}")
    out.print(f"[bold]Experiment:[/]  {experiment['metadata']['name']}")
    out.print(f"[bold]State:[/]       {state_text(status['condition'])}  {status['reason'] or ''}")
    if status["message"]:
        out.print(f"[bold]Message:[/]     {escape(status['message'])}", highlight=False)
    if exit_code is not None:
        out.print(f"[bold]Exit code:[/]   {exit_code}")
    out.print(
        f"[bold]Created:[/]     {meta['creationTimestamp']}   [bold]Started:[/] "
        f"{status.get('startTime')}   [bold]Completed:[/] {status.get('completionTime')}"
        + ("" if seconds is None else f"   [bold]Duration:[/] {seconds:.1f}s")
    )
    out.print("[bold]Parameters:[/]")
    for k, v in assignments(trial["spec"]).items():
        out.print(f"  {k} = {v}", markup=False, highlight=False)
    metrics = status["observation"]["metrics"]
    out.print("[bold]Metrics:[/]" + ("" if metrics else "     none reported"))
    for m in metrics:
        mark = "  (objective)" if m["name"] == objective.objective_metric_name else ""
        out.print(
            f"  {m['name']}: {metric_text(m)}"
            f"{mark}",
            markup=False,
            highlight=False,
        )
    where = f" of {escape(log_place)}" if log_place else ""
    if tail:
        out.print(f"[bold]Output:[/]      the last {len(tail)} line(s){where}", highlight=False)
        for line in tail:
            out.print(f"  | {line}", markup=False, highlight=False)
        out.print(f"  whole output: katib logs {name}", markup=False, highlight=False)
    else:
        out.print("[bold]Output:[/]      none" + (f" ({escape(log_place)})" if log_place else ""),
                  highlight=False)


#: Trial conditions that need explaining at the end of a run.
FAILED_STATES = ("Failed", "MetricsUnavailable")


def print_failures(
    err: Console,
    experiment: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    tail_of: Any,
    log_folder: str | None,
    groups: int = 3,
    lines: int = 8,
) -> None:
    """Why trials failed: the last lines of their output, one block per distinct failure.

    ``tail_of(trial_name)`` gives a trial's last output lines. Trials that failed the same way
    (same message, same last lines) are told once; the most recent failures come first.
    """
    failed = [t for t in trials if t["status"]["condition"] in FAILED_STATES]
    if not failed:
        return
    where = f"{experiment['metadata']['namespace']}/{experiment['metadata']['name']}"
    seen: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for t in reversed(failed):
        name = t["metadata"]["name"]
        key = (f"{t['status']['condition']}: {t['status']['message']}", tuple(tail_of(name)))
        seen.setdefault(key, []).append(name)
    err.print(
        f"[bold red]{len(failed)} trial(s) of {where} failed[/]"
        + (f"; their output is in {log_folder}" if log_folder else ""),
        highlight=False,
    )
    for (what, tail), names in list(seen.items())[:groups]:
        who = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
        err.print(f"trial {who} {what}", markup=False, highlight=False)
        if tail:
            err.print(f"  last lines of its output (katib logs {names[0]}):", markup=False)
            for line in tail[-lines:]:
                err.print(f"  | {line}", markup=False, highlight=False)
        else:
            err.print("  it wrote no output", markup=False)
    if len(seen) > groups:
        err.print(
            f"{len(seen) - groups} other kind(s) of failure: katib get trials "
            f"{experiment['metadata']['name']} -n {experiment['metadata']['namespace']}",
            markup=False,
        )
