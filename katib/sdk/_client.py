"""``KatibClient``: Katib's Python SDK, embedded (on the database) or remote (through a server).

Method names and arguments are Katib's (``kubeflow.katib.KatibClient``) where they make sense
here. Both modes read and change experiments through one :class:`katib.client.Backend` (a
:class:`~katib.client.LocalBackend` over the database, or a
:class:`~katib.client.RemoteBackend` over a ``katib server``), which answers with the same
JSON and raises the same :mod:`katib.errors`, so every method gives the same result in
either mode.

What differs is who runs experiments. In embedded mode (``KatibClient()``) there is no server
and no background controller: an experiment runs while :meth:`KatibClient.tune` or
:meth:`KatibClient.run_experiment` drives it, in the calling thread (``wait=True``) or in a
background thread of this process (``wait=False``). Another process (``katib run``) may drive
it too; the database's claim keeps two controllers off one experiment. In remote mode
(``KatibClient(url, token)``) the server's controller runs every experiment, and the client
only creates, watches and changes them.

Objects come back as Katib's JSON (camelCase dicts, exactly what ``katib get ... -o json``
prints and the REST API returns); the optimal trial and metric logs come back as small
dataclasses shaped like Katib's (see :mod:`katib.sdk._types`).
"""

from __future__ import annotations

import codecs
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from katib import service
from katib.client import Backend, BudgetCounts, LocalBackend, RemoteBackend
from katib.controller import (
    ControllerLoop,
    ExperimentRun,
    FixedExperiments,
    Interrupted,
    LoopbackPush,
    RunObserver,
    TrialCounts,
    check_runnable,
    live_owner,
)
from katib.errors import ConflictError, KatibError, NoLogError, NotFoundError
from katib.records import ExperimentCondition, ExperimentRecord, TrialRecord, TrialState
from katib.sdk._errors import (
    ExperimentFailedError,
    ExperimentTimeoutError,
    InvalidArgumentError,
    NotRunningError,
)
from katib.sdk._objective import (
    SCRIPT_NAME,
    build_experiment,
    check_parameters,
    check_requirements,
    function_source,
    functions_dir,
    inline_command,
    missing_packages,
    script_text,
    trial_call_spec,
)
from katib.sdk._progress import Progress, TrialNews, wanted
from katib.sdk._types import LoggedMetric, MetricLog, OptimalTrial, ParetoTrial
from katib.spec import Experiment, load_experiments, parse_experiment, validate_restart
from katib.storage import Storage, default_url, katib_home, normalize_url
from trial_runner.local import LocalProcessLauncher
from trial_runner.pipelines import with_pipeline_runs

if TYPE_CHECKING:
    import pandas

logger = logging.getLogger("katib.sdk")

CONDITIONS = tuple(c.value for c in ExperimentCondition)
FAILED_STATES = (TrialState.FAILED.value, TrialState.METRICS_UNAVAILABLE.value)
FINISHED = frozenset(c.value for c in ExperimentCondition if c.is_finished)
#: How long delete_experiment() waits for a running experiment to stop.
STOP_WAIT_SECONDS = 60.0
#: How long wait_for_experiment_condition() watches an unfinished experiment that nothing
#: runs before it gives up (NotRunningError; embedded mode only).
NOT_RUNNING_GRACE_SECONDS = 5.0
#: Seconds between looks while tune() or run_experiment() waits for a server's run, and while
#: get_job_logs(follow=True) waits for more output.
POLL_SECONDS = 0.5
LOG_POLL_SECONDS = 0.2


class _Observer(RunObserver):
    """Progress as log records on the ``katib.sdk`` logger (silent unless logging is set up)
    and, when ``show``, as lines on standard error (:mod:`katib.sdk._progress`)."""

    def __init__(self, backend: LocalBackend, show: bool) -> None:
        self.backend = backend
        self.show = show
        self.progress: dict[int, Progress] = {}

    def experiment_started(self, run: ExperimentRun) -> None:
        if not self.show:
            return
        spec = run.spec.spec
        progress = Progress(
            f"{run.record.namespace}/{run.record.name}",
            run.objective.objective_metric_name or "objective",
            spec.max_trial_count,
        )
        self.progress[run.record.id] = progress
        progress.started(sum(n for state, n in run.counts.items() if state.is_finished))

    def trial_finished(self, run: ExperimentRun, trial: TrialRecord) -> None:
        value = "" if trial.objective is None else f" objective={trial.objective:.6g}"
        logger.info(
            "%s/%s: trial %s %s%s",
            run.record.namespace,
            run.record.name,
            trial.name,
            trial.state.value,
            value,
        )
        progress = self.progress.get(run.record.id)
        if progress is not None:
            done = sum(n for state, n in run.counts.items() if state.is_finished)
            best = None if run.best is None else run.best.objective
            progress.trial(_news(trial), done, best)

    def experiment_finished(self, run: ExperimentRun) -> None:
        logger.info(
            "%s/%s: %s %s",
            run.record.namespace,
            run.record.name,
            run.record.condition.value,
            run.record.message,
        )
        progress = self.progress.pop(run.record.id, None)
        if progress is None:
            return
        best = None if run.best is None else _news(run.best)
        trials = self.backend.list_trials(run.record.namespace, run.record.name)
        progress.finished(
            run.record.condition.value,
            run.record.message,
            best,
            _failures(self.backend, trials),
        )


def _news(trial: TrialRecord) -> TrialNews:
    return TrialNews(
        trial.name, trial.state.value, trial.message, dict(trial.assignments), trial.objective
    )


def _json_news(trial: Mapping[str, Any], value: float | None) -> TrialNews:
    status = trial["status"]
    return TrialNews(
        trial["metadata"]["name"],
        status["condition"],
        status.get("message") or "",
        {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]},
        value,
    )


def _failures(
    backend: Backend, trials: Sequence[Mapping[str, Any]], kinds: int = 2, lines: int = 5
) -> list[tuple[TrialNews, list[str]]]:
    """The latest failed trials of distinct failures, with the last lines of their output."""
    out: list[tuple[TrialNews, list[str]]] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for trial in reversed(trials):
        if trial["status"]["condition"] not in FAILED_STATES:
            continue
        news = _json_news(trial, None)
        tail = backend.log_tail(trial["metadata"]["namespace"], news.name, lines)
        key = (news.message, tuple(tail))
        if key in seen:
            continue
        seen.add(key)
        out.append((news, tail))
        if len(out) == kinds:
            break
    return out


class KatibClient:
    """Create, run, watch and inspect hyperparameter tuning experiments.

    ``KatibClient()`` works on the local database (``db``, else ``KATIB_DB``, else
    ``$KATIB_HOME/katib.db``) with no server; ``KatibClient(url, token)`` works through the
    ``katib server`` at ``url``, with the rights of ``token`` in its namespaces. Every method
    gives the same result in both modes; the server's controller runs experiments in remote
    mode, this process in embedded mode.

    Through a server every method may also raise, besides what it documents:
    ``UnauthorizedError`` (the token is unknown or revoked), ``ForbiddenError`` (its role may
    not do this: viewers only read, only owners delete), ``NotFoundError`` for anything in a
    namespace the token has no role in, and ``ServerUnreachableError`` (a
    ``TemporaryError``: the server does not answer).

    Args:
        url: A Katib server's URL, as ``http://127.0.0.1:8080`` (remote mode).
        token: The API token for ``url`` (default: ``KATIB_TOKEN``).
        namespace: The namespace methods use when they are not given one.
        db: Database URL or SQLite path (embedded mode).

    Raises:
        InvalidArgumentError: both ``url`` and ``db``, or a token without a URL.
        UnauthorizedError: ``url`` without a token (none given, ``KATIB_TOKEN`` unset).
        KatibError: ``url`` is not an http(s) URL.
        StorageError: the database cannot be opened.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        namespace: str = "default",
        db: str | None = None,
    ) -> None:
        if not isinstance(namespace, str) or not namespace:
            raise InvalidArgumentError(f"namespace: expected a non-empty string, got {namespace!r}")
        self.namespace = namespace
        self._local: LocalBackend | None
        self._backend: Backend
        if url is None:
            if token is not None:
                raise InvalidArgumentError(
                    "token: given without a server URL; KatibClient(url, token) works through "
                    "a katib server, KatibClient() on the database"
                )
            #: The database of embedded mode (None in remote mode).
            self.db_url: str | None = normalize_url(db) if db else default_url()
            #: The server of remote mode (None in embedded mode).
            self.url: str | None = None
            self._local = LocalBackend(Storage.open(self.db_url), url=self.db_url)
            self._backend = self._local
        else:
            if not isinstance(url, str):
                raise InvalidArgumentError(f"url: expected a server URL, got {url!r}")
            if db is not None:
                raise InvalidArgumentError(
                    "give a server URL (remote mode) or db (embedded mode), not both"
                )
            self.db_url = None
            self._local = None
            remote = RemoteBackend(url, token or os.environ.get("KATIB_TOKEN"))
            self.url = remote.url
            self._backend = remote

    @property
    def remote(self) -> bool:
        """Whether the client works through a server."""
        return self._local is None

    @property
    def _local_backend(self) -> LocalBackend:
        """The database's backend (embedded mode only)."""
        assert self._local is not None, "embedded mode only"
        return self._local

    @property
    def _storage(self) -> Storage:
        """The database (embedded mode only)."""
        assert self._local is not None, "embedded mode only"
        return self._local.storage

    def close(self) -> None:
        """Release database or HTTP connections (runs in background threads keep going)."""
        self._backend.close()

    def __enter__(self) -> KatibClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Creating and running -----------------------------------------------------------------

    def create_experiment(
        self,
        experiment: str | os.PathLike[str] | Mapping[str, Any] | Experiment,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Validate and store an experiment (condition Created).

        Embedded, run it with run_experiment(); a server starts it at once. The experiment is
        validated here first, so an invalid one raises the same errors in both modes.

        Args:
            experiment: A YAML file's path (one experiment), a Katib Experiment document
                (camelCase dict), or an :class:`~katib.spec.Experiment`. The trial template's
                relative paths resolve against the file's folder (through a server: that
                folder on the server's machine, so give paths the server can see); for a dict
                or model, against the current folder (the server's work folder remotely).
            namespace: Overrides ``metadata.namespace``; without either, the client's.

        Returns:
            The stored Katib Experiment (a dict, with ``status``).

        Raises:
            InvalidExperimentError: with every problem and its field path.
            InvalidArgumentError: ``experiment`` is none of the above, or a file holds
                several experiments.
            ConflictError: an experiment of that name exists in the namespace.
            NotRunnableError: it is valid but the server cannot run it.
            ForbiddenError: (remote) a viewer token; nothing is stored.
            NotFoundError: (remote) the token has no role in the namespace.
        """
        source_dir: str | None = None
        source: str | None = None
        if isinstance(experiment, str | os.PathLike):
            path = Path(experiment)
            loaded = load_experiments(path)
            if len(loaded) != 1:
                raise InvalidArgumentError(
                    f"{path} holds {len(loaded)} experiments; create_experiment takes one "
                    "(`katib run` runs a file of several side by side)"
                )
            document: Any = loaded[0].to_wire()
            source_dir, source = str(path.resolve().parent), str(path)
        elif isinstance(experiment, Experiment):
            document = experiment.to_wire()
        elif isinstance(experiment, Mapping):
            document = _plain(experiment)
        else:
            raise InvalidArgumentError(
                "experiment must be a YAML file path, a dict or a katib.spec.Experiment, "
                f"got {type(experiment).__name__}"
            )
        exp = self._validated(document, namespace, source)
        if source_dir is None and self._local is not None:
            source_dir = os.getcwd()
        return self._backend.create_experiment(exp.to_wire(), source_dir=source_dir)

    def tune(
        self,
        name: str,
        objective: Callable[[dict[str, Any]], Any],
        parameters: Mapping[str, Any],
        base_image: str | None = None,
        namespace: str | None = None,
        env_per_trial: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        algorithm_name: str = "random",
        algorithm_settings: Mapping[str, Any] | Sequence[Any] | None = None,
        objective_metric_name: str | None = None,
        additional_metric_names: Sequence[str] | None = None,
        objective_type: str = "maximize",
        objective_goal: float | None = None,
        max_trial_count: int | None = 10,
        parallel_trial_count: int | None = 1,
        max_failed_trial_count: int | None = None,
        resources_per_trial: Mapping[str, Any] | None = None,
        retain_trials: bool = False,
        packages_to_install: Sequence[str] | None = None,
        pip_index_url: str | None = None,
        metrics_collector_config: Mapping[str, Any] | None = None,
        *,
        wait: bool = True,
        load_if_exists: bool = False,
        show_progress: bool | None = None,
        resume_policy: str | None = None,
    ) -> dict[str, Any]:
        """Tune a Python function: each trial calls ``objective(parameters)`` in its own process.

        As Katib's SDK does, the function's source (not a pickle) is shipped, so it must be
        self-contained (imports inside it). Embedded, the source is written into a script
        under ``$KATIB_HOME/functions/<namespace>/<name>/`` and trials run in the current
        folder, with this Python. Through a server, the source travels inside the experiment
        (the trial container's command is ``python -u -c <script>``) and trials run as
        processes on the server's machine, in its work folder, with its Python; only owner
        and editor tokens may. The function reports metrics in any of three ways: printing
        ``name=value`` lines (the StdOut collector reads them), calling
        ``katib.report_metrics({...})``, or returning a dict of metrics (or one number: the
        objective metric's value).

        Args:
            name: The experiment's name.
            objective: A function of one argument, the dict of parameter values.
            parameters: ``{name: search.double(...) | search.int(...) | search.categorical(...)
                | a fixed value}``; the function gets every entry, tuned ones with a value of
                this trial (float, int, or the list's own value).
            base_image: The container image on a cluster (locally, the Python that runs
                katib runs trials).
            namespace: Defaults to the client's.
            env_per_trial: Environment variables for each trial (``{name: value}``).
            algorithm_name: ``random``, ``tpe``, ``grid``, ``bayesianoptimization``, ...
            algorithm_settings: ``{setting: value}``.
            objective_metric_name: The metric to optimize (required).
            additional_metric_names: Other metrics to collect.
            objective_type: ``maximize`` (Katib's default) or ``minimize``.
            objective_goal: Stop with Succeeded once the objective reaches it.
            max_trial_count: Trials in all (default 10).
            parallel_trial_count: Trials at a time (default 1).
            max_failed_trial_count: Failed trials tolerated (unset: unlimited).
            resources_per_trial: ``{"cpu": "2", "memory": "1Gi", "gpu": "1"}``; locally
                cpu sets math libraries' threads and gpu hands out GPUs.
            retain_trials: Katib's ``retain`` of the trial template.
            packages_to_install: Nothing is installed: trials use the Python that runs them,
                which must have these packages. Embedded, that is this Python, checked here;
                through a server, each trial checks the server's Python first and fails
                with a message naming the missing ones.
            pip_index_url: Accepted for Katib compatibility; unused.
            metrics_collector_config: ``{"kind": "StdOut"}`` (default) or ``{"kind": "Push"}``.
            wait: Return when the experiment has finished (default). With False, embedded it
                runs in a background thread of this process (which then waits for it before
                exiting); through a server it returns at once. stop_experiment() ends it
                early.
            load_if_exists: When an experiment called ``name`` exists already (the same
                script run again), continue it instead of raising ``ConflictError``, as
                ``optuna.create_study(load_if_exists=True)``: an interrupted one resumes, a
                finished one is returned as it is, or restarts when ``max_trial_count`` grew
                and its resumePolicy allows it. The function may have changed (embedded:
                new trials run the new source); the search space and settings may not,
                except the three trial counts.
            show_progress: Print a line per finished trial and the result on standard
                error. Default (None): when waiting, in a terminal or a Jupyter notebook,
                unless logging of ``katib.sdk`` at INFO is set up.
            resume_policy: Katib's ``resumePolicy``: ``Never`` (default), ``LongRunning`` or
                ``FromVolume``; the last two let a finished experiment restart with a larger
                budget (edit_experiment_budget, or tune again with ``load_if_exists``).

        Returns:
            The Katib Experiment (a dict with ``status``), finished when ``wait``.

        Raises:
            ObjectiveFunctionError: the function cannot run as trials (a lambda, no source,
                names defined outside it, not one argument).
            InvalidArgumentError: ``parameters`` or another argument is unusable,
                ``packages_to_install`` are not installed (embedded), or (remote) the
                function's script is too long for one command-line argument (128 KiB).
            InvalidExperimentError: the resulting experiment is invalid (field errors).
            ConflictError: the experiment exists already (without ``load_if_exists``), or
                (with it) exists with another search space, is run by another process, or
                cannot restart (resumePolicy Never).
            ForbiddenError: (remote) a viewer token; nothing is stored.
            NotFoundError: (remote) the token has no role in the namespace.
            KeyboardInterrupt: interrupted while waiting. Embedded, the trials were stopped
                and run_experiment() resumes it; a server keeps running it.
        """
        del pip_index_url  # nothing is installed
        ns = namespace or self.namespace
        for what, value in (("name", name), ("namespace", ns)):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{what}: expected a non-empty string, got {value!r}")
        params = check_parameters(parameters)
        source = function_source(objective)
        packages = check_requirements(packages_to_install or [])
        if packages and self._local is not None:
            missing = missing_packages(packages)
            if missing:
                raise InvalidArgumentError(
                    "packages_to_install: trials run in this Python environment "
                    f"({sys.executable}), which does not have {', '.join(missing)}; install "
                    "them first (pip install ...)"
                )
        call_spec = trial_call_spec(params, objective_metric_name)
        script = functions_dir(ns, name) / SCRIPT_NAME
        if self._local is None:
            text = script_text(source, call_spec, ns, name, inline=True, packages=packages)
            command = inline_command(text)
        else:
            command = ["python", "-u", str(script)]
        document = build_experiment(
            name=name,
            namespace=ns,
            parameters=params,
            command=command,
            base_image=base_image,
            env_per_trial=env_per_trial,
            algorithm_name=algorithm_name,
            algorithm_settings=algorithm_settings,
            objective_metric_name=objective_metric_name,
            additional_metric_names=additional_metric_names,
            objective_type=objective_type,
            objective_goal=objective_goal,
            max_trial_count=max_trial_count,
            parallel_trial_count=parallel_trial_count,
            max_failed_trial_count=max_failed_trial_count,
            resources_per_trial=resources_per_trial,
            retain_trials=retain_trials,
            metrics_collector_config=metrics_collector_config,
            resume_policy=resume_policy,
        )
        exp = self._validated(document, ns, None)
        try:
            existing: dict[str, Any] | None = self._backend.get_experiment(ns, name)
        except NotFoundError:
            existing = None
        if existing is not None:
            if not load_if_exists:
                raise ConflictError(
                    f"experiment {ns}/{name} already exists: tune(..., load_if_exists=True) "
                    "continues it (or returns it, when it has finished); "
                    f"delete_experiment({name!r}) removes it"
                )
            script_body = None
            if self._local is not None:
                script_body = script_text(source, call_spec, ns, name)
            return self._load(existing, exp, script, script_body, wait, show_progress)
        if self._local is None:
            try:
                created = self._backend.create_experiment(exp.to_wire())
            except ConflictError as e:
                raise ConflictError(str(e)) from None
            logger.info("experiment %s/%s created on %s", ns, name, self._backend.location)
            return self._wait_finished(ns, name, show_progress) if wait else created
        # Stored held, so that no controller (a server on this database) starts a trial
        # before its script exists.
        with live_owner() as holder:
            try:
                record = self._storage.create_experiment(
                    exp, source_dir=os.getcwd(), owner=holder
                )
            except ConflictError as e:
                raise ConflictError(str(e)) from None  # created meanwhile; no database story
            try:
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(script_text(source, call_spec, ns, name))
            except OSError as e:
                self._storage.delete_experiment(ns, name)
                raise KatibError(f"cannot write the trial script {script}: {e}") from e
            self._storage.release(record.id, holder)
        record = self._storage.get_experiment_by_id(record.id)
        logger.info("experiment %s/%s created; trials run %s", ns, name, script)
        return self._start(record, wait=wait, show_progress=show_progress)

    def _load(
        self,
        existing: dict[str, Any],
        exp: Experiment,
        script: Path,
        script_body: str | None,
        wait: bool,
        show_progress: bool | None,
    ) -> dict[str, Any]:
        """``tune(load_if_exists=True)`` of an experiment that exists: continue it.

        Only the three trial counts may differ from the stored experiment; a finished one
        that needs no more trials is returned as it is, one that does follows the budget
        rule (restart where resumePolicy allows it).
        """
        ns, name = exp.namespace, exp.name
        status = existing["status"]
        trials_run = int(status["trials"])
        stored = parse_experiment(
            {k: existing[k] for k in ("apiVersion", "kind", "metadata", "spec")}
        )
        changed = [
            str(p) for p in validate_restart(stored, exp, trials_run)
            if p.path != "spec.maxTrialCount"
        ]
        if changed:
            raise ConflictError(
                f"experiment {ns}/{name} exists with a different spec ({'; '.join(changed)}); "
                "load_if_exists continues it only with the same search space and settings: "
                "use another name, or delete_experiment() it first"
            )
        finished = status["condition"] in FINISHED
        new_max = exp.spec.max_trial_count
        if finished and (new_max is not None and new_max <= trials_run):
            logger.info("experiment %s/%s had finished; loaded as it is", ns, name)
            return existing
        counts = TrialCounts.of(exp)
        if finished or counts != TrialCounts.of(stored):
            self._backend.edit_budget(ns, name, {
                "max_trial_count": counts.max_trial_count,
                "parallel_trial_count": counts.parallel_trial_count,
                "max_failed_trial_count": counts.max_failed_trial_count,
            })
        if self._local is None:
            return self._wait_finished(ns, name, show_progress) if wait else (
                self._backend.get_experiment(ns, name)
            )
        record = self._record(name, ns)
        if _run_here(record) or service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {ns}/{name} is being run already ({record.owner}); "
                "wait_for_experiment_condition() waits for it"
            )
        if script_body is not None:
            try:
                script.parent.mkdir(parents=True, exist_ok=True)
                script.write_text(script_body)
            except OSError as e:
                raise KatibError(f"cannot write the trial script {script}: {e}") from e
        logger.info("experiment %s/%s exists; continuing it", ns, name)
        return self._start(record, wait=wait, show_progress=show_progress)

    def run_experiment(
        self,
        name: str,
        namespace: str | None = None,
        *,
        wait: bool = True,
        show_progress: bool | None = None,
    ) -> dict[str, Any]:
        """Run a stored experiment (created, interrupted or restarted) to its end.

        Embedded, it runs here, as ``katib run`` does for a file. Through a server, the
        server's controller runs it already: this only waits for it (``wait``).

        Args:
            name: The experiment.
            namespace: Defaults to the client's.
            wait: Return when it has finished (default). With False, embedded it runs in a
                background thread of this process (which then waits for it before
                exiting); through a server it returns at once.
            show_progress: Print a line per finished trial and the result on standard
                error (default: when waiting, in a terminal or a notebook; see tune()).

        Returns:
            The Katib Experiment (a dict with ``status``).

        Raises:
            NotFoundError: no such experiment.
            ConflictError: it finished already (edit_experiment_budget() restarts one whose
                resumePolicy allows it), or (embedded) something else runs it.
            KeyboardInterrupt: interrupted while waiting. Embedded, the trials were stopped
                and running it again resumes it; a server keeps running it.
        """
        ns = namespace or self.namespace
        if self._local is None:
            experiment = self._backend.get_experiment(ns, name)
            _refuse_finished(ns, name, experiment["status"]["condition"])
            return self._wait_finished(ns, name, show_progress) if wait else experiment
        record = self._record(name, ns)
        _refuse_finished(ns, name, record.condition.value)
        check_runnable(record.spec)
        return self._start(record, wait=wait, show_progress=show_progress)

    def stop_experiment(self, name: str, namespace: str | None = None) -> None:
        """Stop a running experiment: its trials are killed and it ends as Succeeded.

        It has ended when this returns, or (when a controller elsewhere runs it, or a
        server) within seconds.

        Raises:
            NotFoundError: no such experiment.
            ConflictError: it has finished already.
            ForbiddenError: (remote) a viewer token.
        """
        ns = namespace or self.namespace
        if self._local is None:
            self._backend.stop_experiment(ns, name)
            return
        record = self._record(name, ns)
        service.stop_experiment(self._storage, record, running=service.run_elsewhere(record))

    def delete_experiment(self, name: str, namespace: str | None = None) -> None:
        """Delete an experiment with its trials, metrics, logs and function script.

        Embedded, an experiment this process runs is stopped first and one that another
        process runs is refused. Through a server, an unfinished experiment is stopped
        first, and deleted once it has ended (waiting up to a minute).

        Raises:
            NotFoundError: no such experiment.
            ConflictError: another process runs it (embedded: stop it first), or it did not
                stop in time.
            ForbiddenError: (remote) not an owner token; nothing was changed.
        """
        ns = namespace or self.namespace
        if self._local is None:
            self._delete_remote(ns, name)
            return
        record = self._record(name, ns)
        where = f"{record.namespace}/{record.name}"
        if _run_here(record):
            if not record.condition.is_finished:
                service.stop_experiment(self._storage, record, running=True)
            deadline = time.monotonic() + STOP_WAIT_SECONDS
            while service.run_elsewhere(record):
                if time.monotonic() > deadline:
                    raise ConflictError(f"experiment {where} did not stop; try again")
                time.sleep(LOG_POLL_SECONDS)
                record = self._storage.get_experiment_by_id(record.id)
        elif service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {where} is being run by another process ({record.owner}); "
                "stop it first"
            )
        service.delete_experiment(self._storage, record)

    def edit_experiment_budget(
        self,
        name: str,
        namespace: str | None = None,
        max_trial_count: int | None = None,
        parallel_trial_count: int | None = None,
        max_failed_trial_count: int | None = None,
    ) -> dict[str, Any]:
        """Change an experiment's trial budget.

        A running experiment picks the new budget up within seconds. A finished one whose
        resumePolicy is LongRunning or FromVolume is restarted, as in Katib: it becomes
        Restarting; a server then runs the new trials, and embedded run_experiment() does.

        Returns:
            The Katib Experiment (a dict with ``status``).

        Raises:
            InvalidArgumentError: no count was given.
            InvalidExperimentError: the counts break the experiment's rules.
            NotFoundError: no such experiment.
            ConflictError: a finished experiment whose resumePolicy is Never (the message
                says how to continue).
            InvalidExperimentError: a finished experiment's maxTrialCount would not exceed
                the trials already run.
            ForbiddenError: (remote) a viewer token.
        """
        counts: BudgetCounts = {}
        if max_trial_count is not None:
            counts["max_trial_count"] = max_trial_count
        if parallel_trial_count is not None:
            counts["parallel_trial_count"] = parallel_trial_count
        if max_failed_trial_count is not None:
            counts["max_failed_trial_count"] = max_failed_trial_count
        if not counts:
            raise InvalidArgumentError(
                "give max_trial_count, parallel_trial_count or max_failed_trial_count to change "
                "the experiment's trial budget"
            )
        return self._backend.edit_budget(namespace or self.namespace, name, counts)

    # Watching -----------------------------------------------------------------------------

    def get_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Katib Experiment (a camelCase dict with ``status``).

        Raises:
            NotFoundError: no such experiment.
        """
        return self._backend.get_experiment(namespace or self.namespace, name)

    def list_experiments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The experiments of a namespace (default: the client's), oldest first.

        Archived experiments (a server's dashboard can archive finished ones) are left out.

        Raises:
            NotFoundError: (remote) the token has no role in the namespace.
        """
        return self._backend.list_experiments(namespace or self.namespace)

    def get_experiment_conditions(
        self,
        name: str,
        namespace: str | None = None,
        experiment: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The experiment's ``status.conditions``: ``{type, status, reason, message, ...}``.

        Args:
            name: The experiment.
            namespace: Defaults to the client's.
            experiment: An experiment already fetched with get_experiment() (then nothing is
                read again).

        Raises:
            NotFoundError: no such experiment.
        """
        if experiment is None:
            experiment = self.get_experiment(name, namespace)
        return list((experiment.get("status") or {}).get("conditions") or [])

    def is_experiment_created(
        self, name: str, namespace: str | None = None, experiment: Mapping[str, Any] | None = None
    ) -> bool:
        return self._has_condition("Created", name, namespace, experiment)

    def is_experiment_running(
        self, name: str, namespace: str | None = None, experiment: Mapping[str, Any] | None = None
    ) -> bool:
        return self._has_condition("Running", name, namespace, experiment)

    def is_experiment_restarting(
        self, name: str, namespace: str | None = None, experiment: Mapping[str, Any] | None = None
    ) -> bool:
        return self._has_condition("Restarting", name, namespace, experiment)

    def is_experiment_succeeded(
        self, name: str, namespace: str | None = None, experiment: Mapping[str, Any] | None = None
    ) -> bool:
        return self._has_condition("Succeeded", name, namespace, experiment)

    def is_experiment_failed(
        self, name: str, namespace: str | None = None, experiment: Mapping[str, Any] | None = None
    ) -> bool:
        return self._has_condition("Failed", name, namespace, experiment)

    def wait_for_experiment_condition(
        self,
        name: str,
        namespace: str | None = None,
        expected_condition: str = "Succeeded",
        timeout: float = 600,
        polling_interval: float = 1,
    ) -> dict[str, Any]:
        """Wait until the experiment has ``expected_condition``, and return it.

        Args:
            name: The experiment.
            namespace: Defaults to the client's.
            expected_condition: Created, Running, Restarting, Succeeded or Failed.
            timeout: Seconds to wait at most.
            polling_interval: Seconds between looks.

        Returns:
            The Katib Experiment (a dict with ``status``).

        Raises:
            InvalidArgumentError: ``expected_condition`` is not a condition.
            NotFoundError: no such experiment.
            ExperimentTimeoutError: the condition was not reached within ``timeout``
                (a ``TimeoutError``).
            ExperimentFailedError: the experiment Failed while another condition was expected
                (a ``RuntimeError``).
            NotRunningError: (embedded) the experiment has not finished and nothing has run
                it for a few seconds (embedded mode has no background controller: call
                run_experiment()). A server runs every experiment, so remote mode waits.
            KatibError: (embedded) this process's background run of it crashed.
        """
        if expected_condition not in CONDITIONS:
            raise InvalidArgumentError(
                f"expected_condition: {expected_condition!r} is not one of {', '.join(CONDITIONS)}"
            )
        ns = namespace or self.namespace
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while True:
            experiment = self._backend.get_experiment(ns, name)
            status = experiment["status"]
            conditions = self.get_experiment_conditions(name, ns, experiment)
            reached = {c["type"] for c in conditions if c.get("status") == "True"}
            if expected_condition in reached:
                return experiment
            if "Failed" in reached:
                raise ExperimentFailedError(
                    f"experiment {ns}/{name} Failed ({status.get('message')}) while waiting "
                    f"for {expected_condition}"
                )
            if self._local is not None:
                idle_since = self._check_progress(self._record(name, ns), idle_since)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExperimentTimeoutError(
                    f"experiment {ns}/{name} did not reach {expected_condition} within "
                    f"{timeout:g} s (it is {status['condition']})"
                )
            time.sleep(min(polling_interval, remaining))

    def get_optimal_hyperparameters(
        self, name: str, namespace: str | None = None
    ) -> OptimalTrial | None:
        """The best trial so far, or None while no trial has succeeded (as Katib).

        Returns:
            An :class:`OptimalTrial` with ``best_trial_name``, ``parameter_assignments``
            (``[ParameterAssignment(name, value)]``, values as text as the trial got them) and
            ``observation.metrics`` (``[Metric(name, min, max, latest)]``); ``.parameters`` is
            the assignments as a dict of text, ``.typed_parameters`` the same values typed by
            their parameter type (float, int; categorical ones stay text).

        Raises:
            NotFoundError: no such experiment.
        """
        ns = namespace or self.namespace
        experiment = self._backend.get_experiment(ns, name)
        best = OptimalTrial.from_json(self._backend.best_trial(ns, name), experiment)
        return best if best is not None and best.observation.metrics else None

    def get_trials_dataframe(
        self, experiment_name: str, namespace: str | None = None
    ) -> pandas.DataFrame:
        """The experiment's trials as a pandas DataFrame, one row per trial, oldest first
        (as Optuna's ``study.trials_dataframe()``).

        Columns: ``name``, ``state``, ``value`` (the objective after its metric strategy),
        ``params_<name>`` (typed: float, int, or text for categorical), ``metrics_<name>``
        (each metric after its strategy), ``datetime_start``, ``datetime_complete``
        (timestamps, UTC), ``duration`` (a timedelta), ``reason``, ``message``, ``exit_code``.
        ``katib get trials NAME -o csv`` writes the same columns (values as text).

        Raises:
            NotFoundError: no such experiment.
            ImportError: pandas is not installed (``pip install pandas``: it is optional).
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "get_trials_dataframe() needs pandas, which katib does not install by "
                "itself: pip install pandas (or pip install 'katib-local[pandas]')"
            ) from None
        from katib.client import trial_columns, trial_rows

        ns = namespace or self.namespace
        experiment = self._backend.get_experiment(ns, experiment_name)
        trials = self._backend.list_trials(ns, experiment_name)
        frame = pd.DataFrame(
            trial_rows(experiment, trials, typed=True), columns=trial_columns(experiment, trials)
        )
        for column in ("datetime_start", "datetime_complete"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        frame["duration"] = pd.to_timedelta(frame["duration"], unit="s")
        return frame

    def get_pareto_front(self, name: str, namespace: str | None = None) -> list[ParetoTrial]:
        """The Pareto front of an experiment with several objectives
        (``objective.additionalObjectives``): the trials no other trial dominates, best first
        on the objective metric. With one objective, the optimal trial alone (or [] while no
        trial has succeeded).

        Returns:
            :class:`ParetoTrial` items: ``name``, ``parameter_assignments``, ``observation``
            and ``objectives`` (each optimized metric's value after its metric strategy).

        Raises:
            NotFoundError: no such experiment.
        """
        best = self._backend.best_trial(namespace or self.namespace, name)
        if "paretoFront" in best:
            return [ParetoTrial.from_json(item) for item in best["paretoFront"]]
        if not best.get("bestTrialName"):
            return []
        metrics = {m["name"]: m for m in best["observation"]["metrics"]}
        experiment = self._backend.get_experiment(namespace or self.namespace, name)
        objective = experiment["spec"]["objective"]
        metric = objective["objectiveMetricName"]
        strategy = next(
            (s["value"] for s in objective.get("metricStrategies") or [] if s["name"] == metric),
            "latest",
        )
        summary = metrics.get(metric)
        return [
            ParetoTrial.from_json(
                {
                    "trialName": best["bestTrialName"],
                    "parameterAssignments": best["parameterAssignments"],
                    "observation": best["observation"],
                    "objectives": [
                        {"name": metric, "value": None if summary is None else summary[strategy]}
                    ],
                }
            )
        ]

    def get_trial(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Katib Trial (a camelCase dict with ``status``).

        Raises:
            NotFoundError: no such trial.
        """
        return self._backend.get_trial(namespace or self.namespace, name)

    def list_trials(
        self, experiment_name: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The trials of an experiment (or of every experiment in the namespace), oldest first.

        Raises:
            NotFoundError: the experiment does not exist.
        """
        ns = namespace or self.namespace
        if experiment_name is not None:
            return self._backend.list_trials(ns, experiment_name)
        return [
            trial
            for experiment in self._backend.list_experiments(ns)
            for trial in self._backend.list_trials(ns, experiment["metadata"]["name"])
        ]

    def get_success_trial_details(
        self, experiment_name: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Succeeded trials as ``{"name", "parameter_assignments", "metrics"}`` (Katib's).

        Raises:
            NotFoundError: the experiment does not exist.
        """
        return [
            {
                "name": t["metadata"]["name"],
                "parameter_assignments": t["spec"]["parameterAssignments"],
                "metrics": t["status"]["observation"]["metrics"],
            }
            for t in self.list_trials(experiment_name, namespace)
            if t["status"]["condition"] == TrialState.SUCCEEDED.value
        ]

    def get_trial_metrics(self, name: str, namespace: str | None = None) -> list[MetricLog]:
        """Every metric value the trial reported, oldest first (Katib's observation log).

        Raises:
            NotFoundError: no such trial.
        """
        return [
            MetricLog(
                str(point["timeStamp"]),
                LoggedMetric(str(point["metric"]["name"]), float(point["metric"]["value"])),
                point.get("step"),
            )
            for point in self._backend.trial_observations(namespace or self.namespace, name)
        ]

    def get_job_logs(self, name: str, namespace: str | None = None, follow: bool = False) -> str:
        """The output (stdout and stderr) of a trial's process.

        Args:
            name: The trial.
            namespace: Defaults to the client's.
            follow: Print the output to stdout as it comes until the trial ends, then return
                all of it.

        Returns:
            The log text; empty for a trial that never started.

        Raises:
            NotFoundError: no such trial, or its log was removed.
        """
        ns = namespace or self.namespace
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parts: list[str] = []
        try:
            for chunk in self._backend.log_chunks(ns, name, follow=follow, poll=LOG_POLL_SECONDS):
                text = decoder.decode(chunk)
                parts.append(text)
                if follow and text:
                    sys.stdout.write(text)
                    sys.stdout.flush()
        except NoLogError:
            never_started = self._backend.get_trial(ns, name)["status"].get("startTime") is None
            if follow or never_started:
                return ""
            raise
        rest = decoder.decode(b"", final=True)
        if follow and rest:
            sys.stdout.write(rest)
            sys.stdout.flush()
        return "".join(parts) + rest

    get_trial_logs = get_job_logs

    # Internals ----------------------------------------------------------------------------

    def _record(self, name: str, namespace: str | None) -> ExperimentRecord:
        return self._storage.get_experiment(namespace or self.namespace, name)

    def _validated(
        self, document: dict[str, Any], namespace: str | None, source: str | None
    ) -> Experiment:
        """The experiment, validated here (both modes), in ``namespace`` or the client's."""
        metadata = document.setdefault("metadata", {})
        if isinstance(metadata, dict):  # anything else is reported by parse_experiment
            if namespace:
                metadata["namespace"] = namespace
            elif not metadata.get("namespace"):
                metadata["namespace"] = self.namespace
        exp = parse_experiment(document, source)
        check_runnable(exp)
        return exp

    def _wait_finished(
        self, namespace: str, name: str, show_progress: bool | None = None
    ) -> dict[str, Any]:
        """The experiment once it has finished (a server runs it), however long it takes,
        with its trials' progress as :func:`katib.sdk._progress.wanted` says."""
        from katib.client import metric_values, objective_of

        progress: Progress | None = None
        seen: set[str] = set()
        counters: tuple[int, ...] = ()
        while True:
            experiment = self._backend.get_experiment(namespace, name)
            status = experiment["status"]
            done = status["condition"] in FINISHED
            if progress is None and wanted(show_progress):
                objective = objective_of(experiment)
                progress = Progress(
                    f"{namespace}/{name}",
                    objective.objective_metric_name or "objective",
                    experiment["spec"].get("maxTrialCount"),
                )
                progress.started(0)
            now = tuple(int(v) for k, v in status.items() if k.startswith("trial"))
            if progress is not None and (now != counters or done):
                counters = now
                objective = objective_of(experiment)
                trials = self._backend.list_trials(namespace, name)
                finished = [t for t in trials if t["status"]["condition"] not in ("Created",
                                                                                 "Running")]
                best = _best_value(experiment)
                for t in finished:
                    if t["metadata"]["name"] in seen:
                        continue
                    seen.add(t["metadata"]["name"])
                    value = metric_values(t, objective).get(objective.objective_metric_name or "")
                    progress.trial(_json_news(t, value), len(seen), best)
                if done:
                    optimal = status["currentOptimalTrial"]
                    best_news = None
                    if optimal["bestTrialName"]:
                        best_news = TrialNews(
                            optimal["bestTrialName"], "Succeeded", "",
                            {a["name"]: a["value"] for a in optimal["parameterAssignments"]},
                            best,
                        )
                    progress.finished(
                        status["condition"], status.get("message") or "", best_news,
                        _failures(self._backend, trials),
                    )
            if done:
                return experiment
            time.sleep(POLL_SECONDS)

    def _delete_remote(self, namespace: str, name: str) -> None:
        # Deleting first: a token that may not delete (an editor) is refused before anything
        # is stopped. The server refuses (409) while its controller still runs it.
        try:
            self._backend.delete_experiment(namespace, name)
            return
        except ConflictError:
            pass
        try:
            self._backend.stop_experiment(namespace, name)
        except ConflictError:
            pass  # it finished meanwhile
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while True:
            time.sleep(POLL_SECONDS)
            try:
                self._backend.delete_experiment(namespace, name)
                return
            except ConflictError as e:
                if time.monotonic() > deadline:
                    raise ConflictError(
                        f"experiment {namespace}/{name} did not stop within "
                        f"{STOP_WAIT_SECONDS:g} s; try again"
                    ) from e

    def _has_condition(
        self,
        condition: str,
        name: str,
        namespace: str | None,
        experiment: Mapping[str, Any] | None,
    ) -> bool:
        return any(
            c.get("type") == condition and c.get("status") == "True"
            for c in self.get_experiment_conditions(name, namespace, experiment)
        )

    def _check_progress(self, record: ExperimentRecord, idle_since: float | None) -> float | None:
        """Raise when waiting is pointless: nothing runs the unfinished experiment.

        Returns since when (monotonic) nothing has run the unfinished experiment, or None. A
        short spell is tolerated: a server's controller or a run being started takes it up
        within seconds.
        """
        if record.condition.is_finished or service.run_elsewhere(record):
            return None
        t = time.monotonic()
        if idle_since is None or t - idle_since < NOT_RUNNING_GRACE_SECONDS:
            return t if idle_since is None else idle_since
        raise NotRunningError(
            f"experiment {record.namespace}/{record.name} is {record.condition.value} but "
            f"nothing runs it: call run_experiment({record.name!r}) (embedded mode has no "
            "background controller), or `katib run` its file"
        )

    def _start(
        self, record: ExperimentRecord, *, wait: bool, show_progress: bool | None = None
    ) -> dict[str, Any]:
        """Run the experiment in this thread (``wait``) or in a new background thread.

        Progress is shown as :func:`katib.sdk._progress.wanted` says; a background run shows
        it only when asked (``show_progress=True``), as it would print into other output.

        The experiment is claimed here, before any thread starts, so that a second run of it
        (in this process or another) is refused at once.
        """
        where = f"{record.namespace}/{record.name}"
        if _run_here(record):
            raise ConflictError(f"experiment {where} is already running in this process")
        if service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {where} is being run by another controller ({record.owner})"
            )
        loop = ControllerLoop(
            self._storage,
            with_pipeline_runs(LocalProcessLauncher(katib_home())),
            logs_root=katib_home() / "logs",
            source=FixedExperiments([record]),
            push=LoopbackPush(),
            observer=_Observer(self._local_backend, wanted(show_progress) if wait else bool(
                show_progress
            )),
            interrupted_message=(
                f"Interrupted: run_experiment({record.name!r}) (or `katib restart "
                f"{record.name}`) resumes it"
            ),
        )
        loop.start_experiments()
        if wait:
            try:
                loop.run()
            except Interrupted as e:
                raise KeyboardInterrupt from e
        else:
            threading.Thread(
                target=_run_in_background,
                args=(loop, where),
                name=f"katib-{record.namespace}-{record.name}",
            ).start()
        return service.experiment_view(self._storage, self._storage.get_experiment_by_id(record.id))


def _best_value(experiment: Mapping[str, Any]) -> float | None:
    """The best objective value so far, from the experiment's ``currentOptimalTrial``."""
    from katib.client import metric_values, objective_of

    optimal = experiment["status"]["currentOptimalTrial"]
    objective = objective_of(experiment)
    fake = {"status": {"observation": optimal["observation"]}}
    return metric_values(fake, objective).get(objective.objective_metric_name or "")


def _run_in_background(loop: ControllerLoop, where: str) -> None:
    try:
        loop.run(handle_signals=False)
    except Exception:  # noqa: BLE001 - nobody to raise to: the experiment's status tells
        logger.exception("run of experiment %s failed", where)


def _run_here(record: ExperimentRecord) -> bool:
    """Whether a controller of this very process drives the experiment."""
    owner = record.owner or ""
    return owner.startswith(f"{socket.gethostname()}:{os.getpid()}:") and (
        service.run_elsewhere(record)
    )


def _refuse_finished(namespace: str, name: str, condition: str) -> None:
    if condition in FINISHED:
        raise ConflictError(
            f"experiment {namespace}/{name} already finished ({condition}); to run more "
            "trials give it a larger budget with edit_experiment_budget() (resumePolicy "
            "LongRunning or FromVolume)"
        )


def _plain(document: Mapping[str, Any]) -> dict[str, Any]:
    """A mutable copy of a document's top level and metadata (the rest is only read)."""
    out = dict(document)
    if isinstance(out.get("metadata"), Mapping):
        out["metadata"] = dict(out["metadata"])
    return out
