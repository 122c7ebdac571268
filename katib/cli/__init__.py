"""The ``katib`` command.

Exit statuses: 0 success; 1 the experiment Failed or a file is invalid; 2 usage errors and
refusals (unknown experiment, finished experiment rerun); 130 interrupted. A user's mistake
never shows a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
from rich.console import Console

from katib.cli._complete import experiment_names, trial_names
from katib.cli._options import (
    backend_options,
    namespace_option,
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
    # A backend is remote only if the module that defines it was loaded (which imports httpx).
    remote = sys.modules.get("katib.client._remote")
    return remote is not None and isinstance(backend, remote.RemoteBackend)


class HelpGroup(click.Group):
    """A group whose command list shows each command's whole summary (click cuts them).
    Its subgroups are HelpGroups too."""

    group_class = type

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=HelpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="katib-local", prog_name="katib")
def cli() -> None:
    """Run Katib v1beta1 hyperparameter tuning experiments locally, or through a server.

    Shell completion of commands, experiment and trial names: see `katib completion --help`.
    """


# validate / render ---------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
def validate(files: Sequence[str]) -> None:
    """Check experiment FILES: one line per problem, with its field path (exit 1 if any).

    Also warns (on stderr, exit status unchanged) about what would fail every trial on this
    machine: a trial script or command that does not exist here.
    """
    from katib.spec import load_experiments

    bad = False
    for path in files:
        try:
            experiments = load_experiments(path)
        except InvalidExperimentError as e:
            bad = True
            _print_invalid(path, e)
            continue
        _warn_commands(path, experiments)
        names = ", ".join(x.name for x in experiments)
        click.echo(f"{path}: valid ({names})")
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


def _print_invalid(path: str, error: InvalidExperimentError) -> None:
    """Every problem of a file with its field path, and a hint where one helps."""
    from katib.cli._preflight import plugin_hint

    for problem in error.errors:
        _err.print(f"{path}: {problem}", markup=False)
        hint = plugin_hint(problem, path)
        if hint:
            _err.print(f"{path}: hint: {hint}", markup=False)


def _warn_commands(path: str, experiments: Sequence[Any]) -> None:
    from katib.cli._preflight import command_warnings

    folder = Path(path).resolve().parent
    for exp in experiments:
        for warning in command_warnings(exp, folder):
            _err.print(f"{path}: warning: {warning}", markup=False)


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

    exp = load_experiments(file)[0]
    assignments: dict[str, str] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        if not sep:
            _fail(f"--set {item!r}: expected NAME=VALUE", EXIT_USAGE)
        assignments[name] = value
    if exp.spec.nas_config is None:
        _check_render_assignments(exp, assignments)
    # A NAS trial reads what its algorithm assigns (architecture, nn_config, ...): any names.
    manifest = render_trial_spec(
        exp,
        assignments,
        trial_name=trial_name or f"{exp.name}-render",
        namespace=namespace if namespace != "default" else exp.namespace,
        labels={"katib.kubeflow.org/experiment": exp.name},
    )
    import yaml

    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)


def _check_render_assignments(exp: Any, assignments: Mapping[str, str]) -> None:
    """``--set`` names every parameter of the search space, each inside its feasible space."""
    from suggestion import SearchSpace

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
@click.option(
    "--warm-start",
    "warm_start",
    default=None,
    metavar="EXP[,EXP]",
    help="Start from the finished trials of these experiments (same namespace, compatible "
    "search space): sets spec.warmStart.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@_user_errors
def run(
    file: str,
    db: str | None,
    server: str | None,
    token: str | None,
    output: str | None,
    namespace: str | None,
    warm_start: str | None,
    quiet: bool,
) -> None:
    """Run the experiment(s) in FILE to the end on this machine (or on a --server).

    Running a file again resumes an interrupted experiment and refuses a finished one. With
    --server the server runs the trials and this command watches them; Ctrl-C leaves the
    experiments running there.
    """
    from katib.spec import load_experiments

    try:
        experiments = load_experiments(file)
    except InvalidExperimentError as e:
        _print_invalid(file, e)
        sys.exit(EXIT_FAILED)
    _warn_commands(file, experiments)
    if namespace:
        for exp in experiments:
            exp.metadata.namespace = namespace
    if warm_start is not None:
        _set_warm_start(experiments, warm_start, file)
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


def _set_warm_start(experiments: Sequence[Any], names: str, file: str) -> None:
    """``--warm-start a,b``: every experiment of the file starts from a and b."""
    from katib.spec import WarmStart, validate_experiment

    sources = [n.strip() for n in names.split(",") if n.strip()]
    if not sources:
        _fail("--warm-start needs at least one experiment name", EXIT_USAGE)
    for exp in experiments:
        exp.spec.warm_start = WarmStart(experiments=sources)
        errors = validate_experiment(exp)
        if errors:
            raise InvalidExperimentError(errors, f"{file} (with --warm-start)")


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
    from katib.cli._watch import explain_failures, write_best
    from katib.controller import (
        ControllerLoop,
        FixedExperiments,
        Interrupted,
        LoopbackPush,
        admit,
    )
    from katib.records import ExperimentCondition
    from katib.service import best_view
    from katib.storage import katib_home
    from trial_runner.local import LocalProcessLauncher
    from trial_runner.pipelines import with_pipeline_runs

    if records is None:
        records = [admit(storage, exp, source_dir=source_dir) for exp in experiments]
    console = _out(quiet)
    progress = LiveProgress(console)
    loop = ControllerLoop(
        storage,
        with_pipeline_runs(LocalProcessLauncher(katib_home())),
        logs_root=_logs_root(),
        source=FixedExperiments(records),
        push=LoopbackPush(),
        observer=progress,
        interrupted_message=(
            "Interrupted: run the same file again, or `katib restart` the experiment, to resume"
        ),
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
        _err.print(
            "interrupted: trials were stopped; run the same command again (or `katib restart "
            "NAME`) to resume"
        )
        return EXIT_INTERRUPTED
    from katib.client import LocalBackend

    backend = LocalBackend(storage)  # the run's own storage: not closed here
    results = []
    for record in records:
        record = storage.get_experiment_by_id(record.id)
        results.append(best_view(storage, record))
        print_best(console, results[-1], record.message)
        explain_failures(backend, record.namespace, record.name)
    if output:
        write_best(output, results, console)
    failed = any(r["condition"] != ExperimentCondition.SUCCEEDED for r in results)
    return EXIT_FAILED if failed else EXIT_OK


# logs / delete / stop / edit / restart ---------------------------------------------------------


@cli.command()
@click.argument("trial", shell_complete=trial_names)
@backend_options
@click.option(
    "--namespace", "-n", default=None, help="Namespace of the trial (default: wherever it is)."
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing output while the trial runs.")
@click.option(
    "--tail", type=click.IntRange(min=1), default=None, metavar="N",
    help="Only the last N lines.",
)
@_user_errors
def logs(
    trial: str, db: str | None, server: str | None, token: str | None, namespace: str | None,
    follow: bool, tail: int | None,
) -> None:
    """Print the output (stdout and stderr) of trial TRIAL.

    Trial logs are kept in $KATIB_HOME/logs/<namespace>/<experiment>/<trial>.log.
    """
    from katib.cli._get import find_trial
    from katib.errors import NoLogError

    with _connect(db, server, token) as backend:
        found = find_trial(backend, trial, namespace)
        ns = found["metadata"]["namespace"]
        try:
            if tail is not None and not follow:
                for line in backend.log_tail(ns, trial, tail):
                    click.echo(line)
                return
            _print_log(backend, found, follow)
        except NoLogError:
            status = backend.get_trial(ns, trial)["status"]
            why = f"{status['condition']}: {status['message']}" if status["message"] else (
                status["condition"]
            )
            _fail(f"trial {ns}/{trial} has no output: it never started ({why})", EXIT_USAGE)


def _print_log(backend: Backend, trial: dict[str, Any], follow: bool) -> None:
    """Copy the trial's log to stdout; with ``follow``, until the trial has ended."""
    namespace, name = trial["metadata"]["namespace"], trial["metadata"]["name"]
    out = sys.stdout.buffer
    pause = 0.5 if _is_remote(backend) else 0.2
    for chunk in backend.log_chunks(namespace, name, follow=follow, poll=pause):
        out.write(chunk)
        out.flush()


@cli.group(cls=HelpGroup)
def delete() -> None:
    """Delete an object."""


@delete.command("experiment")
@click.argument("name", shell_complete=experiment_names)
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
@click.argument("name", shell_complete=experiment_names)
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
    func = click.option(
        "--max-failed-trial-count",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="New spec.maxFailedTrialCount: failed trials tolerated (0: none).",
    )(func)
    func = click.option(
        "--parallel-trial-count",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="New spec.parallelTrialCount: trials at a time.",
    )(func)
    func = click.option(
        "--max-trial-count",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="New spec.maxTrialCount: trials in all.",
    )(func)
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
@click.argument("name", shell_complete=experiment_names)
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
    """Change the trial budget of experiment NAME.

    A running experiment picks the new counts up within seconds; an interrupted one at its
    next run. A finished one restarts with them when its resumePolicy (LongRunning,
    FromVolume) allows it, as in Katib: `katib restart NAME` then runs the new trials here
    (a server runs them by itself); with resumePolicy Never it is refused (exit 2).
    """
    if max_trial_count is None and parallel_trial_count is None and max_failed_trial_count is None:
        _fail(
            "nothing to change: give --max-trial-count, --parallel-trial-count or "
            "--max-failed-trial-count",
            EXIT_USAGE,
        )
    counts = _counts(max_trial_count, parallel_trial_count, max_failed_trial_count)
    with _connect(db, server, token) as backend, _budget_refusals():
        before = backend.get_experiment(namespace, name)["status"]["condition"]
        exp = backend.edit_budget(namespace, name, counts)
        remote = _is_remote(backend)
    spec = exp["spec"]
    click.echo(
        f"experiment {namespace}/{name}: maxTrialCount={spec.get('maxTrialCount')} "
        f"parallelTrialCount={spec.get('parallelTrialCount')} "
        f"maxFailedTrialCount={spec.get('maxFailedTrialCount')}"
    )
    if before in ("Succeeded", "Failed"):
        runs = "the server runs its new trials" if remote else (
            f"`katib restart {name}` runs its new trials here"
        )
        click.echo(f"it had finished ({before}) and is now {exp['status']['condition']}: {runs}")


class _budget_refusals:  # noqa: N801 - used as a `with` statement
    """A budget the experiment's rules refuse is a refusal (exit 2), not an invalid file."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if isinstance(error, InvalidExperimentError):
            for problem in error.errors:
                _err.print(f"error: {problem}", markup=False)
            sys.exit(EXIT_USAGE)


@cli.command()
@click.argument("name", shell_complete=experiment_names)
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
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
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
    """Run experiment NAME again here, to its end: a finished one with a larger budget, or
    an interrupted one where it stopped.

    A finished experiment needs a resumePolicy that allows restarts (LongRunning,
    FromVolume) and a --max-trial-count above the trials it has run. An interrupted one
    (Ctrl-C, a crash: `katib get experiments` shows it Interrupted) resumes with the
    interrupted trials run again; the counts given change its budget first. With --server
    the server runs it and this command watches it to its end.
    """
    counts = _counts(max_trial_count, parallel_trial_count, max_failed_trial_count)
    given = {k: v for k, v in counts.items() if v is not None}
    with _connect(db, server, token) as backend, _budget_refusals():
        exp = backend.get_experiment(namespace, name)
        if exp["status"]["condition"] in ("Succeeded", "Failed"):
            exp = backend.restart_experiment(namespace, name, counts)
        else:
            _refuse_driven(exp)
            if given:
                exp = backend.edit_budget(namespace, name, counts)
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


def _refuse_driven(exp: dict[str, Any]) -> None:
    """An unfinished experiment that a live controller drives is not run a second time."""
    status = exp["status"]
    if status["condition"] == "Created" or status.get("interrupted"):
        return
    where = f"{exp['metadata']['namespace']}/{exp['metadata']['name']}"
    raise ConflictError(
        f"experiment {where} is {status['condition']} and being run already; `katib edit` "
        "changes its budget, `katib stop` ends it"
    )


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the script that completes katib's commands, options, experiment and trial names
    in SHELL.

    \b
    bash: add  eval "$(katib completion bash)"  to ~/.bashrc
    zsh:  add  eval "$(katib completion zsh)"   to ~/.zshrc
    fish: katib completion fish > ~/.config/fish/completions/katib.fish

    Names come from the database (--db, KATIB_DB) or the server (KATIB_SERVER, KATIB_TOKEN)
    the command line points at.
    """
    from katib.cli._complete import completion_script

    click.echo(completion_script(shell))


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


# `katib get`, `describe` and `best` live in their own module, as do `katib server` and
# `katib token ...`; importing them registers their commands.
from katib.cli import _get  # noqa: E402, F401
from katib.cli._server import server, token  # noqa: E402

cli.add_command(server)
cli.add_command(token)

from katib.cli._operator import operator  # noqa: E402

cli.add_command(operator)

from katib.cli import _data  # noqa: E402, F401 - export, import, namespaces, token rotate
