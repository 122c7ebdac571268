"""Following experiments that a server runs (``katib run`` and ``restart`` with ``--server``).

The server's controller runs the trials; this side only polls the API and shows progress the
way ``katib run`` does locally: a live table on a terminal, else one line per finished trial,
and at the end the best trial of each experiment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from katib.cli._display import Summary, TrialRow, progress_table, summary_text
from katib.cli._render import (
    COUNTERS,
    assignments,
    is_finished,
    metric_value,
    print_best,
    print_failures,
    trial_line,
    trial_row,
)
from katib.client import Backend, objective_of
from katib.records import TrialState
from katib.spec import Objective

#: Seconds between two looks at the server.
POLL_INTERVAL = 0.5
ACTIVE = ("Created", "Running")


@dataclass
class Watched:
    """What is known of one experiment on the server."""

    namespace: str
    name: str
    experiment: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    counters: tuple[int, ...] = ()
    reported: bool = False
    #: It existed before this command (attached to, or restarted), rather than created by it.
    attached: bool = False

    @property
    def objective(self) -> Objective:
        return objective_of(self.experiment)

    @property
    def finished(self) -> bool:
        return is_finished(self.experiment)


class ServerProgress:
    """Polls the server until every watched experiment has finished."""

    def __init__(self, backend: Backend, watched: Sequence[Watched], console: Console) -> None:
        self.backend = backend
        self.watched = list(watched)
        self.console = console
        self.live: Live | None = None
        self.started = time.monotonic()

    def run(self) -> None:
        if self.console.is_terminal and not self.console.quiet:
            self.live = Live(
                get_renderable=self.render, console=self.console, refresh_per_second=4
            )
        try:
            if self.live is not None:
                self.live.__enter__()
            while True:
                for w in self.watched:
                    if not w.reported:
                        self.poll(w)
                if all(w.reported for w in self.watched):
                    return
                time.sleep(POLL_INTERVAL)
        finally:
            if self.live is not None:
                self.live.__exit__(None, None, None)
                self.live = None

    def poll(self, w: Watched) -> None:
        w.experiment = self.backend.get_experiment(w.namespace, w.name)
        counters = tuple(int(w.experiment["status"].get(k, 0)) for k in COUNTERS)
        if counters != w.counters or w.finished:
            # Trials are fetched only when the counters moved: a long experiment with
            # thousands of trials is not listed twice a second.
            w.counters = counters
            w.trials = self.backend.list_trials(w.namespace, w.name)
            objective = w.objective
            for trial in w.trials:
                name = trial["metadata"]["name"]
                if trial["status"]["condition"] in ACTIVE or name in w.seen:
                    continue
                w.seen.add(name)
                if self.live is None:
                    self.console.print(trial_line(trial, objective), soft_wrap=True,
                                       highlight=False)
        if w.finished:
            w.reported = True
            if self.live is None:
                status = w.experiment["status"]
                self.console.print(
                    f"experiment {w.name}: {status['condition']}: {status['message']}"
                )

    def render(self) -> Group:
        parts: list[Any] = []
        elapsed = time.monotonic() - self.started
        for w in self.watched:
            parts.append(_summary(w, elapsed))
            parts.append(_trial_table(w, width=self.console.width))
        return Group(*parts)


def _summary(w: Watched, elapsed: float) -> Text:
    status = w.experiment["status"]
    objective = w.objective
    best = status["currentOptimalTrial"]
    best_row = None
    if best["bestTrialName"] is not None:
        best_row = TrialRow(
            best["bestTrialName"],
            TrialState.SUCCEEDED,
            assignments(best),
            metric_value(best["observation"]["metrics"], objective),
        )
    summary = Summary(
        where=f"{w.namespace}/{w.name}",
        condition=status["condition"],
        trials=status["trials"],
        limit=w.experiment["spec"].get("maxTrialCount"),
        running=status["trialsRunning"],
        succeeded=status["trialsSucceeded"],
        failed=status["trialsFailed"] + status["trialMetricsUnavailable"],
        metric=objective.objective_metric_name or "objective",
        best=best_row,
    )
    return summary_text(summary, elapsed)


def _trial_table(w: Watched, limit: int = 12, width: int | None = None) -> Table:
    objective = w.objective
    active = [t for t in w.trials if t["status"]["condition"] == "Running"]
    done = [t for t in w.trials if t["status"]["condition"] not in ACTIVE]
    recent = list(reversed(done))[: max(limit - len(active), 3)]
    now = time.time()
    params = [p["name"] for p in w.experiment["spec"]["parameters"]]
    rows = [trial_row(t, objective, now) for t in [*active, *recent]]
    return progress_table(params, objective.objective_metric_name or "objective", rows, width)


def follow(
    backend: Backend,
    watched: Sequence[Watched],
    console: Console,
    err: Console,
    output: str | None,
    server: str,
) -> int:
    """Watch the experiments to their end, print their best trials, write ``output``.

    Returns the exit status: 0 when all Succeeded, 1 when one Failed, 130 on Ctrl-C (the
    experiments keep running on the server).
    """
    from katib.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

    try:
        for w in watched:
            if w.attached:
                console.print(
                    f"watching {w.namespace}/{w.name} on {backend.location} "
                    f"({len(w.seen)} trials so far)"
                )
        ServerProgress(backend, watched, console).run()
    except KeyboardInterrupt:
        say_interrupted(err, [(w.namespace, w.name) for w in watched if not w.reported], server)
        return EXIT_INTERRUPTED
    results: list[dict[str, Any]] = []
    for w in watched:
        best = backend.best_trial(w.namespace, w.name)
        results.append(best)
        print_best(console, best, w.experiment["status"]["message"])
        explain_failures(backend, w.namespace, w.name)
    if output:
        write_best(output, results, console)
    failed = any(b["condition"] != "Succeeded" for b in results)
    return EXIT_FAILED if failed else EXIT_OK


def say_interrupted(err: Console, experiments: Sequence[tuple[str, str]], server: str) -> None:
    """Ctrl-C stopped the watching, not the experiments: say so, and how to stop them."""
    for namespace, name in experiments:
        err.print(
            f"interrupted: experiment {namespace}/{name} keeps running on the server; stop it "
            f"with `katib stop {name} --namespace {namespace} --server {server}`",
            markup=False,
        )


def write_best(output: str, results: Sequence[Mapping[str, Any]], console: Console) -> None:
    """The ``--output`` file: one best trial, or a list of them for a file of several."""
    payload: Any = list(results)
    if len(payload) == 1:
        payload = payload[0]
    path = Path(output)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    what = "the optimal trial" if len(results) == 1 else "the optimal trials"
    console.print(f"wrote {what} to {path.resolve()}", markup=False, highlight=False)


def explain_failures(backend: Backend, namespace: str, name: str) -> None:
    """After a run, on stderr: why trials failed, with the last lines of their output."""
    from katib.client import LocalBackend

    experiment = backend.get_experiment(namespace, name)
    if not experiment["status"]["trialsFailed"] + experiment["status"]["trialMetricsUnavailable"]:
        return
    trials = backend.list_trials(namespace, name)
    folder = None
    if isinstance(backend, LocalBackend):
        from katib.storage import katib_home

        folder = str(katib_home() / "logs" / namespace / name) + "/"
    print_failures(
        Console(stderr=True, highlight=False, soft_wrap=True),
        experiment,
        trials,
        lambda trial: backend.log_tail(namespace, trial, 8),
        folder,
    )


def attach(backend: Backend, experiment: dict[str, Any]) -> Watched:
    """An experiment that existed already; its finished trials are not printed again."""
    namespace = experiment["metadata"]["namespace"]
    name = experiment["metadata"]["name"]
    seen = {
        t["metadata"]["name"]
        for t in backend.list_trials(namespace, name)
        if t["status"]["condition"] not in ACTIVE
    }
    return Watched(namespace, name, experiment, seen=seen, attached=True)
