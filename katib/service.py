"""Operations on stored experiments that more than one interface needs.

The CLI and the SDK's embedded mode stop, edit, restart and delete experiments and find
trials' logs the same way; the rules live here once. Each function takes
a :class:`~katib.storage.Storage` and records, and raises the project's errors
(:class:`~katib.errors.ConflictError` for a refusal, :class:`~katib.errors.NotFoundError`,
:class:`~katib.errors.InvalidExperimentError`); none prints or exits.

Whether an experiment is being run right now is the caller's knowledge (another process's
live claim, or a run in this very process), so functions that depend on it take it as an
argument.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from katib._time import now
from katib.controller import (
    best_trial,
    best_trials,
    live_owner,
    owner_alive,
    pareto_front_of,
)
from katib.errors import ConflictError, FieldError, InvalidExperimentError
from katib.records import (
    Condition,
    ExperimentCondition,
    ExperimentRecord,
    TrialRecord,
    TrialResult,
    TrialState,
)
from katib.spec import validate_experiment
from katib.storage import Storage, katib_home
from katib.views import best_trial_json, experiment_json, pareto_front_json

#: Folders under KATIB_HOME that hold files of one experiment, by namespace and name.
EXPERIMENT_FOLDERS = ("logs", "checkpoints", "trials", "functions")
REASON_STOPPED = "ExperimentStoppedByUser"


def run_elsewhere(record: ExperimentRecord) -> bool:
    """Whether a live controller drives the experiment: another process's, another host's,
    or another loop of this process."""
    return owner_alive(record.owner, record.owner_heartbeat)


def interrupted(record: ExperimentRecord) -> bool:
    """Whether the experiment was left unfinished by a controller that is gone (Ctrl-C, a
    crash, a stopped server): it has started (Running, or Restarting) and nothing drives it.
    It resumes when it is run again."""
    started = record.condition in (ExperimentCondition.RUNNING, ExperimentCondition.RESTARTING)
    return started and not run_elsewhere(record)


def experiment_view(storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
    """The Katib Experiment object with status, as ``katib get experiments -o json`` and the
    REST API have it (``status.archived`` and ``status.interrupted`` added)."""
    return experiments_view(storage, [record])[0]


def experiments_view(
    storage: Storage, records: Sequence[ExperimentRecord]
) -> list[dict[str, Any]]:
    """:func:`experiment_view` of many experiments with a fixed number of queries."""
    ids = [r.id for r in records]
    counts = storage.count_trials_many(ids)
    best = best_trials(storage, records)
    archived = storage.archived_ids(ids)
    out = []
    for r in records:
        body = experiment_json(r, counts[r.id], best[r.id])
        body["status"]["archived"] = r.id in archived
        body["status"]["interrupted"] = interrupted(r)
        out.append(body)
    return out


def best_view(storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
    """The optimal trial as ``katib best -o json`` and the REST API have it; with several
    objectives, with the Pareto front (``paretoFront``) beside Katib's fields."""
    objective = record.spec.spec.objective
    front = (
        pareto_front_of(storage, record)
        if objective is not None and objective.is_multi_objective
        else None
    )
    return best_trial_json(record, best_trial(storage, record), front)


def pareto_view(storage: Storage, record: ExperimentRecord) -> dict[str, Any]:
    """The experiment's objectives and Pareto front (one objective: its best trials)."""
    return pareto_front_json(record, pareto_front_of(storage, record))


def apply_budget(
    storage: Storage,
    record: ExperimentRecord,
    *,
    max_trial_count: int | None = None,
    parallel_trial_count: int | None = None,
    max_failed_trial_count: int | None = None,
) -> ExperimentRecord:
    """Store new trial counts (a running controller picks them up at its next heartbeat).

    Raises:
        InvalidExperimentError: the counts break the experiment's rules.
    """
    spec = record.spec.model_copy(deep=True)
    if max_trial_count is not None:
        spec.spec.max_trial_count = max_trial_count
    if parallel_trial_count is not None:
        spec.spec.parallel_trial_count = parallel_trial_count
    if max_failed_trial_count is not None:
        spec.spec.max_failed_trial_count = max_failed_trial_count
    errors = validate_experiment(spec)
    if errors:
        raise InvalidExperimentError(errors, f"{record.namespace}/{record.name}")
    storage.update_experiment(record.id, spec=spec)
    record.spec = spec
    return record


def change_budget(
    storage: Storage,
    record: ExperimentRecord,
    *,
    max_trial_count: int | None = None,
    parallel_trial_count: int | None = None,
    max_failed_trial_count: int | None = None,
) -> ExperimentRecord:
    """The one rule for budget edits: ``katib edit``, the API's PATCH, the SDK's
    ``edit_experiment_budget``.

    An unfinished experiment (created, running, interrupted, restarting) takes the new counts;
    the controller that drives it picks them up within seconds. A finished one is restarted
    with them, as Katib does, when its resumePolicy allows it (it becomes Restarting and its
    next run adds trials), and refused otherwise, with how to continue.

    Raises:
        ConflictError: a finished experiment whose resumePolicy is Never.
        InvalidExperimentError: the counts break the experiment's rules, or a finished
            experiment's maxTrialCount would not exceed the trials already run.
    """
    counts = {
        "max_trial_count": max_trial_count,
        "parallel_trial_count": parallel_trial_count,
        "max_failed_trial_count": max_failed_trial_count,
    }
    if record.condition.is_finished:
        return restart_experiment(storage, record, **counts)
    return apply_budget(storage, record, **counts)


def refuse_never(record: ExperimentRecord) -> None:
    """Refuse more trials for a finished experiment whose resumePolicy is Never, saying how to
    continue.

    Raises:
        ConflictError: its resumePolicy is Never.
    """
    policy = record.spec.spec.resume_policy or "Never"
    if policy != "Never":
        return
    raise ConflictError(
        f"experiment {record.namespace}/{record.name} finished ({record.condition.value}) "
        "with resumePolicy Never, so it cannot run more trials; an experiment created "
        "with `resumePolicy: LongRunning` in its spec (tune(..., resume_policy=\"LongRunning\")) "
        "can restart with a larger budget. To continue: delete it (`katib delete experiment "
        f"{record.name}`) and run it again, or run it under a new name"
    )


def restart_experiment(
    storage: Storage,
    record: ExperimentRecord,
    *,
    max_trial_count: int | None = None,
    parallel_trial_count: int | None = None,
    max_failed_trial_count: int | None = None,
) -> ExperimentRecord:
    """Give a finished experiment a new budget and mark it Restarting (Katib's resume).

    Running it again is the caller's business. Returns the updated record.

    Raises:
        ConflictError: it has not finished, or its resumePolicy is Never.
        InvalidExperimentError: the counts break the experiment's rules, or maxTrialCount
            does not exceed the trials already run.
    """
    where = f"{record.namespace}/{record.name}"
    if not record.condition.is_finished:
        raise ConflictError(f"experiment {where} has not finished ({record.condition.value})")
    refuse_never(record)
    trials_run = sum(storage.count_trials(record.id).values())
    new_max = max_trial_count if max_trial_count is not None else record.spec.spec.max_trial_count
    if new_max is not None and new_max <= trials_run:
        raise InvalidExperimentError(
            [
                FieldError(
                    "spec.maxTrialCount",
                    f"must exceed the {trials_run} trials already run, got {new_max}",
                )
            ],
            where,
        )
    apply_budget(
        storage,
        record,
        max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count,
        max_failed_trial_count=max_failed_trial_count,
    )
    t = now()
    conditions = [c for c in record.conditions if c.type not in ("Succeeded", "Failed")]
    conditions.append(
        Condition("Restarting", "True", "ExperimentRestarting", "Experiment is restarting", t)
    )
    storage.update_experiment(
        record.id,
        condition=ExperimentCondition.RESTARTING,
        conditions=conditions,
        completed_at=None,
        stop_requested=False,
        message="",
    )
    return storage.get_experiment_by_id(record.id)


def stop_experiment(storage: Storage, record: ExperimentRecord, *, running: bool) -> bool:
    """Stop an experiment: its trials are killed and it ends as Succeeded, as Katib's stop.

    When ``running``, the controller that drives it is asked to, and does within seconds;
    otherwise (an interrupted run, or one never started) it is ended here.

    Returns:
        True if it was ended here, False if its controller was asked to.

    Raises:
        ConflictError: it has finished already.
    """
    where = f"{record.namespace}/{record.name}"
    if record.condition.is_finished:
        raise ConflictError(f"experiment {where} already finished ({record.condition.value})")
    storage.update_experiment(record.id, stop_requested=True)
    if running:
        return False
    # Here, not at the top: the decisions module loads the launch and early-stopping code,
    # which the read commands that import this module never need.
    from katib.controller import REASON_EXPERIMENT_DONE

    # Hold the experiment while ending it, so that no controller starts it meanwhile.
    with live_owner() as holder:
        if not storage.claim(record.id, holder, expected=record.owner):
            return False  # a controller took it just now; it sees the stop request
        try:
            t = now()
            killed = TrialResult(
                TrialState.KILLED, REASON_EXPERIMENT_DONE, "Experiment was stopped", t
            )
            for trial in storage.list_trials(record.id, [TrialState.CREATED, TrialState.RUNNING]):
                storage.finish_trial(trial.id, killed)
            message = "Experiment was stopped by the user"
            stopped = Condition("Succeeded", "True", REASON_STOPPED, message, t)
            storage.update_experiment(
                record.id,
                condition=ExperimentCondition.SUCCEEDED,
                conditions=[*record.conditions, stopped],
                completed_at=t,
                message=message,
            )
        finally:
            storage.release(record.id, holder)
    return True


def delete_experiment(storage: Storage, record: ExperimentRecord) -> None:
    """Delete an experiment that nothing runs: rows, logs, checkpoints and function scripts."""
    storage.delete_experiment(record.namespace, record.name)
    home = katib_home()
    for folder in EXPERIMENT_FOLDERS:
        shutil.rmtree(home / folder / record.namespace / record.name, ignore_errors=True)


def trial_log_path(storage: Storage, trial: TrialRecord) -> Path:
    """Where the trial's output is (whether or not it exists yet)."""
    exp = storage.get_experiment_by_id(trial.experiment_id)
    return katib_home() / "logs" / exp.namespace / exp.name / f"{trial.name}.log"
