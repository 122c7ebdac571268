"""The pieces every progress display and table is made of (rich), from plain values.

Local runs (``_live``, from the controller's records) and runs on a server (``_watch``, from
the API's JSON) turn what they know into :class:`TrialRow` and :class:`Summary` and render
them here, so both look the same. Importing this module loads neither the controller nor
storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from katib.records import TrialState

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


def fmt_assignments(assignments: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in assignments.items())


@dataclass(frozen=True)
class TrialRow:
    """What progress shows of one trial, whether it comes from records or from the API."""

    name: str
    state: TrialState
    assignments: Mapping[str, str]
    value: float | None
    message: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class Summary:
    """The head line of an experiment's live progress."""

    where: str
    condition: str
    trials: int
    limit: int | None
    running: int
    succeeded: int
    failed: int
    metric: str
    best: TrialRow | None


def finished_line(row: TrialRow, metric: str) -> Text:
    """One finished trial, as ``katib run`` prints it when not on a terminal."""
    return Text.assemble(
        (f"{row.name} ", "bold"),
        (f"{row.state.value:<18}", STATE_STYLES.get(row.state, "")),
        f"{metric}={fmt_value(row.value)}  " if row.value is not None else "",
        fmt_assignments(row.assignments),
        f"  ({row.message})" if row.state != TrialState.SUCCEEDED else "",
    )


def summary_text(summary: Summary, elapsed: float) -> Text:
    limit = f"/{summary.limit}" if summary.limit else ""
    text = Text.assemble(
        (summary.where, "bold"),
        f"  {summary.condition}  ",
        f"trials {summary.trials}{limit}  ",
        (f"running {summary.running}  ", "cyan"),
        (f"succeeded {summary.succeeded}  ", "green"),
        (f"failed {summary.failed}  ", "red"),
        f"elapsed {elapsed:.0f}s",
    )
    best = summary.best
    if best is not None:
        text.append(
            f"\nbest {summary.metric}={fmt_value(best.value)}  "
            f"{fmt_assignments(best.assignments)}  ({best.name})",
            style="bold green",
        )
    return text


#: Columns the message of a failed trial keeps in a live table, whatever the terminal's width.
MESSAGE_MIN = 20


def short_value(text: str) -> str:
    """A parameter value as a live table shows it: long numbers to 6 significant digits, so
    that the message column keeps its room on a terminal (``get trials`` shows them whole)."""
    if len(text) <= 10:
        return text
    try:
        return f"{float(text):.6g}"
    except ValueError:
        return text


def progress_table(
    params: Sequence[str], metric: str, rows: Iterable[TrialRow], width: int | None = None
) -> Table:
    """The running and latest finished trials, under the summary of a live display.

    The message column says why a trial failed. On a terminal of ``width`` columns it keeps
    at least :data:`MESSAGE_MIN` of them: long parameter values are cut first.
    """
    rows = list(rows)
    shown = [
        [
            row.name,
            row.state.value,
            *[short_value(row.assignments.get(p, "")) for p in params],
            fmt_value(row.value),
            "" if row.seconds is None else f"{row.seconds:.1f}s",
        ]
        for row in rows
    ]
    heads = ["trial", "state", *params, metric, "time"]
    widths = [max([len(h), *(len(r[i]) for r in shown)]) for i, h in enumerate(heads)]
    param_cap = max([0, *widths[2 : 2 + len(params)]])
    message_width: int | None = None
    if width is not None:
        # Columns are two spaces apart; cut parameter columns until the message fits.
        def room() -> int:
            used = sum(widths[:2]) + sum(min(w, param_cap) for w in widths[2 : 2 + len(params)])
            return width - used - sum(widths[2 + len(params) :]) - 2 * len(heads)

        while room() < MESSAGE_MIN and param_cap > 3:
            param_cap -= 1
        message_width = max(room(), MESSAGE_MIN)
    table = Table(box=None, pad_edge=False, show_edge=False)
    table.add_column("trial", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for p in params:
        table.add_column(p, overflow="ellipsis", no_wrap=True, max_width=param_cap or None)
    table.add_column(metric, justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("message", overflow="ellipsis", no_wrap=True, max_width=message_width)
    for row, cells in zip(rows, shown, strict=True):
        table.add_row(
            cells[0],
            Text(cells[1], style=STATE_STYLES.get(row.state, "")),
            *cells[2:],
            "" if row.state in (TrialState.SUCCEEDED, TrialState.RUNNING) else row.message,
        )
    return table
