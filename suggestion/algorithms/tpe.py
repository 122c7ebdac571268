"""Tree-structured Parzen Estimator (``tpe``) on an in-memory optuna study.

This module owns the bridge between the suggestion contract and optuna's ``TPESampler``: the
search space as optuna distributions, one in-memory study that mirrors the trial history,
and the bookkeeping that ties an experiment's trials (known by name) to the study's trials
(known by number). :mod:`suggestion.algorithms.multivariate_tpe` reuses the bridge with
other settings.

Katib serves ``tpe`` with hyperopt; the settings' names, defaults and checks are those of
``pkg/suggestion/v1beta1/hyperopt/service.py`` (``_validate_tpe_setting``) and hyperopt:

* ``gamma`` (in (0, 1); unset by default): the best ``min(ceil(gamma * n), 25)`` of ``n``
  finished trials form the "good" density (optuna's form of the split, with hyperopt's cap of
  25). Unset, the split is optuna's default, ``min(ceil(0.1 * n), 25)``. Katib passes no gamma
  to hyperopt unless the user sets one, so hyperopt's own 0.25 applies there, with its rule
  ``ceil(gamma * sqrt(n))``; neither that rule (-2.70 on Hartmann6 at 100 trials, median of 20
  seeds) nor 0.25 with the linear rule (-2.90) comes near optuna's default split (-3.02), see
  ``benchmarks/RESULTS.md``.
* ``prior_weight`` (1.0, > 0): weight of the prior in both densities.
* ``n_EI_candidates`` (24, >= 1): candidates drawn from the good density per suggestion.
* ``random_state`` (>= 0): seed.

Like Katib's hyperopt service (``n_startup_jobs`` = the size of the first request), the
first ``parallelTrialCount`` finished trials are drawn at random before the model is used.

Distributions: ``normal`` and ``logNormal`` parameters are treated as ``uniform`` and
``logUniform`` (the densities TPE builds replace the prior soon anyway); discrete values are
categories. Running trials count through optuna's constant liar, so a batch spreads out.
"""

from __future__ import annotations

import base64
import copy
import math
import pickle
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
from optuna.samplers import TPESampler
from optuna.samplers._tpe import sampler as _tpe_internals
from optuna.storages import InMemoryStorage
from optuna.trial import FrozenTrial, TrialState

from suggestion._base import (
    RUNNING,
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_float,
    check_int,
)
from suggestion._space import INT, LOG_NORMAL, LOG_UNIFORM, Parameter, SearchSpace
from suggestion.algorithms.random import RandomSearch, quantize

# Asks before a duplicate point is replaced by a random unseen one. TPE concentrates, so in a
# small discrete space it keeps proposing the same few (already tried) points.
_MAX_ASKS = 4
# The good group never holds more trials than this (hyperopt's linear_forgetting, optuna's cap).
_GAMMA_CAP = 25
# The good fraction when gamma is unset: optuna's ``default_gamma``.
_DEFAULT_GAMMA = 0.1

Key = tuple[str, ...]


def check_open_unit_interval(value: str) -> str | None:
    """A setting checker for a number strictly between 0 and 1."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"must be a number, got {value!r}"
    if not 0.0 < number < 1.0:
        return f"must be in the range (0, 1), got {value}"
    return None


@dataclass(frozen=True)
class GammaSplit:
    """How many of ``n`` finished trials form the good density, for Katib's ``gamma``.

    ``gamma`` None is optuna's default split (10%). A class rather than a closure so that the
    sampler holding it can be pickled.
    """

    gamma: float | None = None

    def __call__(self, n: int) -> int:
        fraction = _DEFAULT_GAMMA if self.gamma is None else self.gamma
        return min(math.ceil(fraction * n), _GAMMA_CAP)


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


class SharedWorkTPESampler(TPESampler):
    """optuna's ``TPESampler`` doing its per-history work once per suggestion.

    Independent TPE is asked one parameter at a time, and for each optuna splits the whole
    history into good and bad trials and reads every trial's values again: at 1,000 trials
    and 5 parameters that is 5 Python passes over the history. Here the split is computed
    once per suggested trial (it does not depend on the parameter), and the internal values
    of finished trials (immutable) are memoised.

    The draws are exactly ``TPESampler``'s (``tests/suggestion/test_tpe.py`` compares them);
    this leans on optuna's private ``_sample``/``_get_internal_repr`` of optuna 5, so
    :func:`make_tpe_sampler` uses it only there.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._drop_caches()

    def _drop_caches(self) -> None:
        self._split: tuple[int, list[FrozenTrial], list[FrozenTrial]] | None = None
        # Internal values of finished trials by number, and the current split's groups as
        # columns (by id of the group list, which self._split keeps alive).
        self._internal: dict[int, dict[str, float]] = {}
        self._columns: dict[int, dict[str, np.ndarray] | None] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Caches refer to one study's trial numbers; a restarted instance rebuilds its own.
        state = dict(self.__dict__)
        state.update(_split=None, _internal={}, _columns={})
        return state

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # TPESampler._sample of optuna 5 with the split cached per trial number; the study
        # does not change while one trial's parameters are drawn.
        if self._split is None or self._split[0] != trial.number:
            states = [TrialState.COMPLETE, TrialState.PRUNED]
            if self._constant_liar:
                states.append(TrialState.RUNNING)
            trials = study._get_trials(
                deepcopy=False, states=states, use_cache=not self._constant_liar
            )
            if self._constant_liar:
                trials = [t for t in trials if t.number != trial.number]
            if self._gamma is None:
                self._gamma = _tpe_internals.default_gamma
            n = sum(t.state != TrialState.RUNNING for t in trials)
            below, above = _tpe_internals._split_trials(study, trials, self._gamma(n))
            self._split = (trial.number, below, above)
            self._columns = {}
        _, below, above = self._split
        mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
        mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
        samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
        acq_func_vals = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
        ret = TPESampler._compare(samples_below, acq_func_vals)
        for param_name, dist in search_space.items():
            ret[param_name] = dist.to_external_repr(ret[param_name])
        return ret

    def _get_internal_repr(
        self,
        trials: list[FrozenTrial],
        search_space: dict[str, BaseDistribution],
        study: optuna.Study,
    ) -> dict[str, np.ndarray]:
        is_group = self._split is not None and (
            trials is self._split[1] or trials is self._split[2]
        )
        if is_group:
            if id(trials) not in self._columns:
                self._columns[id(trials)] = self._as_columns(trials, study)
            columns = self._columns[id(trials)]
            if columns is not None and search_space.keys() <= columns.keys():
                return {name: columns[name] for name in search_space}
        values: dict[str, list[float]] = {name: [] for name in search_space}
        for row in self._rows(trials, study):
            if search_space.keys() <= row.keys():
                for name in search_space:
                    values[name].append(row[name])
        return {k: np.asarray(v) for k, v in values.items()}

    def _as_columns(
        self, trials: list[FrozenTrial], study: optuna.Study
    ) -> dict[str, np.ndarray] | None:
        """Every parameter's values over ``trials``; None unless all trials hold the same."""
        rows = self._rows(trials, study)
        if not rows:
            return None
        names = rows[0].keys()
        if any(row.keys() != names for row in rows):
            return None
        return {name: np.asarray([row[name] for row in rows]) for name in names}

    def _rows(self, trials: list[FrozenTrial], study: optuna.Study) -> list[dict[str, float]]:
        rows: list[dict[str, float]] = []
        for trial in trials:
            row = self._internal.get(trial.number)
            if row is None:
                params = self._get_params(trial, study)
                row = {
                    name: trial.distributions[name].to_internal_repr(value)
                    for name, value in params.items()
                    if name in trial.distributions
                }
                if trial.state.is_finished():
                    self._internal[trial.number] = row
            rows.append(row)
        return rows


class _AddedTrial(FrozenTrial):
    """A trial built only to be added to the study.

    The storage deep-copies what it is given; nothing else holds this object, so a shallow
    copy is as safe and makes re-feeding a long history on a restart several times faster
    (the storage never mutates a trial's dicts in place).
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenTrial:
        return copy.copy(self)


def make_tpe_sampler(**kwargs: Any) -> TPESampler:
    """A TPE sampler for a single-objective study: the shared-work one where it is tested."""
    if optuna.__version__.split(".")[0] == "5":
        return SharedWorkTPESampler(**kwargs)
    return TPESampler(**kwargs)


def fresh_seed() -> int:
    """A seed for an unseeded instance, fixed from then on (and kept in its state)."""
    return int(np.random.default_rng().integers(2**32))


def _pickled(obj: object) -> str:
    """``obj`` pickled, as text for a JSON state."""
    return base64.b64encode(pickle.dumps(obj)).decode("ascii")


def _unpickle(text: object) -> object | None:
    """What :func:`_pickled` wrote; None if missing or unreadable (another library version).

    The state is written by this module into the experiment's own storage, so it is trusted.
    """
    if not isinstance(text, str):
        return None
    try:
        loaded: object = pickle.loads(base64.b64decode(text))  # noqa: S301
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, EOFError):
        return None
    return loaded


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


class OptunaTPEBase(Algorithm):
    """Shared machinery of ``tpe`` and ``multivariate-tpe``; subclasses build the sampler.

    A suggested point enters the study as a running trial (so the constant liar sees it)
    holding the formatted values, exactly what the history will hold after a restart. A
    finished trial is told to the study trial it was suggested as (matched by assignment);
    one the algorithm never suggested, as after a restart, is added as a new study trial.
    Trials without an objective become failed study trials, which TPE ignores; early-stopped
    trials with an objective count as complete ones.

    State: the pickled sampler (its random generators) and the fallback's generator. A state
    that cannot be unpickled (written by another optuna version) is ignored: suggestions stay
    valid but differ from what the interrupted run would have suggested.
    """

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
                direction="maximize" if self.maximize else "minimize",
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

    @abstractmethod
    def _make_sampler(self, seed: int) -> TPESampler:
        """The sampler for this flavour of TPE, seeded with ``seed``."""

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
        value = trial.objective
        if value is not None and math.isnan(value):
            value = None
        state = TrialState.FAIL if value is None else TrialState.COMPLETE
        number = self._active.pop(trial.name, None)
        if number is None:
            number = self._claim(key)
        if number is None:
            self._add_trial(trial.assignments, state, value)
        elif value is None:
            self._study.tell(number, state=TrialState.FAIL)
        else:
            self._study.tell(number, value)

    def _claim(self, key: Key) -> int | None:
        numbers = self._unclaimed.get(key)
        if not numbers:
            return None
        number = numbers.pop(0)
        if not numbers:
            del self._unclaimed[key]
        return number

    def _add_trial(
        self, assignments: Mapping[str, str], state: TrialState, value: float | None
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
            value=value,
            datetime_start=now,
            datetime_complete=now if state.is_finished() else None,
            params=params,
            distributions=dict(self._distributions),
            user_attrs={},
            system_attrs={},
            intermediate_values={},
        )
        try:
            self._study.add_trial(frozen)  # validates it as create_trial() would
        except ValueError:
            # A value optuna's own bounds check rejects (float edge cases): TPE goes without.
            return None
        self._n_trials += 1
        return self._n_trials - 1

    # Suggestions -------------------------------------------------------------------------

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        with quiet_optuna():
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
            # A failed trial is invisible to TPE: the repeat leaves no trace in the model.
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

    def dump_state(self) -> dict[str, Any]:
        return {"sampler": _pickled(self._study.sampler), "fallback": self._fallback.dump_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        sampler = _unpickle(state.get("sampler"))
        if isinstance(sampler, TPESampler):
            self._study.sampler = sampler
        if "fallback" in state:
            self._fallback.load_state(state["fallback"])


class TPESearch(OptunaTPEBase):
    """``tpe``: independent (per-parameter) TPE with hyperopt's settings; see the module."""

    name = "tpe"
    settings_spec = {
        "gamma": SettingSpec(
            None,
            "fraction of the finished trials forming the good density (unset: 0.1)",
            check_open_unit_interval,
        ),
        "prior_weight": SettingSpec(
            "1.0", "weight of the prior", check_float(0.0, exclusive_min=True)
        ),
        "n_EI_candidates": SettingSpec("24", "candidates scored per suggestion", check_int(1)),
        "random_state": SettingSpec(None, "seed of the random generators", check_int(0)),
    }

    def _make_sampler(self, seed: int) -> TPESampler:
        return make_tpe_sampler(
            prior_weight=float(self.settings["prior_weight"]),
            n_ei_candidates=int(self.settings["n_EI_candidates"]),
            gamma=GammaSplit(float(gamma) if (gamma := self.settings.get("gamma")) else None),
            n_startup_trials=max(1, self.parallel_trial_count),
            seed=seed,
            multivariate=False,
            constant_liar=True,
        )
