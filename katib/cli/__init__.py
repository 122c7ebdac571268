"""The ``katib`` command.

Exit statuses: 0 success; 1 the experiment Failed or a file is invalid; 2 usage errors and
refusals (unknown experiment, finished experiment rerun); 130 interrupted. A user's mistake
never shows a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import yaml
from rich.console import Console

from katib.cli._options import (
    backend_options,
    namespace_option,
    output_option,
)
from katib.errors import (
    ConflictError,
    ForbiddenError,
    InvalidExperimentError,
    KatibError,
    NotFoundError,
    UnauthorizedError,
)

if TYPE_CHECKING:
    from katib.client import Backend, BudgetCounts

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
        except (NotFoundError, ConflictError, UnauthorizedError, ForbiddenError) as e:
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


def _pick(db: str | None, server: str | None) -> tuple[str | None, str | None]:
    """The one of ``--db`` and ``--server`` the command works on (the other one None).

    They exclude each other; when one comes from the command line and the other from the
    environment (KATIB_DB, KATIB_SERVER), the command line wins.
    """
    if server and db:
        ctx = click.get_current_context()
        server_source = ctx.get_parameter_source("server")
        db_source = ctx.get_parameter_source("db")
        if server_source == db_source:
            raise click.UsageError("give either --server or --db, not both")
        if db_source == click.core.ParameterSource.COMMANDLINE:
            return db, None
        return None, server
    return db, server


def _connect(db: str | None, server: str | None, token: str | None) -> Backend:
    """The database or the server the command works on (see :func:`_pick`)."""
    from katib.client import connect

    db, server = _pick(db, server)
    return connect(server=server, token=token, db=db)


def _is_remote(backend: Backend) -> bool:
    from katib.client import RemoteBackend

    return isinstance(backend, RemoteBackend)


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
@backend_options
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
def run(
    file: str,
    db: str | None,
    server: str | None,
    token: str | None,
    output: str | None,
    namespace: str | None,
    quiet: bool,
) -> None:
    """Run the experiment(s) in FILE to the end on this machine (or on a --server).

    Running a file again resumes an interrupted experiment and refuses a finished one. With
    --server the server runs the trials and this command watches them; Ctrl-C leaves the
    experiments running there.
    """
    from katib.spec import load_experiments

    experiments = load_experiments(file)
    if namespace:
        for exp in experiments:
            exp.metadata.namespace = namespace
    seen = set()
    for exp in experiments:
        key = (exp.namespace, exp.name)
        if key in seen:
            _fail(f"experiment {exp.namespace}/{exp.name} appears twice in the file", EXIT_USAGE)
        seen.add(key)
    source_dir = str(Path(file).resolve().parent)
    db, server = _pick(db, server)
    if server:
        with _connect(None, server, token) as backend:
            code = _run_on_server(backend, experiments, source_dir, output, quiet, server)
    else:
        code = _run_experiments(experiments, _storage(db), source_dir, output, quiet)
    sys.exit(code)


def _run_on_server(
    backend: Backend,
    experiments: Sequence[Any],
    source_dir: str,
    output: str | None,
    quiet: bool,
    server: str,
) -> int:
    """Create the experiments on the server (or attach to unfinished ones), then watch."""
    from katib.cli._watch import Watched, follow, say_interrupted

    watched: list[Watched] = []
    try:
        for exp in experiments:
            watched.append(_create_or_attach(backend, exp, source_dir))
    except KeyboardInterrupt:
        # The experiment being created when Ctrl-C came may exist on the server too.
        known = [(w.namespace, w.name) for w in watched]
        pending = [(e.namespace, e.name) for e in experiments[len(watched) : len(watched) + 1]]
        say_interrupted(_err, known + pending, server)
        return EXIT_INTERRUPTED
    return follow(backend, watched, _out(quiet), _err, output, server)


def _create_or_attach(backend: Backend, exp: Any, source_dir: str) -> Any:
    """Create the experiment on the server, or attach to an unfinished one of that name."""
    from katib.cli._watch import Watched, attach

    try:
        current = backend.get_experiment(exp.namespace, exp.name)
    except NotFoundError:
        try:
            created = backend.create_experiment(exp.to_wire(), source_dir=source_dir)
            return Watched(exp.namespace, exp.name, created)
        except ConflictError:
            # Created by someone else since we looked: attach to it as below.
            current = backend.get_experiment(exp.namespace, exp.name)
    # The resume rule of a local run: the file may change the three counts, and nothing else.
    from katib.controller import resume_counts
    from katib.spec import parse_experiment

    condition = current["status"]["condition"]
    stored = parse_experiment({k: current[k] for k in ("apiVersion", "kind", "metadata", "spec")})
    new = resume_counts(
        stored,
        condition in ("Succeeded", "Failed"),
        condition,
        exp,
        int(current["status"]["trials"]),
    )
    if new is not None:
        counts: BudgetCounts = {
            "max_trial_count": new.max_trial_count,
            "parallel_trial_count": new.parallel_trial_count,
            "max_failed_trial_count": new.max_failed_trial_count,
        }
        current = backend.edit_budget(exp.namespace, exp.name, counts)
    return attach(backend, current)


def _run_experiments(
    experiments: Sequence[Any],
    storage: Any,
    source_dir: str,
    output: str | None,
    quiet: bool,
    records: Sequence[Any] | None = None,
) -> int:
    from katib.cli._live import LiveProgress
    from katib.cli._render import print_best
    from katib.cli._watch import write_best
    from katib.controller import (
        ControllerLoop,
        FixedExperiments,
        Interrupted,
        LoopbackPush,
        admit,
        best_trial,
    )
    from katib.records import ExperimentCondition
    from katib.storage import katib_home
    from katib.views import best_trial_json
    from trial_runner.local import LocalProcessLauncher

    if records is None:
        records = [admit(storage, exp, source_dir=source_dir) for exp in experiments]
    console = _out(quiet)
    progress = LiveProgress(console)
    loop = ControllerLoop(
        storage,
        LocalProcessLauncher(katib_home()),
        logs_root=_logs_root(),
        source=FixedExperiments(records),
        push=LoopbackPush(),
        observer=progress,
    )
    for record in records:
        done = storage.count_trials(record.id)
        if done:
            console.print(
                f"resuming {record.namespace}/{record.name} ({sum(done.values())} trials so far)"
            )
    try:
        with progress:
            loop.run()
    except Interrupted:
        _err.print("interrupted: trials were stopped; run the same command again to resume")
        return EXIT_INTERRUPTED
    results = []
    for record in records:
        record = storage.get_experiment_by_id(record.id)
        results.append(best_trial_json(record, best_trial(storage, record)))
        print_best(console, results[-1], record.message)
    if output:
        write_best(output, results)
    failed = any(r["condition"] != ExperimentCondition.SUCCEEDED for r in results)
    return EXIT_FAILED if failed else EXIT_OK


# get / describe / best -----------------------------------------------------------------------


@cli.group()
def get() -> None:
    """List experiments or trials."""


@get.command("experiments")
@backend_options
@click.option("--namespace", "-n", default=None, help="Only this namespace (default: all).")
@click.option(
    "--archived", is_flag=True, help="List the archived experiments instead of the others."
)
@output_option
@_user_errors
def get_experiments(
    db: str | None, server: str | None, token: str | None, namespace: str | None,
    archived: bool, output_format: str,
) -> None:
    """List experiments (archived ones are hidden unless --archived)."""
    from katib.cli._render import experiments_table

    with _connect(db, server, token) as backend:
        experiments = backend.list_experiments(namespace, archived=archived)
    if output_format == "json":
        click.echo(json.dumps(_list_json(experiments), indent=2))
        return
    _out().print(experiments_table(experiments))


def _list_json(items: Sequence[Any]) -> dict[str, Any]:
    from katib.views import list_json

    return list_json(items)


@get.command("trials")
@click.argument("experiment")
@backend_options
@namespace_option
@output_option
@_user_errors
def get_trials(
    experiment: str, db: str | None, server: str | None, token: str | None, namespace: str,
    output_format: str,
) -> None:
    """List the trials of EXPERIMENT."""
    from katib.cli._render import trials_table

    with _connect(db, server, token) as backend:
        exp = backend.get_experiment(namespace, experiment)
        trials = backend.list_trials(namespace, experiment)
    if output_format == "json":
        click.echo(json.dumps(_list_json(trials), indent=2))
        return
    _out().print(trials_table(exp, trials))


@cli.group()
def describe() -> None:
    """Show one object in detail."""


@describe.command("experiment")
@click.argument("name")
@backend_options
@namespace_option
@_user_errors
def describe_experiment(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str
) -> None:
    """Show an experiment's spec summary, status, conditions and best trial."""
    from katib.cli._render import print_experiment

    with _connect(db, server, token) as backend:
        exp = backend.get_experiment(namespace, name)
        events = backend.list_events(namespace, name)
    print_experiment(_out(), exp, events)


@cli.command()
@click.argument("name")
@backend_options
@namespace_option
@output_option
@_user_errors
def best(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str,
    output_format: str,
) -> None:
    """Show the optimal trial of experiment NAME."""
    from katib.cli._render import print_best

    with _connect(db, server, token) as backend:
        trial = backend.best_trial(namespace, name)
        message = "" if output_format == "json" else _message(backend, namespace, name)
    if output_format == "json":
        click.echo(json.dumps(trial, indent=2))
        return
    print_best(_out(), trial, message)


def _message(backend: Backend, namespace: str, name: str) -> str:
    message: str = backend.get_experiment(namespace, name)["status"]["message"]
    return message


# logs / delete / stop / edit / restart ---------------------------------------------------------


@cli.command()
@click.argument("trial")
@backend_options
@click.option("--namespace", "-n", default=None, help="Namespace of the trial.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing output while the trial runs.")
@_user_errors
def logs(
    trial: str, db: str | None, server: str | None, token: str | None, namespace: str | None,
    follow: bool,
) -> None:
    """Print a trial's output."""
    with _connect(db, server, token) as backend:
        if namespace:
            found = backend.get_trial(namespace, trial)
        else:
            matches = backend.find_trials(trial)
            if not matches:
                raise NotFoundError(f"trial {trial} not found")
            if len(matches) > 1:
                spaces = ", ".join(t["metadata"]["namespace"] for t in matches)
                _fail(
                    f"trial {trial} exists in several namespaces ({spaces}); use --namespace",
                    EXIT_USAGE,
                )
            found = matches[0]
        _print_log(backend, found, follow)


def _print_log(backend: Backend, trial: dict[str, Any], follow: bool) -> None:
    """Copy the trial's log to stdout; with ``follow``, until the trial has ended."""
    namespace, name = trial["metadata"]["namespace"], trial["metadata"]["name"]
    out = sys.stdout.buffer
    pause = 0.5 if _is_remote(backend) else 0.2
    for chunk in backend.log_chunks(namespace, name, follow=follow, poll=pause):
        out.write(chunk)
        out.flush()


@cli.group()
def delete() -> None:
    """Delete an object."""


@delete.command("experiment")
@click.argument("name")
@backend_options
@namespace_option
@_user_errors
def delete_experiment(
    name: str, db: str | None, server: str | None, token: str | None, namespace: str
) -> None:
    """Delete experiment NAME with its trials, observations, logs and checkpoints."""
    with _connect(db, server, token) as backend:
        backend.delete_experiment(namespace, name)
    click.echo(f"experiment {namespace}/{name} deleted")


@cli.command()
@click.argument("name")
@backend_options
@namespace_option
@_user_errors
def stop(name: str, db: str | None, server: str | None, token: str | None, namespace: str) -> None:
    """Stop a running experiment: its trials are killed and it ends as Succeeded."""
    with _connect(db, server, token) as backend:
        ended = backend.stop_experiment(namespace, name)
    if ended:
        click.echo(f"experiment {namespace}/{name} stopped")
    else:
        click.echo(f"stop requested for {namespace}/{name}; its controller stops it shortly")


def _budget_options(func: F) -> F:
    func = click.option("--max-failed-trial-count", type=click.IntRange(min=0), default=None)(func)
    func = click.option("--parallel-trial-count", type=click.IntRange(min=1), default=None)(func)
    func = click.option("--max-trial-count", type=click.IntRange(min=1), default=None)(func)
    return func


def _counts(
    max_trial_count: int | None, parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
) -> BudgetCounts:
    from katib.client import BudgetCounts

    return BudgetCounts(
        max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count,
        max_failed_trial_count=max_failed_trial_count,
    )


@cli.command()
@click.argument("name")
@backend_options
@namespace_option
@_budget_options
@_user_errors
def edit(
    name: str,
    db: str | None,
    server: str | None,
    token: str | None,
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
    counts = _counts(max_trial_count, parallel_trial_count, max_failed_trial_count)
    with _connect(db, server, token) as backend:
        spec = backend.edit_budget(namespace, name, counts)["spec"]
    click.echo(
        f"experiment {namespace}/{name}: maxTrialCount={spec.get('maxTrialCount')} "
        f"parallelTrialCount={spec.get('parallelTrialCount')} "
        f"maxFailedTrialCount={spec.get('maxFailedTrialCount')}"
    )


@cli.command()
@click.argument("name")
@backend_options
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
    server: str | None,
    token: str | None,
    namespace: str,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
    output: str | None,
    quiet: bool,
) -> None:
    """Restart a finished experiment with a larger budget and run it here to its end.

    With --server the server runs it and this command watches it to its end.
    """
    counts = _counts(max_trial_count, parallel_trial_count, max_failed_trial_count)
    with _connect(db, server, token) as backend:
        exp = backend.get_experiment(namespace, name)
        trials_run = exp["status"]["trials"]
        new_max = max_trial_count if max_trial_count is not None else exp["spec"].get(
            "maxTrialCount"
        )
        finished = exp["status"]["condition"] in ("Succeeded", "Failed")
        if finished and new_max is not None and new_max <= trials_run:
            _fail(f"--max-trial-count must exceed the {trials_run} trials already run", EXIT_USAGE)
        exp = backend.restart_experiment(namespace, name, counts)
        if _is_remote(backend):
            from katib.cli._watch import attach, follow

            watched = [attach(backend, exp)]
            sys.exit(follow(backend, watched, _out(quiet), _err, output, str(server)))
        from katib.client import LocalBackend

        assert isinstance(backend, LocalBackend)
        record = backend.storage.get_experiment(namespace, name)
        code = _run_experiments(
            [], backend.storage, record.source_dir, output, quiet, records=[record]
        )
    sys.exit(code)


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

from katib.cli._operator import operator  # noqa: E402

cli.add_command(operator)
