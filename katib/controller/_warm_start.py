"""Warm start (``spec.warmStart``): earlier experiments' finished trials as history.

An experiment that names earlier experiments of its namespace in ``spec.warmStart`` starts
with their finished trials fed to its algorithm (and to its early-stopping rule) as if they
were its own completed trials; they are not run again and do not count toward its budget,
its failures or its optimal trial. Whether the sources are compatible is the spec's rule
(:func:`~katib.spec.validate_warm_start`), checked when the experiment is created and again
on every start (a source may have been deleted since).

The sources are read on every start, like the experiment's own history, so a source still
running contributes what has finished by then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from katib.controller._optimal import objective_value
from katib.errors import InvalidExperimentError, KatibError
from katib.records import ExperimentRecord, TrialRecord, TrialState
from katib.spec import Experiment, validate_warm_start
from katib.storage import Storage
from suggestion import SearchSpace

#: Source trials fed as history: the ones that ran to an end of their own. Killed trials
#: (their experiment ended, or an interruption, after which they ran again) are left out.
WARM_STATES = (
    TrialState.SUCCEEDED,
    TrialState.EARLY_STOPPED,
    TrialState.FAILED,
    TrialState.METRICS_UNAVAILABLE,
)


@dataclass
class WarmHistory:
    """The trials an experiment starts from, and what became of each source."""

    trials: list[TrialRecord] = field(default_factory=list)
    #: Source name → (its id, trials used, trials left out as outside the search space).
    sources: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: Problems found on this start (a source deleted or changed since the experiment was
    #: created); those sources are not used.
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the experiment's events."""
        parts = []
        for name, (_, used, outside) in self.sources.items():
            extra = f"; {outside} outside the search space not used" if outside else ""
            parts.append(f"{name} ({used} trials{extra})")
        text = "warm start from " + (", ".join(parts) if parts else "no experiment")
        if self.problems:
            text += "; not used: " + "; ".join(self.problems)
        return text


def _sources(
    storage: Storage, exp: Experiment
) -> list[tuple[str, ExperimentRecord | None]]:
    warm = exp.spec.warm_start
    out: list[tuple[str, ExperimentRecord | None]] = []
    for name in warm.experiments if warm is not None else []:
        try:
            out.append((name, storage.get_experiment(exp.namespace, name)))
        except KatibError:
            out.append((name, None))
    return out


def check_warm_start(storage: Storage, exp: Experiment) -> None:
    """Refuse an experiment whose ``spec.warmStart`` names missing or incompatible sources.

    Raises:
        InvalidExperimentError: every problem, at ``spec.warmStart.experiments[i]``.
    """
    if exp.spec.warm_start is None:
        return
    sources = [(name, None if r is None else r.spec) for name, r in _sources(storage, exp)]
    errors = validate_warm_start(exp, sources)
    if errors:
        raise InvalidExperimentError(errors, f"{exp.namespace}/{exp.name}")


def load_warm_start(storage: Storage, record: ExperimentRecord) -> WarmHistory:
    """The finished trials of the record's warm-start sources, as its own history.

    Each trial's objective is its metrics reduced by *this* experiment's objective and
    metric strategy; trials whose assignments lie outside this experiment's search space
    are left out (and counted).
    """
    history = WarmHistory()
    exp = record.spec
    objective = exp.spec.objective
    if exp.spec.warm_start is None or objective is None:
        return history
    space = SearchSpace.from_spec(exp.spec.parameters)
    for i, (name, source) in enumerate(_sources(storage, exp)):
        problems = validate_warm_start(exp, [(name, None if source is None else source.spec)])
        if problems or source is None:
            history.problems += [
                f"spec.warmStart.experiments[{i}]: {p.message}" for p in problems
            ]
            continue
        used = outside = 0
        for trial in storage.list_trials(source.id, WARM_STATES):
            if not _inside(space, trial.assignments):
                outside += 1
                continue
            value = (
                objective_value(trial.metrics, objective)
                if trial.state in (TrialState.SUCCEEDED, TrialState.EARLY_STOPPED)
                else None
            )
            history.trials.append(dataclasses.replace(trial, objective=value))
            used += 1
        history.sources[name] = (source.id, used, outside)
    return history


def _inside(space: SearchSpace, assignments: dict[str, str]) -> bool:
    if set(assignments) != set(space.names):
        return False
    return all(space[name].contains(value) for name, value in assignments.items())


def source_ids(history: WarmHistory) -> Sequence[int]:
    """The ids of the sources whose trials are used."""
    return [source_id for source_id, _, _ in history.sources.values()]
