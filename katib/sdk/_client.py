"""``KatibClient``: Katib's Python SDK, working on this machine's experiments.

Method names and arguments are Katib's (``kubeflow.katib.KatibClient``) where they make sense
here. In embedded mode (``KatibClient()``) the client works on the database directly, with no
server and no background controller: an experiment runs while :meth:`KatibClient.tune` or
:meth:`KatibClient.run_experiment` drives it, in the calling thread (``wait=True``) or in a
background thread of this process (``wait=False``). Another process (``katib run``) may drive
it too; the database's claim keeps two controllers off one experiment.

Objects come back as Katib's JSON (camelCase dicts, exactly what ``katib get ... -o json``
prints and the REST API returns); the optimal trial and metric logs come back as small
dataclasses shaped like Katib's (see :mod:`katib.sdk._types`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from katib import service
from katib.controller import (
    ExperimentRun,
    Interrupted,
    Runner,
    RunObserver,
    check_runnable,
    new_owner_id,
)
from katib.errors import ConflictError, KatibError, NotFoundError
from katib.records import ExperimentCondition, ExperimentRecord, TrialRecord, TrialState
from katib.sdk._errors import (
    ExperimentFailedError,
    ExperimentTimeoutError,
    InvalidArgumentError,
    NotRunningError,
    RemoteModeUnavailableError,
)
from katib.sdk._objective import (
    SCRIPT_NAME,
    build_experiment,
    check_parameters,
    function_source,
    functions_dir,
    missing_packages,
    script_text,
    trial_call_spec,
)
from katib.sdk._types import (
    LoggedMetric,
    Metric,
    MetricLog,
    Observation,
    OptimalTrial,
    ParameterAssignment,
)
from katib.spec import Experiment, load_experiments, parse_experiment
from katib.storage import Storage, default_url, katib_home, normalize_url
from katib.views import trial_json

logger = logging.getLogger("katib.sdk")

CONDITIONS = tuple(c.value for c in ExperimentCondition)
#: How long delete_experiment() waits for a run of this process to stop.
STOP_WAIT_SECONDS = 60.0
#: How long wait_for_experiment_condition() watches an unfinished experiment that nothing
#: runs before it gives up (NotRunningError).
NOT_RUNNING_GRACE_SECONDS = 5.0


@dataclass
class _LocalRun:
    """An experiment this process drives (in some thread); the registry's entry."""

    thread: threading.Thread | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


# Keyed by (database URL, namespace, name). The database's claim cannot tell this process's
# threads apart (an owner is a process), so runs of this process are tracked here.
_runs: dict[tuple[str, str, str], _LocalRun] = {}
_runs_lock = threading.Lock()


class _LogObserver(RunObserver):
    """Progress as log records on the ``katib.sdk`` logger (silent unless logging is set up)."""

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

    def experiment_finished(self, run: ExperimentRun) -> None:
        logger.info(
            "%s/%s: %s %s",
            run.record.namespace,
            run.record.name,
            run.record.condition.value,
            run.record.message,
        )


class KatibClient:
    """Create, run, watch and inspect hyperparameter tuning experiments.

    ``KatibClient()`` works on the local database (``db``, else ``KATIB_DB``, else
    ``$KATIB_HOME/katib.db``); ``KatibClient(url, token)`` will talk to a ``katib server``.

    Args:
        url: A Katib server's URL (remote mode; not available yet).
        token: The API token for ``url``.
        namespace: The namespace methods use when they are not given one.
        db: Database URL or SQLite path (embedded mode).

    Raises:
        RemoteModeUnavailableError: ``url`` or ``token`` was given.
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
        if url is not None or token is not None:
            raise RemoteModeUnavailableError(
                "KatibClient(url, token): the SDK's remote mode (through a katib server) is not "
                "available yet; use KatibClient() (or KatibClient(db=URL)) to work on the "
                "database directly"
            )
        self.namespace = namespace
        self.db_url = normalize_url(db) if db else default_url()
        self._storage = Storage.open(self.db_url)

    def close(self) -> None:
        """Release database connections (runs in background threads keep going)."""
        self._storage.close()

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
        """Validate and store an experiment (condition Created); run it with run_experiment().

        Args:
            experiment: A YAML file's path (one experiment), a Katib Experiment document
                (camelCase dict), or an :class:`~katib.spec.Experiment`.
            namespace: Overrides ``metadata.namespace``; without either, the client's.

        Returns:
            The stored Katib Experiment (a dict, with ``status``).

        Raises:
            InvalidExperimentError: with every problem and its field path.
            ConflictError: an experiment of that name exists in the namespace.
            NotRunnableError: it is valid but cannot run here (NAS).
        """
        source_dir = os.getcwd()
        if isinstance(experiment, str | os.PathLike):
            path = Path(experiment)
            loaded = load_experiments(path)
            if len(loaded) != 1:
                raise InvalidArgumentError(
                    f"{path} holds {len(loaded)} experiments; create_experiment takes one "
                    "(`katib run` runs a file of several side by side)"
                )
            document: Any = loaded[0].to_wire()
            source_dir = str(path.resolve().parent)
            source = str(path)
        elif isinstance(experiment, Experiment):
            document, source = experiment.to_wire(), None
        elif isinstance(experiment, Mapping):
            document, source = _plain(experiment), None
        else:
            raise InvalidArgumentError(
                "experiment must be a YAML file path, a dict or a katib.spec.Experiment, "
                f"got {type(experiment).__name__}"
            )
        record = self._store(document, namespace, source_dir, source)
        return service.experiment_view(self._storage, record)

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
    ) -> dict[str, Any]:
        """Tune a Python function: each trial calls ``objective(parameters)`` in its own process.

        The function's source is written into a script under
        ``$KATIB_HOME/functions/<namespace>/<name>/``, so it must be self-contained (imports
        inside it). Trials run in the current folder. The function reports metrics in any of
        three ways: printing ``name=value`` lines (the StdOut collector reads them), calling
        ``katib.report_metrics({...})``, or returning a dict of metrics (or one number: the
        objective metric's value).

        Args:
            name: The experiment's name.
            objective: A function of one argument, the dict of parameter values.
            parameters: ``{name: search.double(...) | search.int(...) | search.categorical(...)
                | a fixed value}``; the function gets every entry, tuned ones with a value of
                this trial (float, int, or the list's own value).
            base_image: The container image on a cluster (locally, this Python runs trials).
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
            packages_to_install: Locally nothing is installed: trials use this Python, and the
                packages must already be installed in it (checked here).
            pip_index_url: Accepted for Katib compatibility; unused locally.
            metrics_collector_config: ``{"kind": "StdOut"}`` (default) or ``{"kind": "Push"}``.
            wait: Run the experiment to its end before returning (default); with False it
                runs in a background thread of this process (which then waits for it before
                exiting; stop_experiment() ends it early).

        Returns:
            The Katib Experiment (a dict with ``status``), finished when ``wait``.

        Raises:
            ObjectiveFunctionError: the function cannot run as trials (a lambda, no source,
                names defined outside it, not one argument).
            InvalidArgumentError: ``parameters`` or another argument is unusable, or
                ``packages_to_install`` are not installed.
            InvalidExperimentError: the resulting experiment is invalid (field errors).
            ConflictError: the experiment exists already.
            KeyboardInterrupt: interrupted while waiting; the trials were stopped and
                run_experiment() resumes it.
        """
        del pip_index_url  # nothing is installed locally
        ns = namespace or self.namespace
        for what, value in (("name", name), ("namespace", ns)):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"{what}: expected a non-empty string, got {value!r}")
        params = check_parameters(parameters)
        source = function_source(objective)
        if packages_to_install:
            missing = missing_packages(list(packages_to_install))
            if missing:
                raise InvalidArgumentError(
                    "packages_to_install: trials run in this Python environment "
                    f"({sys.executable}), which does not have {', '.join(missing)}; install "
                    "them first (pip install ...)"
                )
        script = functions_dir(ns, name) / SCRIPT_NAME
        document = build_experiment(
            name=name,
            namespace=ns,
            parameters=params,
            script=script,
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
        )
        call_spec = trial_call_spec(params, objective_metric_name)
        # Stored held, so that no controller (a server on this database) starts a trial
        # before its script exists.
        holder = new_owner_id()
        record = self._store(document, ns, os.getcwd(), None, owner=holder)
        try:
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(script_text(source, call_spec, ns, name))
        except OSError as e:
            self._storage.delete_experiment(ns, name)
            raise KatibError(f"cannot write the trial script {script}: {e}") from e
        self._storage.release(record.id, holder)
        record = self._storage.get_experiment_by_id(record.id)
        logger.info("experiment %s/%s created; trials run %s", ns, name, script)
        return self._start(record, wait=wait)

    def run_experiment(
        self, name: str, namespace: str | None = None, *, wait: bool = True
    ) -> dict[str, Any]:
        """Run a stored experiment (created, interrupted or restarted) to its end, here.

        Embedded mode's counterpart of the controller: what ``katib run`` does for a file.

        Args:
            name: The experiment.
            namespace: Defaults to the client's.
            wait: Return when it has finished (default); with False it runs in a background
                thread of this process (which then waits for it before exiting).

        Returns:
            The Katib Experiment (a dict with ``status``).

        Raises:
            NotFoundError: no such experiment.
            ConflictError: it finished already (edit_experiment_budget() restarts one whose
                resumePolicy allows it), or something else runs it.
            KeyboardInterrupt: interrupted while waiting; the trials were stopped and running
                it again resumes it.
        """
        record = self._record(name, namespace)
        where = f"{record.namespace}/{record.name}"
        if record.condition.is_finished:
            raise ConflictError(
                f"experiment {where} already finished ({record.condition.value}); to run more "
                "trials give it a larger budget with edit_experiment_budget() (resumePolicy "
                "LongRunning or FromVolume)"
            )
        check_runnable(record.spec)
        return self._start(record, wait=wait)

    def stop_experiment(self, name: str, namespace: str | None = None) -> None:
        """Stop a running experiment: its trials are killed and it ends as Succeeded.

        Raises:
            NotFoundError: no such experiment.
            ConflictError: it has finished already.
        """
        record = self._record(name, namespace)
        running = self._running_here(record) is not None or service.run_elsewhere(record)
        service.stop_experiment(self._storage, record, running=running)

    def delete_experiment(self, name: str, namespace: str | None = None) -> None:
        """Delete an experiment with its trials, metrics, logs and function script.

        An experiment this process runs is stopped first; one that another process runs is
        refused.

        Raises:
            NotFoundError: no such experiment.
            ConflictError: another process runs it (stop it first).
        """
        record = self._record(name, namespace)
        where = f"{record.namespace}/{record.name}"
        local = self._running_here(record)
        if local is not None:
            if not record.condition.is_finished:
                service.stop_experiment(self._storage, record, running=True)
            if not local.finished.wait(STOP_WAIT_SECONDS):
                raise ConflictError(f"experiment {where} did not stop; try again")
        elif service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {where} is being run by another process ({record.owner}); "
                "stop it first"
            )
        service.delete_experiment(self._storage, record)
        with _runs_lock:
            _runs.pop(self._key(record), None)

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
        Restarting, and (embedded mode having no background controller) run_experiment()
        runs the new trials.

        Returns:
            The Katib Experiment (a dict with ``status``).

        Raises:
            InvalidArgumentError: no count was given.
            InvalidExperimentError: the counts break the experiment's rules.
            ConflictError: a finished experiment cannot restart (resumePolicy Never, or
                maxTrialCount not above the trials already run).
        """
        if max_trial_count is None and parallel_trial_count is None and (
            max_failed_trial_count is None
        ):
            raise InvalidArgumentError(
                "give max_trial_count, parallel_trial_count or max_failed_trial_count to change "
                "the experiment's trial budget"
            )
        record = self._record(name, namespace)
        counts = {
            "max_trial_count": max_trial_count,
            "parallel_trial_count": parallel_trial_count,
            "max_failed_trial_count": max_failed_trial_count,
        }
        if record.condition.is_finished:
            record = service.restart_experiment(self._storage, record, **counts)
        else:
            record = service.apply_budget(self._storage, record, **counts)
        return service.experiment_view(self._storage, record)

    # Watching -----------------------------------------------------------------------------

    def get_experiment(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Katib Experiment (a camelCase dict with ``status``).

        Raises:
            NotFoundError: no such experiment.
        """
        return service.experiment_view(self._storage, self._record(name, namespace))

    def list_experiments(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The experiments of a namespace (default: the client's), oldest first."""
        records = self._storage.list_experiments(namespace or self.namespace)
        return [service.experiment_view(self._storage, r) for r in records]

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
            ExperimentTimeoutError: the condition was not reached within ``timeout``
                (a ``TimeoutError``).
            ExperimentFailedError: the experiment Failed while another condition was expected
                (a ``RuntimeError``).
            NotRunningError: the experiment has not finished and nothing has run it for a
                few seconds (embedded mode has no background controller: call
                run_experiment()).
            KatibError: this process's background run of it crashed.
        """
        if expected_condition not in CONDITIONS:
            raise InvalidArgumentError(
                f"expected_condition: {expected_condition!r} is not one of {', '.join(CONDITIONS)}"
            )
        ns = namespace or self.namespace
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        while True:
            record = self._record(name, ns)
            experiment = service.experiment_view(self._storage, record)
            conditions = self.get_experiment_conditions(name, ns, experiment)
            reached = {c["type"] for c in conditions if c.get("status") == "True"}
            if expected_condition in reached:
                return experiment
            if "Failed" in reached:
                raise ExperimentFailedError(
                    f"experiment {ns}/{name} Failed ({record.message}) while waiting for "
                    f"{expected_condition}"
                )
            idle_since = self._check_progress(record, idle_since)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExperimentTimeoutError(
                    f"experiment {ns}/{name} did not reach {expected_condition} within "
                    f"{timeout:g} s (it is {record.condition.value})"
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
            the assignments as a dict.
        """
        record = self._record(name, namespace)
        best = service.best_trial(self._storage, record)
        if best is None or not best.metrics:
            return None
        return OptimalTrial(
            best_trial_name=best.name,
            parameter_assignments=[
                ParameterAssignment(k, v) for k, v in best.assignments.items()
            ],
            observation=Observation(
                [Metric(m.name, m.min, m.max, m.latest) for m in best.metrics.values()]
            ),
        )

    def get_trial(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The Katib Trial (a camelCase dict with ``status``).

        Raises:
            NotFoundError: no such trial.
        """
        trial = self._storage.get_trial(namespace or self.namespace, name)
        experiment = self._storage.get_experiment_by_id(trial.experiment_id)
        return trial_json(trial, experiment.name)

    def list_trials(
        self, experiment_name: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The trials of an experiment (or of every experiment in the namespace), oldest first.

        Raises:
            NotFoundError: the experiment does not exist.
        """
        ns = namespace or self.namespace
        if experiment_name is not None:
            records = [self._record(experiment_name, ns)]
        else:
            records = self._storage.list_experiments(ns)
        return [
            trial_json(t, r.name) for r in records for t in self._storage.list_trials(r.id)
        ]

    def get_success_trial_details(
        self, experiment_name: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Succeeded trials as ``{"name", "parameter_assignments", "metrics"}`` (Katib's)."""
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
        trial = self._storage.get_trial(namespace or self.namespace, name)
        return [
            MetricLog(_time_stamp(p.timestamp), LoggedMetric(p.metric_name, p.value), p.step)
            for p in self._storage.get_observations(trial.id)
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
        trial = self._storage.get_trial(namespace or self.namespace, name)
        path = service.trial_log_path(self._storage, trial)
        if follow:
            return self._follow(trial, path)
        if not path.exists():
            if trial.started_at is None:
                return ""
            raise NotFoundError(f"no log for trial {trial.namespace}/{name} (looked in {path})")
        return path.read_text(errors="replace")

    get_trial_logs = get_job_logs

    # Internals ----------------------------------------------------------------------------

    def _record(self, name: str, namespace: str | None) -> ExperimentRecord:
        return self._storage.get_experiment(namespace or self.namespace, name)

    def _key(self, record: ExperimentRecord) -> tuple[str, str, str]:
        return (self.db_url, record.namespace, record.name)

    def _store(
        self,
        document: dict[str, Any],
        namespace: str | None,
        source_dir: str,
        source: str | None,
        *,
        owner: str | None = None,
    ) -> ExperimentRecord:
        metadata = document.setdefault("metadata", {})
        if isinstance(metadata, dict):  # anything else is reported by parse_experiment
            if namespace:
                metadata["namespace"] = namespace
            elif not metadata.get("namespace"):
                metadata["namespace"] = self.namespace
        exp = parse_experiment(document, source)
        check_runnable(exp)
        return self._storage.create_experiment(exp, source_dir=source_dir, owner=owner)

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

    def _running_here(self, record: ExperimentRecord) -> _LocalRun | None:
        with _runs_lock:
            run = _runs.get(self._key(record))
        return run if run is not None and not run.finished.is_set() else None

    def _check_progress(self, record: ExperimentRecord, idle_since: float | None) -> float | None:
        """Raise when waiting is pointless: the run here crashed, or nothing runs it.

        Returns since when (monotonic) nothing has run the unfinished experiment, or None. A
        short spell is tolerated: a server's controller or a run being started takes it up
        within seconds.
        """
        with _runs_lock:
            local = _runs.get(self._key(record))
        if local is not None and local.error is not None:
            raise KatibError(
                f"the run of experiment {record.namespace}/{record.name} in this process "
                f"failed: {type(local.error).__name__}: {local.error}"
            ) from local.error
        if record.condition.is_finished:
            return None
        if (local is not None and not local.finished.is_set()) or service.run_elsewhere(record):
            return None
        t = time.monotonic()
        if idle_since is None or t - idle_since < NOT_RUNNING_GRACE_SECONDS:
            return t if idle_since is None else idle_since
        raise NotRunningError(
            f"experiment {record.namespace}/{record.name} is {record.condition.value} but "
            f"nothing runs it: call run_experiment({record.name!r}) (embedded mode has no "
            "background controller), or `katib run` its file"
        )

    def _start(self, record: ExperimentRecord, *, wait: bool) -> dict[str, Any]:
        """Run the experiment in this thread (``wait``) or in a new background thread."""
        key = self._key(record)
        where = f"{record.namespace}/{record.name}"
        if service.run_elsewhere(record):
            raise ConflictError(
                f"experiment {where} is being run by another process ({record.owner})"
            )
        with _runs_lock:
            current = _runs.get(key)
            if current is not None and not current.finished.is_set():
                raise ConflictError(f"experiment {where} is already running in this process")
            local = _runs[key] = _LocalRun()
        if wait:
            try:
                self._drive(record)
            except Interrupted as e:
                raise KeyboardInterrupt from e
            finally:
                local.finished.set()
        else:
            local.thread = threading.Thread(
                target=self._drive_in_background,
                args=(record, local),
                name=f"katib-{record.namespace}-{record.name}",
            )
            local.thread.start()
        return service.experiment_view(self._storage, self._storage.get_experiment_by_id(record.id))

    def _drive(self, record: ExperimentRecord) -> None:
        runner = Runner(self._storage, logs_root=katib_home() / "logs", observer=_LogObserver())
        runner.add(record)
        runner.run()

    def _drive_in_background(self, record: ExperimentRecord, local: _LocalRun) -> None:
        try:
            self._drive(record)
        except Exception as e:  # noqa: BLE001 - kept for wait_for_experiment_condition()
            local.error = e
            logger.exception("run of experiment %s/%s failed", record.namespace, record.name)
        finally:
            local.finished.set()

    def _follow(self, trial: TrialRecord, path: Path) -> str:
        chunks: list[str] = []
        while not path.exists():
            if not self._storage.get_trial(trial.namespace, trial.name).state.is_active:
                return ""
            time.sleep(0.2)
        with open(path, encoding="utf-8", errors="replace") as f:
            while True:
                chunk = f.read()
                if chunk:
                    chunks.append(chunk)
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
                    continue
                if not self._storage.get_trial(trial.namespace, trial.name).state.is_active:
                    rest = f.read()
                    chunks.append(rest)
                    sys.stdout.write(rest)
                    sys.stdout.flush()
                    return "".join(chunks)
                time.sleep(0.2)


def _plain(document: Mapping[str, Any]) -> dict[str, Any]:
    """A mutable copy of a document's top level and metadata (the rest is only read)."""
    out = dict(document)
    if isinstance(out.get("metadata"), Mapping):
        out["metadata"] = dict(out["metadata"])
    return out


def _time_stamp(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
