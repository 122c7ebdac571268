"""Population based training, following Katib's PBT suggestion service.

Katib's reference is ``pkg/suggestion/v1beta1/pbt/service.py`` (``PbtJobQueue``). Every
suggestion is a *job*: assignments, a generation and optionally a parent trial, whose
checkpoint folder the controller copies into the new trial's folder before starting it (see
``suggestion/_base.py``). The two labels Katib puts on the trial carry that:
``pbt.suggestion.katib.kubeflow.org/generation`` and ``pbt.suggestion.katib.kubeflow.org/parent``.

- Finished trials join the *current* pool, except Failed and Killed ones, which are run again:
  a new job with the same assignments, generation and parent.
- When more jobs are needed and the current pool holds at most ``n_population`` trials:
  before any generation has been formed, random jobs of generation 0 (no parent); afterwards,
  children of members of the *previous* generation, as many as asked for.
- When the current pool holds more than ``n_population``, it becomes the previous generation
  and ``n_population`` children are made from it at once.
- Children: the pool's objective values are cut at the ``truncation_threshold`` and
  ``1 - truncation_threshold`` quantiles. Up to ``int(count * truncation_threshold)`` members
  below the lower cut are *exploited*: each is replaced by a random member at or above the upper
  cut, whose assignments and checkpoint (the parent) the child takes, explored as below. The
  other members are *explored* from themselves (parent = the member itself): with
  ``resample_probability`` unset every parameter is perturbed (numbers times 0.8 or 1.2, clipped
  to the feasible space and snapped to its step; a discrete or categorical value moves to a
  neighbour in its list, wrapping around); with it set, each parameter is resampled with that
  probability and kept otherwise. A child's generation is its parent's plus one.

Where this differs from Katib's code, on purpose:

- Katib's exploit child keeps the *bottom* member as its parent (its own checkpoint, with the
  top member's assignments) and does not explore it; here it takes the top member's checkpoint
  and is explored, as population based training describes exploit-and-explore.
- Trial names come from the controller, so a job learns its trial's name when a trial with its
  assignments (and labels) shows up in :meth:`update`; until then no job with the same
  assignments but other labels is handed out, so that :meth:`labels_for` is never ambiguous.
- Random jobs follow each parameter's distribution (Katib draws from the step grid) and avoid
  assignments already tried; a trial without an objective value ranks below every other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from suggestion._base import (
    FAILED,
    KILLED,
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_float,
    check_int,
)
from suggestion._space import Parameter, SearchSpace
from suggestion.algorithms.random import quantize, sample_parameter

GENERATION_LABEL = "pbt.suggestion.katib.kubeflow.org/generation"
PARENT_LABEL = "pbt.suggestion.katib.kubeflow.org/parent"

_REQUIRED = ("suggestion_trial_dir", "n_population", "truncation_threshold")
_PERTURB_FACTORS = (0.8, 1.2)
# Draws before a random job accepts assignments already tried.
_MAX_RETRIES = 50
# Extra rounds of jobs when some had to wait for a twin (see ``_hand_out``).
_MAX_TOP_UPS = 3

Job = dict[str, Any]  # {"params": {name: value}, "generation": int, "parent": str | None, ...}


def _check_present(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


class PopulationBasedTraining(Algorithm):
    """Katib's ``pbt``; see the module docstring for what each new trial is made from."""

    name = "pbt"
    supports_warm_start = False  # its population continues its own trials
    settings_spec = {
        "suggestion_trial_dir": SettingSpec(
            None,
            "the folder the trial keeps its checkpoints in (each trial gets its own); required",
            _check_present,
        ),
        "n_population": SettingSpec(
            None, "trials per generation, at least 5; required", check_int(5)
        ),
        "truncation_threshold": SettingSpec(
            None,
            "fraction of the population exploited (bottom) and exploited from (top); required",
            check_float(0.0, 1.0),
        ),
        "resample_probability": SettingSpec(
            None,
            "probability of resampling a parameter when exploring; unset: perturb by 0.8 or 1.2",
            check_float(0.0, 1.0),
        ),
    }
    #: Children repeat or perturb their parent's assignments and re-runs repeat them: a
    #: repeated assignment is a new trial here (another checkpoint), not a duplicate.
    continues_trials = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.population = int(self.settings["n_population"])
        self.truncation = float(self.settings["truncation_threshold"])
        resample = self.settings.get("resample_probability")
        self.resample_probability = None if resample is None else float(resample)
        self._rng = np.random.default_rng()
        self._pending: list[Job] = []  # made, not handed out yet
        self._issued: list[Job] = []  # handed out, no trial seen yet
        self._jobs: dict[str, Job] = {}  # by trial name; "done" and "metric" once finished
        self._pool: dict[str, list[str]] = {"previous": [], "current": []}
        self._seen: set[tuple[str, ...]] = set()
        self._restored = False

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        problems = super().validate_settings(settings)
        for key in _REQUIRED:
            if key not in settings:
                problems.append((key, f"must be set: pbt needs {', '.join(_REQUIRED)}"))
        return problems

    @classmethod
    def example_settings(cls, space: SearchSpace) -> dict[str, str]:
        """The smallest population Katib allows (contract tests)."""
        return {
            "suggestion_trial_dir": "/var/log/katib/checkpoints/",
            "n_population": "5",
            "truncation_threshold": "0.2",
        }

    # --- history -----------------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            self._seen.add(self.space.key(trial.assignments))
            job = self._jobs.get(trial.name)
            if job is None:
                job = self._claim(trial)
                self._jobs[trial.name] = job
            if trial.is_finished and not job.get("done"):
                self._finish(trial, job)

    def _claim(self, trial: TrialRecord) -> Job:
        """The handed-out job this new trial was created from (or one rebuilt from its labels)."""
        key = self.space.key(trial.assignments)
        for i, job in enumerate(self._issued):
            # A trial that carries PBT's labels must carry this job's (twins differ there).
            if self.space.key(job["params"]) == key and (
                GENERATION_LABEL not in trial.labels or _labels(job).items() <= trial.labels.items()
            ):
                return self._issued.pop(i)
        # Not ours (state lost, or a trial from elsewhere): take it in as its labels say.
        generation = trial.labels.get(GENERATION_LABEL, "0")
        return _job(
            trial.assignments,
            int(generation) if generation.isdigit() else 0,
            trial.labels.get(PARENT_LABEL),
        )

    def _finish(self, trial: TrialRecord, job: Job) -> None:
        job["done"] = True
        job["metric"] = trial.objective
        if trial.state in (FAILED, KILLED):
            # Katib runs a failed or killed member again, from the same checkpoint.
            self._pending.append(_job(job["params"], job["generation"], job["parent"]))
            return
        self._pool["current"].append(trial.name)

    # --- suggestions -------------------------------------------------------------------------

    def suggest(self, count: int) -> list[dict[str, str]]:
        if self._restored:
            self._restored = False
            # Handed out before a restart but never created: hand them out again first.
            self._pending[:0] = self._issued
            self._issued = []
        if count <= 0:
            return []
        if len(self._pending) < count:
            self._generate(count)
        out = self._hand_out(count)
        for _ in range(_MAX_TOP_UPS):
            if len(out) >= count:
                break
            # Some jobs wait for a twin to get its trial: make more rather than idle a slot.
            self._generate(count - len(out))
            out += self._hand_out(count - len(out))
        return [dict(job["params"]) for job in out]

    def _hand_out(self, count: int) -> list[Job]:
        """Up to ``count`` pending jobs, in order, that :meth:`labels_for` can tell apart.

        A job waits while a handed-out job without a trial yet has the same assignments but
        other labels.
        """
        out: list[Job] = []
        kept: list[Job] = []
        outstanding = {self.space.key(job["params"]): _labels(job) for job in self._issued}
        for job in self._pending:
            key = self.space.key(job["params"])
            if len(out) < count and outstanding.get(key, _labels(job)) == _labels(job):
                outstanding[key] = _labels(job)
                out.append(job)
            else:
                kept.append(job)
        self._pending = kept
        self._issued.extend(out)
        return out

    def labels_for(self, assignments: Mapping[str, str]) -> dict[str, str]:
        key = self.space.key(assignments)
        for job in self._issued:
            if self.space.key(job["params"]) == key:
                return _labels(job)
        return {}

    def _generate(self, count: int) -> None:
        """Queue at least ``count`` jobs where the pools allow (Katib's ``generate``)."""
        if len(self._pool["current"]) <= self.population:
            if not self._pool["previous"]:
                for _ in range(count):
                    self._pending.append(_job(self._draw(), 0, None))
                return
            exploit, explore, upper = self._segment(self._pool["previous"], count)
        else:
            exploit, explore, upper = self._segment(self._pool["current"], self.population)
            self._pool["previous"] = self._pool["current"]
            self._pool["current"] = []
        for _ in exploit:
            # The bottom member's slot goes to a child of a random top member.
            top = str(upper[int(self._rng.integers(len(upper)))])
            self._pending.append(self._child(top))
        for name in explore:
            self._pending.append(self._child(name))

    def _segment(self, pool: list[str], count: int) -> tuple[list[str], list[str], list[str]]:
        """(bottom members to replace, members to explore, top members), Katib's cut."""
        names = sorted(pool)  # the order trials finished in must not matter after a restart
        scores = self._scores(names)
        lower, upper = np.quantile(scores, (self.truncation, 1 - self.truncation))
        exploit = [n for n, v in zip(names, scores, strict=True) if v < lower]
        explore = [n for n, v in zip(names, scores, strict=True) if v >= lower]
        top = [n for n, v in zip(names, scores, strict=True) if v >= upper]
        exploit = [str(n) for n in self._rng.permutation(exploit)] if exploit else []
        explore = [str(n) for n in self._rng.permutation(explore)] if explore else []
        exploit = exploit[: int(count * self.truncation)]
        explore = explore[: count - len(exploit)]
        return exploit, explore, top

    def _scores(self, names: list[str]) -> list[float]:
        """Objective values, larger is better; trials without one rank below all others."""
        sign = 1.0 if self.maximize else -1.0
        values = [self._jobs[n].get("metric") for n in names]
        known = [sign * float(v) for v in values if v is not None]
        worst = min(known) - 1.0 if known else 0.0
        return [worst if v is None else sign * float(v) for v in values]

    def _child(self, parent: str) -> Job:
        job = self._jobs[parent]
        return _job(self._explore(job["params"]), int(job["generation"]) + 1, parent)

    def _explore(self, params: Mapping[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for param in self.space:
            value = params[param.name]
            if self.resample_probability is None:
                out[param.name] = self._perturb(param, value)
            elif float(self._rng.random()) < self.resample_probability:
                out[param.name] = sample_parameter(param, self._rng)
            else:
                out[param.name] = value
        return out

    def _perturb(self, param: Parameter, value: str) -> str:
        if param.is_numeric:
            factor = _PERTURB_FACTORS[int(self._rng.integers(2))]
            return param.format(quantize(param, float(value) * factor))
        values = param.values
        index = values.index(value) if value in values else 0
        return values[(index + (-1, 1)[int(self._rng.integers(2))]) % len(values)]

    def _draw(self) -> dict[str, str]:
        """Random assignments for generation 0, not tried yet where the space allows."""
        candidate = {p.name: sample_parameter(p, self._rng) for p in self.space}
        for _ in range(_MAX_RETRIES):
            if self.space.key(candidate) not in self._seen:
                break
            candidate = {p.name: sample_parameter(p, self._rng) for p in self.space}
        self._seen.add(self.space.key(candidate))
        return candidate

    # --- state -------------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        return {
            "pending": [dict(job) for job in self._pending],
            "issued": [dict(job) for job in self._issued],
            "jobs": {name: dict(job) for name, job in self._jobs.items()},
            "pool": {k: list(v) for k, v in self._pool.items()},
            "rng": self._rng.bit_generator.state,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self._rng.bit_generator.state = dict(state["rng"])
        self._pending = [_load_job(job) for job in state.get("pending", ())]
        self._issued = [_load_job(job) for job in state.get("issued", ())]
        self._jobs = {str(name): _load_job(job) for name, job in state.get("jobs", {}).items()}
        pool = state.get("pool", {})
        self._pool = {k: [str(n) for n in pool.get(k, ())] for k in ("previous", "current")}
        for job in (*self._pending, *self._issued, *self._jobs.values()):
            self._seen.add(self.space.key(job["params"]))
        self._restored = True


def _labels(job: Job) -> dict[str, str]:
    labels = {GENERATION_LABEL: str(job["generation"])}
    if job["parent"] is not None:
        labels[PARENT_LABEL] = str(job["parent"])
    return labels


def _job(params: Mapping[str, str], generation: int, parent: str | None) -> Job:
    return {"params": dict(params), "generation": generation, "parent": parent}


def _load_job(data: Mapping[str, Any]) -> Job:
    job = _job(
        {str(k): str(v) for k, v in data["params"].items()},
        int(data["generation"]),
        None if data.get("parent") is None else str(data["parent"]),
    )
    if data.get("done"):
        job["done"] = True
        job["metric"] = None if data.get("metric") is None else float(data["metric"])
    return job
