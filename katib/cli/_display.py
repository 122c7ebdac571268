"""Progress of ``katib run`` and the tables of ``get`` / ``describe`` (rich)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from katib.controller import ExperimentRun, RunObserver
from katib.records import TrialRecord, TrialState

STATE_STYLES = {
    TrialState.CREATED: "dim",
    TrialState.RUNNING: "cyan",
    TrialState.SUCCEEDED: "green",
    TrialState.FAILED: "red",
    TrialState.KILLED: "yellow",
    TrialState.EARLY_STOPPED: "magenta",
    TrialState.METRICS_UNAVAILABLE: "red",
}


def fmt_value(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def fmt_assignments(assignments: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in assignments.items())


class LiveProgress(RunObserver):
    """A live table on a terminal; one line per finished trial otherwise."""

    def __init__(self, console: Console, runs: Sequence[ExperimentRun] = ()) -> None:
        self.console = console
        self.runs = list(runs)
        self.live: Live | None = None
        self.started = time.monotonic()

    def __enter__(self) -> LiveProgress:
        if self.console.is_terminal:
            self.live = Live(
                get_renderable=self.render,
                console=self.console,
                refresh_per_second=4,
                transient=False,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        if self.live is not None or self.console.quiet:
            return
        style = STATE_STYLES.get(trial.state, "")
        objective = run.objective.objective_metric_name or "objective"
        line = Text.assemble(
            (f"{trial.name} ", "bold"),
            (f"{trial.state.value:<18}", style),
            f"{objective}={fmt_value(trial.objective)}  " if trial.objective is not None else "",
            fmt_assignments(trial.assignments),
            f"  ({trial.message})" if trial.state != TrialState.SUCCEEDED else "",
        )
        self.console.print(line, soft_wrap=True, highlight=False)

    def experiment_finished(self, run: ExperimentRun) -> None:
        if self.live is None:
            condition = run.record.condition.value
            self.console.print(f"experiment {run.record.name}: {condition}: {run.record.message}")

    def render(self) -> Group:
        parts: list[Any] = []
        for run in self.runs:
            parts.append(run_summary(run, time.monotonic() - self.started))
            parts.append(trial_table(run))
        return Group(*parts)


def run_summary(run: ExperimentRun, elapsed: float) -> Text:
    counts = run.counts
    total = sum(counts.values())
    limit = run.spec.spec.max_trial_count
    objective = run.objective.objective_metric_name or "objective"
    failed = counts.get(TrialState.FAILED, 0) + counts.get(TrialState.METRICS_UNAVAILABLE, 0)
    text = Text.assemble(
        (f"{run.record.namespace}/{run.record.name}", "bold"),
        f"  {run.record.condition.value}  ",
        f"trials {total}{'/' + str(limit) if limit else ''}  ",
        (f"running {counts.get(TrialState.RUNNING, 0)}  ", "cyan"),
        (f"succeeded {counts.get(TrialState.SUCCEEDED, 0)}  ", "green"),
        (f"failed {failed}  ", "red"),
        f"elapsed {elapsed:.0f}s",
    )
    if run.best is not None:
        text.append(
            f"\nbest {objective}={fmt_value(run.best.objective)}  "
            f"{fmt_assignments(run.best.assignments)}  ({run.best.name})",
            style="bold green",
        )
    return text


def trial_table(run: ExperimentRun, limit: int = 12) -> Table:
    names = run.spec.spec.parameters
    objective = run.objective.objective_metric_name or "objective"
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("trial")
    table.add_column("state")
    for p in names:
        table.add_column(p.name or "", overflow="fold")
    table.add_column(objective, justify="right")
    table.add_column("time", justify="right")
    active = [t for t in run.trials.values() if t.state == TrialState.RUNNING]
    recent = list(reversed(run.recent))[: max(limit - len(active), 3)]
    now = time.time()
    for trial in [*active, *recent]:
        if trial.state == TrialState.RUNNING and trial.started_at is not None:
            duration: float | None = now - trial.started_at
        else:
            duration = trial.duration
        accumulator = run.accumulators.get(trial.name)
        value = trial.objective
        if value is None and accumulator is not None:
            value = accumulator.objective(run.objective)
        table.add_row(
            trial.name,
            Text(trial.state.value, style=STATE_STYLES.get(trial.state, "")),
            *[trial.assignments.get(p.name or "", "") for p in names],
            fmt_value(value),
            "" if duration is None else f"{duration:.1f}s",
        )
    return table
