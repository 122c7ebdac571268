"""Progress of ``tune()`` and ``run_experiment()``: a line per finished trial, then the end.

Shown by default where someone is watching, as Optuna shows its trials: when standard error is
a terminal, or in a Jupyter notebook. ``show_progress=False`` silences it; ``True`` shows it
anywhere. Code that configured logging gets the same news as records of the ``katib.sdk``
logger instead (at INFO), so it is never printed twice.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.text import Text

logger = logging.getLogger("katib.sdk")

STATE_STYLES = {
    "Succeeded": "green",
    "Failed": "red",
    "MetricsUnavailable": "red",
    "Killed": "yellow",
    "EarlyStopped": "magenta",
}
FAILED = ("Failed", "MetricsUnavailable")


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    if get_ipython is None:
        return False
    try:
        ip = get_ipython()
    except Exception:  # noqa: BLE001 - no IPython after all
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def wanted(show_progress: bool | None) -> bool:
    """Whether to print progress: as asked, else when someone watches and logging is not set
    up to tell them already."""
    if show_progress is not None:
        return show_progress
    if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
        return False
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return terminal or in_notebook()


@dataclass(frozen=True)
class TrialNews:
    """What progress says of one finished trial."""

    name: str
    condition: str
    message: str
    assignments: Mapping[str, str]
    value: float | None


class Progress:
    """Prints what happens to one experiment's trials."""

    def __init__(
        self, where: str, metric: str, limit: int | None, console: Console | None = None
    ) -> None:
        self.where = where
        self.metric = metric or "objective"
        self.limit = limit
        self.console = console or Console(stderr=True, highlight=False, soft_wrap=True)

    def started(self, resumed: int) -> None:
        extra = f", resuming after {resumed} trial(s)" if resumed else ""
        self.console.print(f"{self.where}: running{extra}", markup=False)

    def trial(self, news: TrialNews, done: int, best: float | None) -> None:
        """One finished trial, with the count so far and the best value."""
        counter = f"[{done}/{self.limit}]" if self.limit else f"[{done}]"
        given = " ".join(f"{k}={v}" for k, v in news.assignments.items())
        line = Text.assemble(
            (f"{counter} ", "dim"),
            f"{news.name} ",
            (f"{news.condition:<10}", STATE_STYLES.get(news.condition, "")),
            f" {self.metric}={news.value:.6g}" if news.value is not None else "",
            f"  {given}",
        )
        if news.condition != "Succeeded" and news.message:
            line.append(f"  ({news.message})", style="dim")
        if best is not None:
            line.append(f"  best {self.metric}={best:.6g}", style="bold")
        self.console.print(line)

    def finished(
        self,
        condition: str,
        message: str,
        best: TrialNews | None,
        failures: Sequence[tuple[TrialNews, Sequence[str]]],
    ) -> None:
        """The end: the condition, the best parameters, and why trials failed."""
        self.console.print(
            Text.assemble(
                (f"{self.where}: ", "bold"),
                (condition, "green" if condition == "Succeeded" else "red"),
                f" ({message})" if message else "",
            )
        )
        if best is not None and best.value is not None:
            given = " ".join(f"{k}={v}" for k, v in best.assignments.items())
            self.console.print(
                f"best trial {best.name}: {self.metric}={best.value:.6g}  {given}", markup=False
            )
        for news, tail in failures:
            self.console.print(
                Text.assemble(("trial ", "red"), (news.name, "red"),
                              f" {news.condition}: {news.message}")
            )
            if tail:
                self.console.print(
                    f"  last lines of its output (get_job_logs({news.name!r})):", markup=False
                )
                for line in tail:
                    self.console.print(f"  | {line}", markup=False)
