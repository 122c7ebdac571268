"""The bridge between the suggestion contract and optuna's samplers on an in-memory study.

This module owns what every optuna-based algorithm (``tpe``, ``multivariate-tpe``, ``nsga2``,
``nsga3``) shares: the search space as optuna distributions, one in-memory study that
mirrors the trial history (with one or several objectives), the bookkeeping that ties an
experiment's trials (known by name) to the study's trials (known by number), and the state
that a restarted instance needs to continue exactly where it stopped.
"""

from __future__ import annotations

import copy
import math
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from suggestion._base import RUNNING, Algorithm, TrialRecord
from suggestion._space import INT, LOG_NORMAL, LOG_UNIFORM, Parameter, SearchSpace
from suggestion._state import STATE_VERSION, InvalidStateError, check_version, decode, encode
from suggestion.algorithms.random import RandomSearch, quantize

# Asks before a duplicate point is replaced by a random unseen one. TPE concentrates, so in a
# small discrete space it keeps proposing the same few (already tried) points.
_MAX_ASKS = 4

Key = tuple[str, ...]


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence optuna's per-trial INFO logs and its deprecation chatter, for this call only."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            # Optuna 4.9+ flags TPESampler's gamma/prior_weight arguments as deprecated, and
            # multivariate/constant_liar as experimental; Katib's settings need them.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # "high is not a multiple of step" adjustments, matched by our own quantize().
            warnings.filterwarnings("ignore", message=r".*range.*is not divisible by.*")
            yield
    finally:
        optuna.logging.set_verbosity(previous)


class _AddedTrial(FrozenTrial):
    """A trial built only to be added to the study.

    The storage deep-copies what it is given; nothing else holds this object, so a shallow
    copy is as safe and makes re-feeding a long history on a restart several times faster
    (the storage never mutates a trial's dicts in place).
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenTrial:
        return copy.copy(self)


def fresh_seed() -> int:
    """A seed for an unseeded instance, fixed from then on (and kept in its state)."""
    return int(np.random.default_rng().integers(2**32))


def _sampler_rngs(sampler: Any) -> tuple[Any, Any]:
    """The two lazily made random generators of an optuna sampler (TPE, NSGA-II/III): with the
    study's history, all the sampler needs to continue."""
    return sampler._rng, sampler._random_sampler._rng


def optuna_distribution(param: Parameter) -> BaseDistribution:
    """The optuna distribution TPE models ``param`` with.

    optuna has no log scale with a step: such parameters are modelled on the log scale and
    snapped onto their step afterwards, as are int parameters with a fractional step.
    """
    if not param.is_numeric:
        return CategoricalDistribution(param.values)
    log = param.distribution in (LOG_UNIFORM, LOG_NORMAL)
    if param.type == INT:
        step = 1
        if param.step and not log and float(param.step).is_integer():
            step = int(param.step)
        return IntDistribution(int(round(param.low)), int(round(param.high)), log=log, step=step)
    if param.step and not log:
        return FloatDistribution(param.low, param.high, step=param.step)
    return FloatDistribution(param.low, param.high, log=log)


def to_optuna_value(param: Parameter, text: str) -> Any:
    """The optuna parameter value of an assignment string (snapped onto the step grid)."""
    if not param.is_numeric:
        return text
    x = quantize(param, float(text))
    return int(x) if param.type == INT else x


def from_optuna_value(param: Parameter, value: Any) -> str:
    """The assignment string of a value optuna sampled."""
    if not param.is_numeric:
        return str(value)
    return param.format(quantize(param, float(value)))


def log_scale_problems(space: SearchSpace, algorithm: str) -> list[tuple[str | None, str]]:
    """Log-scale parameters whose range includes zero or negatives."""
    return [
        (p.name, f"{algorithm} needs min > 0 for a {p.distribution} parameter")
        for p in space
        if p.is_numeric and p.distribution in (LOG_UNIFORM, LOG_NORMAL) and p.low <= 0
    ]


class OptunaSearch(Algorithm):
    """Shared machinery of the optuna-based algorithms; subclasses build the sampler.

    A suggested point enters the study as a running trial (so TPE's constant liar sees it)
    holding the formatted values, exactly what the history will hold after a restart. A
    finished trial is told to the study trial it was suggested as (matched by assignment);
    one the algorithm never suggested (after a restart, or from a warm start) is added as a
    new study trial. Trials without every objective value become failed study trials, which
    the samplers ignore; early-stopped trials with their values count as complete ones. With
    several objectives (:attr:`Algorithm.directions`) the study has one direction per
    objective and is told every value.

    State, as versioned data (:mod:`suggestion._state`, never a pickle): the sampler's two
    random generators, the fallback's generator and, for samplers that keep their own
    bookkeeping in the study (the genetic samplers' generation of each trial and cached parent
    populations), that bookkeeping by point, so that the re-fed history of a restarted
    instance carries it again. A state that does not load raises InvalidStateError; the
    controller then rebuilds the algorithm from the history and says so in an event.
    """

    #: Prefixes of trial system attributes the sampler keeps and needs again after a restart.
    trial_attr_prefixes: tuple[str, ...] = ()
    #: Prefixes of study system attributes that hold lists of trial ids (parent caches).
    study_attr_prefixes: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seed_text = self.settings.get("random_state")
        # A concrete seed even when unseeded: optuna seeds lazily, and a generator first
        # used after a restart must continue the original's sequence, not fresh entropy.
        seed = int(seed_text) if seed_text is not None else fresh_seed()
        self._storage = InMemoryStorage()
        with quiet_optuna():
            self._distributions = {p.name: optuna_distribution(p) for p in self.space}
            self._study = optuna.create_study(
                storage=self._storage,
                sampler=self._make_sampler(seed),
                directions=["maximize" if d else "minimize" for d in self.directions],
            )
        self._study_id = self._storage.get_study_id_from_name(self._study.study_name)
        self._fallback = RandomSearch(
            self.space, maximize=self.maximize, settings={"random_state": str(seed)}
        )
        self._n_trials = 0  # study trials so far: the next one's number
        self._seen: set[Key] = set()
        self._finished: set[str] = set()
        # Running study trials by trial name, and suggested ones not yet reported, by point.
        self._active: dict[str, int] = {}
        self._unclaimed: dict[Key, list[int]] = {}
        # Sampler bookkeeping from a loaded state: trial attributes by point, and study
        # attributes as lists of points, put back once the history has been fed again.
        self._trial_attrs: dict[Key, dict[str, Any]] = {}
        self._study_attrs: dict[str, list[Key]] | None = None

    @abstractmethod
    def _make_sampler(self, seed: int) -> BaseSampler:
        """The sampler for this algorithm, seeded with ``seed``."""

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        return log_scale_problems(space, cls.name)

    # History -----------------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        with quiet_optuna():
            # History first: on a restart the study then numbers trials as it did before
            # (TPE weighs trials by their order), when the running ones are the newest.
            for trial in completed:
                self._take_finished(trial)
            for trial in active:
                self._take_active(trial)
        self._fallback.update(completed, active)

    def _take_active(self, trial: TrialRecord) -> None:
        key = self.space.key(trial.assignments)
        self._seen.add(key)
        if trial.name in self._active or trial.name in self._finished:
            return
        number = self._claim(key)
        if number is None:
            number = self._add_trial(trial.assignments, TrialState.RUNNING, None)
        if number is not None:
            self._active[trial.name] = number

    def _take_finished(self, trial: TrialRecord) -> None:
        key = self.space.key(trial.assignments)
        self._seen.add(key)
        if trial.name in self._finished:
            return
        self._finished.add(trial.name)
        values = self.objective_values(trial)
        if values is not None and not all(math.isfinite(v) for v in values):
            values = None
        state = TrialState.FAIL if values is None else TrialState.COMPLETE
        number = self._active.pop(trial.name, None)
        if number is None:
            number = self._claim(key)
        if number is None:
            self._add_trial(trial.assignments, state, values)
        elif values is None:
            self._study.tell(number, state=TrialState.FAIL)
        else:
            self._study.tell(number, list(values) if len(values) > 1 else values[0])

    def _claim(self, key: Key) -> int | None:
        numbers = self._unclaimed.get(key)
        if not numbers:
            return None
        number = numbers.pop(0)
        if not numbers:
            del self._unclaimed[key]
        return number

    def _add_trial(
        self,
        assignments: Mapping[str, str],
        state: TrialState,
        values: Sequence[float] | None,
    ) -> int | None:
        """Add a trial the study has not seen; None if it lies outside the space."""
        params: dict[str, Any] = {}
        for param in self.space:
            text = assignments.get(param.name)
            if text is None or not param.contains(text):
                return None
            params[param.name] = to_optuna_value(param, text)
        now = datetime.now()
        frozen = _AddedTrial(
            number=-1,
            trial_id=-1,
            state=state,
            value=None,
            values=None if values is None else list(values),
            datetime_start=now,
            datetime_complete=now if state.is_finished() else None,
            params=params,
            distributions=dict(self._distributions),
            user_attrs={},
            system_attrs=self._attrs_to_add(self.space.key(assignments), state),
            intermediate_values={},
        )
        try:
            self._study.add_trial(frozen)  # validates it as create_trial() would
        except ValueError:
            # A value optuna's own bounds check rejects (float edge cases): go without it.
            return None
        self._n_trials += 1
        return self._n_trials - 1

    def _attrs_to_add(self, key: Key, state: TrialState) -> dict[str, Any]:
        if key in self._trial_attrs:  # known from a loaded state
            return dict(self._trial_attrs[key])
        return self._attrs_of_unknown_trial() if state.is_finished() else {}

    def _attrs_of_unknown_trial(self) -> dict[str, Any]:
        """Sampler attributes for a finished trial it never suggested (a warm start)."""
        return {}

    # Suggestions -------------------------------------------------------------------------

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        with quiet_optuna():
            self._restore_study_attrs()
            for _ in range(count):
                assignments = self._ask_unseen()
                if assignments is None:
                    break
                key = self.space.key(assignments)
                self._seen.add(key)
                self._fallback.update([], [TrialRecord("", assignments, RUNNING)])
                out.append(assignments)
        return out

    def _ask_unseen(self) -> dict[str, str] | None:
        for _ in range(_MAX_ASKS):
            trial = self._study.ask(self._distributions)
            self._n_trials = trial.number + 1
            assignments = {p.name: from_optuna_value(p, trial.params[p.name]) for p in self.space}
            key = self.space.key(assignments)
            if key not in self._seen:
                self._store_formatted(trial.number, trial.params, assignments)
                self._unclaimed.setdefault(key, []).append(trial.number)
                return assignments
            # A failed trial is invisible to the samplers: the repeat leaves no trace.
            self._study.tell(trial.number, state=TrialState.FAIL)
        picks = self._fallback.suggest(1)
        if not picks or self.space.key(picks[0]) in self._seen:
            return None  # every point has been tried
        number = self._add_trial(picks[0], TrialState.RUNNING, None)
        if number is not None:
            self._unclaimed.setdefault(self.space.key(picks[0]), []).append(number)
        return picks[0]

    def _store_formatted(
        self, number: int, raw: Mapping[str, Any], assignments: Mapping[str, str]
    ) -> None:
        """Overwrite sampled values with the formatted ones the history will hold.

        Without this a restarted instance (which sees only the formatted strings) would
        model slightly different numbers and its next suggestions would drift.
        """
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)
        for param in self.space:
            value = to_optuna_value(param, assignments[param.name])
            if value != raw[param.name]:
                distribution = self._distributions[param.name]
                self._storage.set_trial_param(
                    trial_id, param.name, distribution.to_internal_repr(value), distribution
                )

    # State -------------------------------------------------------------------------------

    def _key_of(self, trial: FrozenTrial) -> Key:
        return self.space.key(
            {p.name: from_optuna_value(p, trial.params[p.name]) for p in self.space
             if p.name in trial.params}
        )

    def _sampler_bookkeeping(self) -> dict[str, Any]:
        """The sampler's trial and study attributes, by point (see the class docstring)."""
        if not (self.trial_attr_prefixes or self.study_attr_prefixes):
            return {}
        trials = self._study.get_trials(deepcopy=False)
        trial_attrs: dict[Key, dict[str, Any]] = dict(self._trial_attrs)
        key_of_id: dict[int, Key] = {}
        for trial in trials:
            if trial.state == TrialState.FAIL or not trial.params:
                continue
            key = self._key_of(trial)
            key_of_id[trial._trial_id] = key
            # Kept even when empty: a point the sampler knew without attributes must not get
            # a warm start's attributes after a restart.
            trial_attrs[key] = {
                k: v for k, v in trial.system_attrs.items()
                if k.startswith(self.trial_attr_prefixes)
            }
        study_attrs: dict[str, list[Key]] = dict(self._study_attrs or {})
        for name, ids in self._storage.get_study_system_attrs(self._study_id).items():
            if name.startswith(self.study_attr_prefixes) and isinstance(ids, list):
                study_attrs[name] = [key_of_id[i] for i in ids if i in key_of_id]
        return {
            "trial_attrs": [[list(key), attrs] for key, attrs in trial_attrs.items()],
            "study_attrs": {name: [list(k) for k in keys] for name, keys in study_attrs.items()},
        }

    def _restore_study_attrs(self) -> None:
        """Put loaded study attributes back, as trial ids of the re-fed history."""
        if self._study_attrs is None:
            return
        ids: dict[Key, int] = {}
        for trial in self._study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            ids.setdefault(self._key_of(trial), trial._trial_id)
        for name, keys in self._study_attrs.items():
            self._storage.set_study_system_attr(
                self._study_id, name, [ids[k] for k in keys if k in ids]
            )
        self._study_attrs = None

    def _sampler_state(self) -> dict[str, Any]:
        """What the sampler needs to continue after a restart: its generators, as data."""
        sampler_rng, random_rng = _sampler_rngs(self._study.sampler)
        return {
            "version": STATE_VERSION,
            "rng": encode(sampler_rng.rng),
            "random_rng": encode(random_rng.rng),
        }

    def _load_sampler_state(self, state: Mapping[str, Any]) -> None:
        check_version(state, self.name)
        generators = [decode(state.get("rng")), decode(state.get("random_rng"))]
        if not all(isinstance(g, np.random.RandomState) for g in generators):
            raise InvalidStateError(f"{self.name}: the state lacks the sampler's generators")
        for lazy, generator in zip(_sampler_rngs(self._study.sampler), generators, strict=True):
            lazy._rng = generator

    def dump_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            **self._sampler_state(),
            "fallback": self._fallback.dump_state(),
        }
        state.update(self._sampler_bookkeeping())
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._load_sampler_state(state)
        if "fallback" in state:
            self._fallback.load_state(state["fallback"])
        self._trial_attrs = {
            tuple(key): dict(attrs) for key, attrs in state.get("trial_attrs", [])
        }
        if "study_attrs" in state:
            self._study_attrs = {
                name: [tuple(k) for k in keys] for name, keys in state["study_attrs"].items()
            }


#: The name this bridge had when TPE was its only user.
OptunaTPEBase = OptunaSearch
