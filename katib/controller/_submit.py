"""Admitting an experiment for a run: create it, or decide whether a stored one may resume."""

from __future__ import annotations

from katib.controller._run import owner_alive
from katib.errors import ConflictError, KatibError
from katib.records import ExperimentRecord
from katib.spec import Experiment, validate_restart
from katib.storage import Storage


class NotRunnableError(KatibError):
    """The experiment is valid but this machine cannot run it (NAS, a cluster-only source)."""


def check_runnable(exp: Experiment) -> None:
    if exp.spec.nas_config is not None:
        raise NotRunnableError(
            f"experiment {exp.name}: neural architecture search (nasConfig) validates but "
            "cannot be run yet"
        )


def admit(storage: Storage, exp: Experiment, *, source_dir: str) -> ExperimentRecord:
    """The stored experiment to run: newly created, or an interrupted one to resume.

    Raises ConflictError when the stored experiment finished already, is being run by another
    live process, or differs from ``exp`` in more than the three trial counts.
    """
    check_runnable(exp)
    try:
        stored = storage.get_experiment(exp.namespace, exp.name)
    except KatibError:
        return storage.create_experiment(exp, source_dir=source_dir)
    where = f"{exp.namespace}/{exp.name}"
    if stored.condition.is_finished:
        raise ConflictError(
            f"experiment {where} already finished ({stored.condition.value}); "
            f"see `katib describe experiment {exp.name}`, or `katib delete experiment "
            f"{exp.name}` to run it from scratch"
        )
    if owner_alive(stored.owner, stored.owner_heartbeat):
        raise ConflictError(f"experiment {where} is being run by another process ({stored.owner})")
    trials_run = sum(storage.count_trials(stored.id).values())
    problems = validate_restart(stored.spec, exp, trials_run)
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise ConflictError(
            f"experiment {where} exists with a different spec ({details}); only maxTrialCount, "
            "parallelTrialCount and maxFailedTrialCount may change when resuming"
        )
    new, old = exp.spec, stored.spec.spec
    counts = (new.max_trial_count, new.parallel_trial_count, new.max_failed_trial_count)
    if counts != (old.max_trial_count, old.parallel_trial_count, old.max_failed_trial_count):
        old.max_trial_count, old.parallel_trial_count, old.max_failed_trial_count = counts
        storage.update_experiment(stored.id, spec=stored.spec)
    if source_dir and source_dir != stored.source_dir:
        storage.update_experiment(stored.id, source_dir=source_dir)
        stored.source_dir = source_dir
    return stored
