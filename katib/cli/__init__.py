"""The ``katib`` command.

Exit statuses: 0 success; 1 the experiment Failed or a file is invalid; 2 usage errors and
refusals (unknown experiment, finished experiment rerun); 130 interrupted. A user's mistake
never shows a traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import yaml
from rich.console import Console
from rich.table import Table

from katib.errors import (
    ConflictError,
    InvalidExperimentError,
    KatibError,
    NotFoundError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _out(quiet: bool = False) -> Console:
    """Standard output; wide when redirected, so that piped tables are not cut."""
    width = None if sys.stdout.isatty() else 240
    return Console(highlight=False, quiet=quiet, width=width)


def _fail(message: str, code: int) -> NoReturn:
    _err.print(f"[bold red]error:[/] {message}", markup=True)
    sys.exit(code)


def _user_errors(func: F) -> F:
    """Turn the project's errors into a message and an exit status."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidExperimentError as e:
            for error in e.errors:
                _err.print(f"{e.source + ': ' if e.source else ''}{error}", markup=False)
            sys.exit(EXIT_FAILED)
        except (NotFoundError, ConflictError) as e:
            _fail(str(e), EXIT_USAGE)
        except KatibError as e:
            from katib.controller import NotRunnableError

            _fail(str(e), EXIT_USAGE if isinstance(e, NotRunnableError) else EXIT_FAILED)
        except KeyboardInterrupt:
            _err.print("interrupted")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def _storage(db: str | None) -> Any:
    from katib.storage import Storage

    return Storage.open(db)


def _logs_root() -> Path:
    from katib.storage import katib_home

    return katib_home() / "logs"


db_option = click.option(
    "--db",
    envvar="KATIB_DB",
    default=None,
    metavar="URL",
    help="Database URL or SQLite path (default: $KATIB_HOME/katib.db; env KATIB_DB).",
)
namespace_option = click.option(
    "--namespace", "-n", default="default", show_default=True, help="Namespace."
)
output_option = click.option(
    "-o",
    "--output",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="katib-local", prog_name="katib")
def cli() -> None:
    """Run Katib v1beta1 hyperparameter tuning experiments locally."""


# validate / render ---------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
def validate(files: Sequence[str]) -> None:
    """Check experiment files; print one line per problem with its field path."""
    from katib.spec import load_experiments

    bad = False
    for path in files:
        try:
            experiments = load_experiments(path)
        except InvalidExperimentError as e:
            bad = True
            for error in e.errors:
                _err.print(f"{path}: {error}", markup=False)
            continue
        names = ", ".join(x.name for x in experiments)
        click.echo(f"{path}: valid ({names})")
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter assignment (repeat for each parameter).",
)
@click.option("--trial-name", default=None, help="Trial name to render (default <exp>-render).")
@namespace_option
@_user_errors
def render(file: str, sets: Sequence[str], trial_name: str | None, namespace: str) -> None:
    """Print the trial workload manifest for the given parameter assignments."""
    from katib.spec import load_experiments, render_trial_spec
    from suggestion import SearchSpace

    exp = load_experiments(file)[0]
    assignments: dict[str, str] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        if not sep:
            _fail(f"--set {item!r}: expected NAME=VALUE", EXIT_USAGE)
        assignments[name] = value
    space = SearchSpace.from_spec(exp.spec.parameters)
    unknown = sorted(set(assignments) - set(space.names))
    if unknown:
        _fail(
            f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(space.names)})",
            EXIT_USAGE,
        )
    missing = [n for n in space.names if n not in assignments]
    if missing:
        _fail(f"missing --set for parameter(s) {', '.join(missing)}", EXIT_USAGE)
    for name, value in assignments.items():
        if not space[name].contains(value):
            _fail(f"--set {name}={value}: outside the parameter's feasible space", EXIT_USAGE)
    manifest = render_trial_spec(
        exp,
        assignments,
        trial_name=trial_name or f"{exp.name}-render",
        namespace=namespace if namespace != "default" else exp.namespace,
        labels={"katib.kubeflow.org/experiment": exp.name},
    )
    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)


# run ------------------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the optimal trial as JSON to this file.",
)
@click.option("--namespace", "-n", default=None, help="Override metadata.namespace.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@_user_errors
def run(file: str, db: str | None, output: str | None, namespace: str | None, quiet: bool) -> None:
    """Run the experiment(s) in FILE to the end on this machine.

    Running a file again resumes an interrupted experiment and refuses a finished one.
    """
    from katib.spec import load_experiments

    experiments = load_experiments(file)
    if namespace:
        for exp in experiments:
            exp.metadata.namespace = namespace
    source_dir = str(Path(file).resolve().parent)
    code = _run_experiments(experiments, db, source_dir, output, quiet)
    sys.exit(code)


def _run_experiments(
    experiments: Sequence[Any],
    db: str | None,
    source_dir: str,
    output: str | None,
    quiet: bool,
    records: Sequence[Any] | None = None,
) -> int:
    from katib.cli._display import LiveProgress
    from katib.controller import Interrupted, Runner, admit, optimal_trial
    from katib.records import ExperimentCondition

    storage = _storage(db)
    if records is None:
        seen = set()
        for exp in experiments:
            key = (exp.namespace, exp.name)
            if key in seen:
                _fail(
                    f"experiment {exp.namespace}/{exp.name} appears twice in the file", EXIT_USAGE
                )
            seen.add(key)
        records = [admit(storage, exp, source_dir=source_dir) for exp in experiments]
    console = _out(quiet)
    progress = LiveProgress(console)
    runner = Runner(storage, logs_root=_logs_root(), observer=progress)
    for record in records:
        progress.runs.append(runner.add(record))
    for record in records:
        done = storage.count_trials(record.id)
        if done:
            console.print(
                f"resuming {record.namespace}/{record.name} ({sum(done.values())} trials so far)"
            )
    try:
        with progress:
            runs = runner.run()
    except Interrupted:
        _err.print("interrupted: trials were stopped; run the same command again to resume")
        return EXIT_INTERRUPTED
    results = []
    for run_ in runs:
        record = storage.get_experiment_by_id(run_.record.id)
        best = (
            optimal_trial(storage.list_trials(record.id), record.spec.spec.objective)
            if run_.best is None
            else run_.best
        )
        results.append((record, best))
        _print_best(console, record, best)
    if output:
        from katib.views import best_trial_json

        payload: Any = [best_trial_json(r, b) for r, b in results]
        if len(payload) == 1:
            payload = payload[0]
        Path(output).write_text(json.dumps(payload, indent=2) + "\n")
    failed = any(r.condition != ExperimentCondition.SUCCEEDED for r, _ in results)
    return EXIT_FAILED if failed else EXIT_OK


def _print_best(console: Console, record: Any, best: Any) -> None:
    message = f" ({record.message})" if record.message else ""
    console.print(f"[bold]{record.namespace}/{record.name}[/]: {record.condition.value}{message}")
    if best is None:
        console.print("no trial succeeded, so there are no best parameters")
        return
    table = Table(title=f"best trial {best.name}", box=None, title_justify="left")
    table.add_column("parameter")
    table.add_column("value")
    for name, value in best.assignments.items():
        table.add_row(name, value)
    for metric in best.metrics.values():
        table.add_row(
            f"[dim]{metric.name}[/]",
            f"[dim]min {metric.min:.6g}  max {metric.max:.6g}  latest {metric.latest:.6g}[/]",
        )
    console.print(table)


# get / describe / best -----------------------------------------------------------------------


@cli.group()
def get() -> None:
    """List experiments or trials."""


@get.command("experiments")
@db_option
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@output_option
@_user_errors
def get_experiments(db: str | None, namespace: str | None, output_format: str) -> None:
    """List experiments."""
    from katib.views import experiment_json, list_json

    storage = _storage(db)
    records = storage.list_experiments(namespace)
    if output_format == "json":
        items = [experiment_json(r, storage.count_trials(r.id), _best(storage, r)) for r in records]
        click.echo(json.dumps(list_json(items), indent=2))
        return
    table = Table(box=None)
    for col in (
        "NAMESPACE",
        "NAME",
        "CONDITION",
        "TRIALS",
        "SUCCEEDED",
        "FAILED",
        "BEST",
        "CREATED",
    ):
        table.add_column(col)
    for r in records:
        from katib.records import TrialState

        counts = storage.count_trials(r.id)
        best = _best(storage, r)
        table.add_row(
            r.namespace,
            r.name,
            r.condition.value,
            str(sum(counts.values())),
            str(counts.get(TrialState.SUCCEEDED, 0)),
            str(counts.get(TrialState.FAILED, 0) + counts.get(TrialState.METRICS_UNAVAILABLE, 0)),
            "" if best is None or best.objective is None else f"{best.objective:.6g}",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
        )
    _out().print(table)


@get.command("trials")
@click.argument("experiment")
@db_option
@namespace_option
@output_option
@_user_errors
def get_trials(experiment: str, db: str | None, namespace: str, output_format: str) -> None:
    """List the trials of EXPERIMENT."""
    from katib.cli._display import STATE_STYLES, fmt_value
    from katib.views import list_json, trial_json

    storage = _storage(db)
    record = storage.get_experiment(namespace, experiment)
    trials = storage.list_trials(record.id)
    if output_format == "json":
        click.echo(json.dumps(list_json(trial_json(t, record.name) for t in trials), indent=2))
        return
    objective = record.spec.spec.objective.objective_metric_name
    params = [p.name for p in record.spec.spec.parameters]
    table = Table(box=None)
    for col in ("NAME", "STATE", *params, objective, "DURATION", "MESSAGE"):
        table.add_column(str(col))
    for t in trials:
        table.add_row(
            t.name,
            f"[{STATE_STYLES.get(t.state, '')}]{t.state.value}[/]",
            *[t.assignments.get(p or "", "") for p in params],
            fmt_value(t.objective),
            "" if t.duration is None else f"{t.duration:.1f}s",
            "" if t.state.value == "Succeeded" else t.message,
        )
    _out().print(table)


@cli.group()
def describe() -> None:
    """Show one object in detail."""


@describe.command("experiment")
@click.argument("name")
@db_option
@namespace_option
@_user_errors
def describe_experiment(name: str, db: str | None, namespace: str) -> None:
    """Show an experiment's spec summary, status, conditions and best trial."""
    from katib._time import rfc3339
    from katib.views import trial_counts_json

    storage = _storage(db)
    r = storage.get_experiment(namespace, name)
    spec = r.spec.spec
    best = _best(storage, r)
    out = _out()
    objective = spec.objective
    algorithm = spec.algorithm
    out.print(f"[bold]Name:[/]        {r.name}\n[bold]Namespace:[/]   {r.namespace}")
    out.print(f"[bold]Condition:[/]   {r.condition.value}  {r.message}")
    out.print(
        f"[bold]Objective:[/]   {objective.type} {objective.objective_metric_name}"
        + (f" (goal {objective.goal:g})" if objective.goal is not None else "")
    )
    out.print(
        f"[bold]Algorithm:[/]   {algorithm.algorithm_name} "
        + " ".join(f"{s.name}={s.value}" for s in algorithm.algorithm_settings)
    )
    out.print(
        f"[bold]Budget:[/]      maxTrialCount={spec.max_trial_count} "
        f"parallelTrialCount={spec.parallel_trial_count} "
        f"maxFailedTrialCount={spec.max_failed_trial_count}"
    )
    out.print(
        f"[bold]Created:[/]     {rfc3339(r.created_at)}   [bold]Started:[/] "
        f"{rfc3339(r.started_at)}   [bold]Completed:[/] {rfc3339(r.completed_at)}"
    )
    counts = trial_counts_json(storage.count_trials(r.id))
    out.print("[bold]Trials:[/]      " + "  ".join(f"{k}={v}" for k, v in counts.items()))
    out.print("[bold]Conditions:[/]")
    for c in r.conditions:
        out.print(f"  {c.type:<11} {c.status:<6} {c.reason:<34} {c.message}")
    if best is not None:
        out.print(f"[bold]Best trial:[/]  {best.name}")
        for k, v in best.assignments.items():
            out.print(f"  {k} = {v}")
        for m in best.metrics.values():
            out.print(f"  {m.name}: min {m.min:.6g}  max {m.max:.6g}  latest {m.latest:.6g}")
    events = storage.list_events(r.id)
    if events:
        out.print("[bold]Events:[/]")
        for ev in events[-20:]:
            out.print(f"  {rfc3339(ev.created_at)} {ev.type} {ev.reason} {ev.message}")


def _best(storage: Any, record: Any) -> Any:
    from katib.service import best_trial

    return best_trial(storage, record)


@cli.command()
@click.argument("name")
@db_option
@namespace_option
@output_option
@_user_errors
def best(name: str, db: str | None, namespace: str, output_format: str) -> None:
    """Show the optimal trial of experiment NAME."""
    from katib.views import best_trial_json

    storage = _storage(db)
    record = storage.get_experiment(namespace, name)
    trial = _best(storage, record)
    if output_format == "json":
        click.echo(json.dumps(best_trial_json(record, trial), indent=2))
        return
    _print_best(_out(), record, trial)


# logs / delete / stop / edit / restart ---------------------------------------------------------


@cli.command()
@click.argument("trial")
@db_option
@click.option("--namespace", "-n", default=None, help="Namespace of the trial.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output while the trial runs.")
@_user_errors
def logs(trial: str, db: str | None, namespace: str | None, follow: bool) -> None:
    """Print a trial's output."""
    storage = _storage(db)
    if namespace:
        record = storage.get_trial(namespace, trial)
    else:
        found = storage.find_trials(trial)
        if not found:
            raise NotFoundError(f"trial {trial} not found")
        if len(found) > 1:
            spaces = ", ".join(t.namespace for t in found)
            _fail(
                f"trial {trial} exists in several namespaces ({spaces}); use --namespace",
                EXIT_USAGE,
            )
        record = found[0]
    exp = storage.get_experiment_by_id(record.experiment_id)
    path = _logs_root() / exp.namespace / exp.name / f"{trial}.log"
    if not path.exists():
        if record.state.is_active and follow:
            while not path.exists() and storage.get_trial(record.namespace, trial).state.is_active:
                time.sleep(0.2)
        if not path.exists():
            _fail(f"no log for trial {trial} (looked in {path})", EXIT_USAGE)
    out = sys.stdout.buffer
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                continue
            out.flush()
            if not follow or not storage.get_trial(record.namespace, trial).state.is_active:
                rest = f.read()
                out.write(rest)
                out.flush()
                return
            time.sleep(0.2)


@cli.group()
def delete() -> None:
    """Delete an object."""


@delete.command("experiment")
@click.argument("name")
@db_option
@namespace_option
@_user_errors
def delete_experiment(name: str, db: str | None, namespace: str) -> None:
    """Delete experiment NAME with its trials, observations, logs and checkpoints."""
    from katib.controller import owner_alive
    from katib.service import delete_experiment as delete

    storage = _storage(db)
    record = storage.get_experiment(namespace, name)
    if owner_alive(record.owner, record.owner_heartbeat):
        raise ConflictError(
            f"experiment {namespace}/{name} is running ({record.owner}); "
            f"stop it first with `katib stop {name}`"
        )
    delete(storage, record)
    click.echo(f"experiment {namespace}/{name} deleted")


@cli.command()
@click.argument("name")
@db_option
@namespace_option
@_user_errors
def stop(name: str, db: str | None, namespace: str) -> None:
    """Stop a running experiment: its trials are killed and it ends as Succeeded."""
    from katib.controller import owner_alive
    from katib.service import stop_experiment

    storage = _storage(db)
    record = storage.get_experiment(namespace, name)
    running = owner_alive(record.owner, record.owner_heartbeat)
    if stop_experiment(storage, record, running=running):
        click.echo(f"experiment {namespace}/{name} stopped")
    else:
        click.echo(f"stop requested for {namespace}/{name}; its controller stops it shortly")


def _budget_options(func: F) -> F:
    func = click.option("--max-failed-trial-count", type=click.IntRange(min=0), default=None)(func)
    func = click.option("--parallel-trial-count", type=click.IntRange(min=1), default=None)(func)
    func = click.option("--max-trial-count", type=click.IntRange(min=1), default=None)(func)
    return func


@cli.command()
@click.argument("name")
@db_option
@namespace_option
@_budget_options
@_user_errors
def edit(
    name: str,
    db: str | None,
    namespace: str,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
) -> None:
    """Change the trial budget of an experiment (a running one picks it up within seconds)."""
    if max_trial_count is None and parallel_trial_count is None and max_failed_trial_count is None:
        _fail(
            "nothing to change: give --max-trial-count, --parallel-trial-count or "
            "--max-failed-trial-count",
            EXIT_USAGE,
        )
    from katib.service import apply_budget

    storage = _storage(db)
    record = storage.get_experiment(namespace, name)
    apply_budget(storage, record, max_trial_count=max_trial_count,
                 parallel_trial_count=parallel_trial_count,
                 max_failed_trial_count=max_failed_trial_count)
    spec = record.spec.spec
    click.echo(
        f"experiment {namespace}/{name}: maxTrialCount={spec.max_trial_count} "
        f"parallelTrialCount={spec.parallel_trial_count} "
        f"maxFailedTrialCount={spec.max_failed_trial_count}"
    )


@cli.command()
@click.argument("name")
@db_option
@namespace_option
@_budget_options
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the optimal trial as JSON to this file.",
)
@click.option("--quiet", "-q", is_flag=True)
@_user_errors
def restart(
    name: str,
    db: str | None,
    namespace: str,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
    output: str | None,
    quiet: bool,
) -> None:
    """Restart a finished experiment with a larger budget and run it here to its end."""
    from katib.service import restart_experiment

    storage = _storage(db)
    record = storage.get_experiment(namespace, name)
    trials_run = sum(storage.count_trials(record.id).values())
    new_max = max_trial_count if max_trial_count is not None else record.spec.spec.max_trial_count
    if record.condition.is_finished and new_max is not None and new_max <= trials_run:
        _fail(f"--max-trial-count must exceed the {trials_run} trials already run", EXIT_USAGE)
    record = restart_experiment(
        storage, record, max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count, max_failed_trial_count=max_failed_trial_count,
    )
    sys.exit(_run_experiments([], db, record.source_dir, output, quiet, records=[record]))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="katib")
    except KeyboardInterrupt:
        _err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # `katib get ... | head`: quietly stop writing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)


# `katib server` and `katib token ...` live in their own module.
from katib.cli._server import server, token  # noqa: E402

cli.add_command(server)
cli.add_command(token)
