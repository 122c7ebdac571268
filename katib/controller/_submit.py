"""Admitting an experiment for a run: create it, or decide whether a stored one may resume.

The resume rule is written once, in :func:`resume_counts`, for a run on this machine
(:func:`admit`) and for ``katib run --server`` attaching to a server's experiment: a
finished experiment is never run again this way, and a stored one may only change its
three trial counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from katib.controller._owner import owner_alive
from katib.controller._warm_start import check_warm_start
from katib.errors import ConflictError, KatibError
from katib.records import ExperimentRecord
from katib.spec import Experiment, validate_restart
from katib.storage import Storage


class NotRunnableError(KatibError):
    """The experiment is valid but this machine cannot run it (a cluster-only source)."""


@dataclass(frozen=True)
class TrialCounts:
    """An experiment's three trial counts: what a resume may change."""

    max_trial_count: int | None
    parallel_trial_count: int | None
    max_failed_trial_count: int | None

    @classmethod
    def of(cls, exp: Experiment) -> TrialCounts:
        spec = exp.spec
        return cls(spec.max_trial_count, spec.parallel_trial_count, spec.max_failed_trial_count)


def check_runnable(exp: Experiment, storage: Storage | None = None) -> None:
    """Refuse what this machine cannot run; with ``storage``, also an experiment whose
    ``spec.warmStart`` names missing or incompatible experiments.

    Raises:
        InvalidExperimentError: the warm-start sources (see :func:`check_warm_start`).
    """
    if storage is not None:
        check_warm_start(storage, exp)


def resume_counts(
    stored: Experiment, condition_finished: bool, condition: str, new: Experiment, trials_run: int
) -> TrialCounts | None:
    """Whether ``new`` may resume the stored experiment: the counts to store, or None.

    Returns the new trial counts when they differ from the stored ones, None when nothing
    needs changing.

    Raises:
        ConflictError: the stored experiment finished already, or ``new`` differs from it in
            more than the three trial counts.
    """
    where = f"{stored.namespace}/{stored.name}"
    if condition_finished:
        raise ConflictError(
            f"experiment {where} already finished ({condition}); see `katib describe "
            f"experiment {stored.name}`, or `katib delete experiment {stored.name}` to run it "
            "from scratch"
        )
    problems = validate_restart(stored, new, trials_run)
    if problems:
        details = "; ".join(str(p) for p in problems)
        raise ConflictError(
            f"experiment {where} exists with a different spec ({details}); only maxTrialCount, "
            "parallelTrialCount and maxFailedTrialCount may change when resuming"
        )
    counts = TrialCounts.of(new)
    return None if counts == TrialCounts.of(stored) else counts


def admit(storage: Storage, exp: Experiment, *, source_dir: str) -> ExperimentRecord:
    """The stored experiment to run: newly created, or an interrupted one to resume.

    Raises ConflictError when the stored experiment finished already, is being run by another
    live controller, or differs from ``exp`` in more than the three trial counts.
    """
    try:
        stored = storage.get_experiment(exp.namespace, exp.name)
    except KatibError:
        check_runnable(exp, storage)
        return storage.create_experiment(exp, source_dir=source_dir)
    check_runnable(exp)
    where = f"{exp.namespace}/{exp.name}"
    if not stored.condition.is_finished and owner_alive(stored.owner, stored.owner_heartbeat):
        raise ConflictError(f"experiment {where} is being run by another process ({stored.owner})")
    trials_run = sum(storage.count_trials(stored.id).values())
    counts = resume_counts(
        stored.spec, stored.condition.is_finished, stored.condition.value, exp, trials_run
    )
    if counts is not None:
        spec = stored.spec.model_copy(deep=True)
        spec.spec.max_trial_count = counts.max_trial_count
        spec.spec.parallel_trial_count = counts.parallel_trial_count
        spec.spec.max_failed_trial_count = counts.max_failed_trial_count
        storage.update_experiment(stored.id, spec=spec)
        stored.spec = spec
    if source_dir and source_dir != stored.source_dir:
        storage.update_experiment(stored.id, source_dir=source_dir)
        stored.source_dir = source_dir
    return stored
