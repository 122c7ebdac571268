"""What the experiment and trial endpoints change, over the rules shared with the CLI and SDK.

Stop, restart, budget edits and deletion follow :mod:`katib.service` (the rules of ``katib
stop``, ``restart``, ``edit``, ``delete``); this module adds what only a server knows: whether
its own controller runs an experiment, killing single trials, and archiving.
"""

from __future__ import annotations

from katib import service
from katib._time import now
from katib.controller import REASON_KILLED_BY_USER, BackgroundController, owner_alive
from katib.errors import ConflictError, FieldError, InvalidExperimentError
from katib.records import ExperimentRecord, TrialRecord, TrialResult, TrialState
from katib.storage import Storage

__all__ = ["apply_budget", "delete", "kill_trial", "restart", "stop"]


def is_driven(record: ExperimentRecord, controller: BackgroundController | None) -> bool:
    """Whether a controller (this server's, or another live process) runs the experiment."""
    if controller is not None and controller.drives(record.id):
        return True
    return owner_alive(record.owner, record.owner_heartbeat)


def stop(
    storage: Storage, record: ExperimentRecord, controller: BackgroundController | None
) -> tuple[ExperimentRecord, bool]:
    """Stop an experiment; returns it and whether it has already ended (else: it will soon)."""
    ended = service.stop_experiment(storage, record, running=is_driven(record, controller))
    return storage.get_experiment_by_id(record.id), ended


def apply_budget(
    storage: Storage,
    record: ExperimentRecord,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
) -> ExperimentRecord:
    """New trial counts, by the one rule of :func:`katib.service.change_budget` (a finished
    experiment restarts when its resumePolicy allows it, and is refused otherwise)."""
    if max_trial_count is None and parallel_trial_count is None and max_failed_trial_count is None:
        raise InvalidExperimentError(
            [
                FieldError(
                    "",
                    "nothing to change: give maxTrialCount, parallelTrialCount or "
                    "maxFailedTrialCount",
                )
            ]
        )
    return service.change_budget(
        storage,
        record,
        max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count,
        max_failed_trial_count=max_failed_trial_count,
    )


def restart(
    storage: Storage,
    record: ExperimentRecord,
    max_trial_count: int | None,
    parallel_trial_count: int | None,
    max_failed_trial_count: int | None,
) -> ExperimentRecord:
    """Mark a finished experiment Restarting with a new budget (a controller then runs it)."""
    return service.restart_experiment(
        storage,
        record,
        max_trial_count=max_trial_count,
        parallel_trial_count=parallel_trial_count,
        max_failed_trial_count=max_failed_trial_count,
    )


def delete(
    storage: Storage, record: ExperimentRecord, controller: BackgroundController | None
) -> None:
    """Delete a stopped experiment with its trials, observations, logs and checkpoints."""
    if is_driven(record, controller):
        where = f"{record.namespace}/{record.name}"
        raise ConflictError(f"experiment {where} is running; stop it first")
    service.delete_experiment(storage, record)


def set_archived(storage: Storage, record: ExperimentRecord, archived: bool) -> None:
    if archived and not record.condition.is_finished:
        raise ConflictError(
            f"experiment {record.namespace}/{record.name} has not finished "
            f"({record.condition.value}); stop it before archiving it"
        )
    storage.set_archived(record.id, archived)


def kill_trial(
    storage: Storage, trial: TrialRecord, controller: BackgroundController | None
) -> tuple[TrialRecord, bool]:
    """Kill a trial; returns it and whether it has ended already (else: it will soon)."""
    where = f"{trial.namespace}/{trial.name}"
    if not trial.state.is_active:
        raise ConflictError(f"trial {where} already finished ({trial.state.value})")
    record = storage.get_experiment_by_id(trial.experiment_id)
    if controller is not None and controller.drives(record.id):
        if not controller.kill_trial(trial.namespace, trial.name):
            raise ConflictError(
                f"trial {where} has not started yet; stop the experiment or lower its "
                "budget instead"
            )
        return trial, False
    if owner_alive(record.owner, record.owner_heartbeat):
        raise ConflictError(
            f"trial {where} is run by another controller ({record.owner}); kill it there"
        )
    if controller is not None:
        # Left running by a controller that died: only a launcher can stop its workload.
        controller.launcher.clean_up(trial.name, trial.pid, trial.started_at)
    storage.finish_trial(
        trial.id,
        TrialResult(
            TrialState.KILLED, REASON_KILLED_BY_USER, "Trial was killed by the user", now()
        ),
    )
    return storage.get_trial(trial.namespace, trial.name), True
