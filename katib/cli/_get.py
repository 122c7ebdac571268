"""``katib get``, ``katib describe`` and ``katib best``: reading experiments and trials.

Everything here works from the JSON a :class:`~katib.client.Backend` answers with, so each
command prints the same on the database and through a server. The habits are kubectl's:
``get exp``, ``get experiment NAME``, ``--sort-by``, ``-o wide|json|yaml|csv|name``,
``--watch``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

from katib.cli import HelpGroup, _connect, _err, _fail, _out, _user_errors, cli
from katib.cli._complete import experiment_names, trial_names
from katib.cli._options import (
    GET_FORMATS,
    backend_options,
    namespace_option,
    output_formats,
    watch_option,
)
from katib.errors import NotFoundError

#: Seconds between two looks of ``--watch``.
WATCH_INTERVAL = 1.0
FINISHED = ("Succeeded", "Failed")


class AliasedGroup(HelpGroup):
    """A group whose commands also answer to other names (``get exp``, ``get experiment``)."""

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        by_command: dict[str, list[str]] = {}
        for alias, name in self.aliases.items():
            by_command.setdefault(name, []).append(alias)
        if by_command:
            with formatter.section("Aliases"):
                formatter.write_dl(
                    [(name, ", ".join(names)) for name, names in sorted(by_command.items())]
                )


# Output ---------------------------------------------------------------------------------------


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


def _echo_yaml(value: Any) -> None:
    import yaml

    click.echo(yaml.safe_dump(value, sort_keys=False), nl=False)


def _csv_text(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buffer.getvalue()


class Lines:
    """Plain table rows aligned on the first batch, as ``kubectl get --watch`` prints them."""

    def __init__(self, headers: Sequence[str]) -> None:
        self.headers = list(headers)
        self.widths = [len(h) for h in headers]

    def first(self, rows: Sequence[Sequence[str]]) -> None:
        for row in rows:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, row, strict=False)]
        self.echo(self.headers)
        for row in rows:
            self.echo(row)

    def echo(self, row: Sequence[str]) -> None:
        cells = [c.ljust(w) for c, w in zip(row, self.widths, strict=False)]
        click.echo("  ".join(cells).rstrip())


# get ------------------------------------------------------------------------------------------


@cli.group(
    cls=AliasedGroup,
    aliases={"experiment": "experiments", "exp": "experiments", "exps": "experiments",
             "trial": "trials"},
)
def get() -> None:
    """List experiments or trials (kubectl style: -o, --sort-by, --watch)."""


EXPERIMENT_SORT_KEYS = ("created", "name", "namespace", "condition", "trials", "best")


def _experiment_sort(key: str) -> Callable[[Mapping[str, Any]], Any]:
    from katib.cli._render import metric_value
    from katib.client import objective_of

    def best(e: Mapping[str, Any]) -> Any:
        value = metric_value(
            e["status"]["currentOptimalTrial"]["observation"]["metrics"], objective_of(e)
        )
        return (value is None, value or 0.0)

    keys: dict[str, Callable[[Mapping[str, Any]], Any]] = {
        "created": lambda e: e["metadata"]["creationTimestamp"],
        "name": lambda e: e["metadata"]["name"],
        "namespace": lambda e: (e["metadata"]["namespace"], e["metadata"]["name"]),
        "condition": lambda e: e["status"]["condition"],
        "trials": lambda e: e["status"]["trials"],
        "best": best,
    }
    return keys[key]


def _experiment_row(e: Mapping[str, Any]) -> dict[str, Any]:
    from katib.cli._render import metric_value
    from katib.client import objective_of

    status = e["status"]
    best = status["currentOptimalTrial"]
    return {
        "namespace": e["metadata"]["namespace"],
        "name": e["metadata"]["name"],
        "condition": status["condition"],
        "interrupted": bool(status.get("interrupted")),
        "trials": status["trials"],
        "running": status["trialsRunning"],
        "succeeded": status["trialsSucceeded"],
        "failed": status["trialsFailed"],
        "metricsUnavailable": status["trialMetricsUnavailable"],
        "killed": status["trialsKilled"],
        "earlyStopped": status["trialsEarlyStopped"],
        "best": metric_value(best["observation"]["metrics"], objective_of(e)),
        "bestTrialName": best["bestTrialName"],
        "created": e["metadata"]["creationTimestamp"],
        "started": status["startTime"],
        "completed": status["completionTime"],
        "message": status["message"],
    }


@get.command("experiments")
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=experiment_names)
@backend_options
@click.option(
    "--namespace", "-n", default=None, help="Only this namespace (default: every namespace)."
)
@click.option(
    "--archived", is_flag=True, help="List the archived experiments instead of the others."
)
@output_formats(*GET_FORMATS)
@click.option(
    "--sort-by",
    type=click.Choice(EXPERIMENT_SORT_KEYS),
    default="created",
    show_default=True,
    help="Order of the list (best: the best objective value first).",
)
@watch_option
@_user_errors
def get_experiments(
    names: Sequence[str],
    db: str | None,
    server: str | None,
    token: str | None,
    namespace: str | None,
    archived: bool,
    output_format: str,
    sort_by: str,
    watch: bool,
) -> None:
    """List experiments, or only those called NAME (archived ones are hidden unless
    --archived).

    With one NAME, -o json and -o yaml print the experiment itself rather than a List.
    """
    from katib.cli._render import EXPERIMENT_COLUMNS, EXPERIMENT_WIDE_COLUMNS, experiment_cells

    with _connect(db, server, token) as backend:

        def fetch() -> list[dict[str, Any]]:
            found = backend.list_experiments(namespace, archived=archived)
            if names:
                missing = sorted(set(names) - {e["metadata"]["name"] for e in found})
                if missing:
                    where = f" in namespace {namespace}" if namespace else ""
                    raise NotFoundError(f"experiment {', '.join(missing)} not found{where}")
                found = [e for e in found if e["metadata"]["name"] in names]
            return sorted(found, key=_experiment_sort(sort_by))

        experiments = fetch()
        wide = output_format == "wide"
        if output_format in ("table", "wide") and not watch:
            from katib.cli._render import experiments_table

            if not experiments:
                where = f" in namespace {namespace}" if namespace else ""
                _err.print(f"No experiments{where}.", markup=False)
                return
            _out().print(experiments_table(experiments, wide=wide))
            return
        headers = [*EXPERIMENT_COLUMNS, *(EXPERIMENT_WIDE_COLUMNS if wide else ())]
        printer = _Printer(
            output_format,
            headers=headers,
            cells=lambda e: experiment_cells(e, wide),
            columns=list(_experiment_row(experiments[0])) if experiments else [],
            row=_experiment_row,
            single=len(names) == 1,
        )
        printer.first(experiments)
        if not watch:
            return

        def state(e: Mapping[str, Any]) -> Any:
            status = e["status"]
            return (status["condition"], status.get("interrupted"), status["trials"],
                    status["trialsRunning"], status["currentOptimalTrial"]["bestTrialName"])

        seen = {_key(e): state(e) for e in experiments}
        while not (names and all(e["status"]["condition"] in FINISHED for e in experiments)):
            time.sleep(WATCH_INTERVAL)
            experiments = fetch()
            for e in experiments:
                if seen.get(_key(e)) != state(e):
                    seen[_key(e)] = state(e)
                    printer.more(e)


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return item["metadata"]["namespace"], item["metadata"]["name"]


class _Printer:
    """Prints a list in one output format, then (``--watch``) single objects as they change."""

    def __init__(
        self,
        output_format: str,
        *,
        headers: Sequence[str],
        cells: Callable[[Mapping[str, Any]], list[str]],
        columns: Sequence[str],
        row: Callable[[Mapping[str, Any]], dict[str, Any]],
        single: bool = False,
    ) -> None:
        self.format = output_format
        self.lines = Lines(headers)
        self.cells = cells
        self.columns = list(columns)
        self.row = row
        self.single = single

    def first(self, items: Sequence[Mapping[str, Any]]) -> None:
        from katib.views import list_json

        if self.format in ("table", "wide"):
            self.lines.first([self.cells(i) for i in items])
        elif self.format in ("json", "yaml"):
            value: Any = list_json(map(dict, items))
            if self.single and len(items) == 1:
                value = items[0]
            (_echo_json if self.format == "json" else _echo_yaml)(value)
        elif self.format == "csv":
            rows = [self.row(i) for i in items]
            click.echo(_csv_text(self.columns, rows, header=True), nl=False)
        else:
            for i in items:
                click.echo(i["metadata"]["name"])

    def more(self, item: Mapping[str, Any]) -> None:
        if self.format in ("table", "wide"):
            self.lines.echo(self.cells(item))
        elif self.format == "json":
            click.echo(json.dumps(item))
        elif self.format == "yaml":
            import yaml

            click.echo("---\n" + yaml.safe_dump(dict(item), sort_keys=False), nl=False)
        elif self.format == "csv":
            if not self.columns:
                self.columns = list(self.row(item))
                click.echo(_csv_text(self.columns, [], header=True), nl=False)
            click.echo(_csv_text(self.columns, [self.row(item)], header=False), nl=False)
        else:
            click.echo(item["metadata"]["name"])


def trial_sort_keys(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]
) -> list[str]:
    """What ``get trials --sort-by`` takes: objective, the trials' fields, each parameter and
    metric."""
    from katib.client import metric_names, parameter_types

    keys = ["objective", "created", "name", "state", "duration"]
    for name in [*parameter_types(experiment), *metric_names(experiment, trials)]:
        if name not in keys:
            keys.append(name)
    return keys


def sort_trials(
    experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], key: str
) -> list[Mapping[str, Any]]:
    """Trials ordered by ``key``: ``objective`` puts the best first; anything else ascends
    (numbers as numbers). Trials without a value come last, in creation order.

    Raises:
        click.BadParameter: ``key`` names nothing of these trials.
    """
    from katib.cli._render import duration, trial_objective
    from katib.client import metric_values, objective_of, parameter_types, typed_value

    known = trial_sort_keys(experiment, trials)
    if key not in known:
        raise click.BadParameter(
            f"{key!r}: sort by one of {', '.join(known)}", param_hint="'--sort-by'"
        )
    objective = objective_of(experiment)
    kinds = parameter_types(experiment)

    def value(t: Mapping[str, Any]) -> Any:
        if key == "objective":
            v = trial_objective(t, objective)
            return None if v is None else (-v if objective.type == "maximize" else v)
        if key == "created":
            return t["metadata"]["creationTimestamp"]
        if key == "name":
            return t["metadata"]["name"]
        if key == "state":
            return t["status"]["condition"]
        if key == "duration":
            return duration(t)
        if key in kinds:
            given = {a["name"]: a["value"] for a in t["spec"]["parameterAssignments"]}
            if key not in given:
                return None
            return typed_value(kinds[key], given[key])
        return metric_values(t, objective).get(key)

    def order(t: Mapping[str, Any]) -> Any:
        v = value(t)
        if v is None:
            return (2, 0.0, "")
        if isinstance(v, int | float):
            return (0, float(v), "")
        return (1, 0.0, str(v))

    return sorted(trials, key=order)


@get.command("trials")
@click.argument("experiment", shell_complete=experiment_names)
@backend_options
@namespace_option
@output_formats(*GET_FORMATS)
@click.option(
    "--sort-by",
    default="created",
    show_default=True,
    metavar="KEY",
    help="Order of the trials: objective (the best first), created, name, state, duration, "
    "or any parameter or metric name (ascending).",
)
@watch_option
@_user_errors
def get_trials(
    experiment: str,
    db: str | None,
    server: str | None,
    token: str | None,
    namespace: str,
    output_format: str,
    sort_by: str,
    watch: bool,
) -> None:
    """List the trials of EXPERIMENT: parameters, objective, state, and why one failed."""
    from katib.cli._render import trial_cells, trial_headers, trials_table
    from katib.client import metric_names, trial_columns, trial_rows

    with _connect(db, server, token) as backend:
        exp = backend.get_experiment(namespace, experiment)
        trials = sort_trials(exp, backend.list_trials(namespace, experiment), sort_by)
        wide = output_format == "wide"
        if not trials and output_format in ("table", "wide"):
            condition = exp["status"]["condition"]
            _err.print(
                f"No trials yet in experiment {namespace}/{experiment} ({condition}).",
                markup=False,
            )
            if not watch:
                return
        elif output_format in ("table", "wide") and not watch:
            _out().print(trials_table(exp, trials, wide=wide))
            return
        metrics = metric_names(exp, trials)[1:]
        printer = _Printer(
            output_format,
            headers=trial_headers(exp, trials, wide),
            cells=lambda t: trial_cells(exp, t, wide, metrics),
            columns=trial_columns(exp, trials),
            row=lambda t: trial_rows(exp, [t], typed=False)[0],
        )
        if trials or output_format not in ("table", "wide"):
            printer.first(trials)
        if not watch:
            return

        def state(t: Mapping[str, Any]) -> Any:
            status = t["status"]
            return (status["condition"], status["message"],
                    json.dumps(status["observation"]["metrics"]))

        seen = {t["metadata"]["name"]: state(t) for t in trials}
        started = bool(trials)
        while True:
            finished = exp["status"]["condition"] in FINISHED
            if finished:
                return
            time.sleep(WATCH_INTERVAL)
            exp = backend.get_experiment(namespace, experiment)
            for t in backend.list_trials(namespace, experiment):
                name = t["metadata"]["name"]
                if seen.get(name) == state(t):
                    continue
                seen[name] = state(t)
                if not started and output_format in ("table", "wide"):
                    printer.lines.echo(printer.lines.headers)
                    started = True
                printer.more(t)


# describe -------------------------------------------------------------------------------------


@cli.group(
    cls=AliasedGroup,
    aliases={"exp": "experiment", "experiments": "experiment", "trials": "trial"},
)
def describe() -> None:
    """Show one experiment or trial in detail."""


@describe.command("experiment")
@click.argument("name", shell_complete=experiment_names)
@backend_options
@namespace_option
@_user_errors
def describe_experiment(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str
) -> None:
    """Show experiment NAME: spec summary, status, conditions, best trial, events."""
    from katib.cli._render import print_experiment

    with _connect(db, server, token) as backend:
        exp = backend.get_experiment(namespace, name)
        events = backend.list_events(namespace, name)
    print_experiment(_out(), exp, events)


def find_trial(backend: Any, name: str, namespace: str | None) -> dict[str, Any]:
    """The trial called ``name``: in ``namespace``, or the only one of that name anywhere."""
    if namespace:
        found: dict[str, Any] = backend.get_trial(namespace, name)
        return found
    matches = backend.find_trials(name)
    if not matches:
        raise NotFoundError(f"trial {name} not found")
    if len(matches) > 1:
        spaces = ", ".join(t["metadata"]["namespace"] for t in matches)
        _fail(f"trial {name} exists in several namespaces ({spaces}); use --namespace", 2)
    return dict(matches[0])


def log_place(backend: Any, namespace: str, name: str) -> str | None:
    """Where a trial's output is, when it is on this machine."""
    from katib.client import LocalBackend

    if isinstance(backend, LocalBackend):
        return str(backend.log_path(namespace, name))
    return None


@describe.command("trial")
@click.argument("name", shell_complete=trial_names)
@backend_options
@click.option(
    "--namespace", "-n", default=None, help="Namespace of the trial (default: wherever it is)."
)
@click.option(
    "--tail", type=click.IntRange(min=0), default=10, show_default=True,
    help="Lines of the end of its output to show.",
)
@_user_errors
def describe_trial(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str | None,
    tail: int,
) -> None:
    """Show trial NAME: state and why, parameters, metrics, the end of its output."""
    from katib.cli._render import print_trial

    with _connect(db, server, token) as backend:
        trial = find_trial(backend, name, namespace)
        ns = trial["metadata"]["namespace"]
        experiment = trial["metadata"]["labels"]["katib.kubeflow.org/experiment"]
        exp = backend.get_experiment(ns, experiment)
        lines = backend.log_tail(ns, name, tail) if tail else []
        place = log_place(backend, ns, name)
    print_trial(_out(), exp, trial, lines, place)


# best -----------------------------------------------------------------------------------------


@cli.command()
@click.argument("name", shell_complete=experiment_names)
@backend_options
@namespace_option
@output_formats("table", "json", "yaml", "name")
@_user_errors
def best(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str,
    output_format: str,
) -> None:
    """Show the optimal trial of experiment NAME (-o name: only its name, for scripts)."""
    from katib.cli._render import print_best

    with _connect(db, server, token) as backend:
        trial = backend.best_trial(namespace, name)
        message = ""
        if output_format == "table":
            message = backend.get_experiment(namespace, name)["status"]["message"]
    if output_format == "json":
        _echo_json(trial)
    elif output_format == "yaml":
        _echo_yaml(trial)
    elif output_format == "name":
        if trial["bestTrialName"] is None:
            _fail(f"experiment {namespace}/{name} has no best trial: no trial succeeded", 1)
        click.echo(trial["bestTrialName"])
    else:
        print_best(_out(), trial, message)
