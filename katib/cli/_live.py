"""Live progress of ``katib run`` on this machine, from the controller's records."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from katib.cli._display import (
    Summary,
    TrialRow,
    finished_line,
    progress_table,
    summary_text,
)
from katib.controller import ExperimentRun, RunObserver
from katib.records import TrialRecord, TrialState


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

    def experiment_started(self, run: ExperimentRun) -> None:
        self.runs.append(run)

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        if self.live is not None or self.console.quiet:
            return
        metric = run.objective.objective_metric_name or "objective"
        self.console.print(finished_line(_row(trial), metric), soft_wrap=True, highlight=False)

    def experiment_finished(self, run: ExperimentRun) -> None:
        if self.live is None:
            condition = run.record.condition.value
            self.console.print(f"experiment {run.record.name}: {condition}: {run.record.message}")

    def render(self) -> Group:
        parts: list[Any] = []
        for run in self.runs:
            parts.append(run_summary(run, time.monotonic() - self.started))
            parts.append(trial_table(run, width=self.console.width))
        return Group(*parts)


def run_summary(run: ExperimentRun, elapsed: float) -> Text:
    counts = run.counts
    failed = counts.get(TrialState.FAILED, 0) + counts.get(TrialState.METRICS_UNAVAILABLE, 0)
    summary = Summary(
        where=f"{run.record.namespace}/{run.record.name}",
        condition=run.record.condition.value,
        trials=sum(counts.values()),
        limit=run.spec.spec.max_trial_count,
        running=counts.get(TrialState.RUNNING, 0),
        succeeded=counts.get(TrialState.SUCCEEDED, 0),
        failed=failed,
        metric=run.objective.objective_metric_name or "objective",
        best=None if run.best is None else _row(run.best),
    )
    return summary_text(summary, elapsed)


def trial_table(run: ExperimentRun, limit: int = 12, width: int | None = None) -> Table:
    active = [t for t in run.trials.values() if t.state == TrialState.RUNNING]
    recent = list(reversed(run.recent))[: max(limit - len(active), 3)]
    now = time.time()
    rows = []
    for trial in [*active, *recent]:
        seconds = None
        if trial.state == TrialState.RUNNING and trial.started_at is not None:
            seconds = now - trial.started_at
        accumulator = run.accumulators.get(trial.name)
        value = trial.objective
        if value is None and accumulator is not None:
            value = accumulator.objective(run.objective)
        rows.append(_row(trial, value, seconds))
    params = [p.name or "" for p in run.spec.spec.parameters]
    return progress_table(
        params, run.objective.objective_metric_name or "objective", rows, width
    )


def _row(trial: TrialRecord, value: float | None = None, seconds: float | None = None) -> TrialRow:
    return TrialRow(
        trial.name,
        trial.state,
        trial.assignments,
        trial.objective if value is None else value,
        trial.message,
        trial.duration if seconds is None else seconds,
    )
