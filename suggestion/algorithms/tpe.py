"""Tree-structured Parzen Estimator (``tpe``) on an in-memory optuna study.

The bridge between the suggestion contract and optuna (the study that mirrors the trial
history) is :class:`suggestion.algorithms._optuna.OptunaSearch`; this module owns TPE's
settings and the sampler. :mod:`suggestion.algorithms.multivariate_tpe` uses the same sampler
with other settings.

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

With several objectives (``objective.additionalObjectives``) both flavours are optuna's
multi-objective TPE (MOTPE: the good group is chosen by non-domination rank and
hypervolume contribution); the settings mean the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.samplers._tpe import sampler as _tpe_internals
from optuna.trial import FrozenTrial, TrialState

from suggestion._base import SettingSpec, check_float, check_int
from suggestion.algorithms._optuna import (
    OptunaSearch,
    OptunaTPEBase,
    fresh_seed,
    quiet_optuna,
)

__all__ = [
    "GammaSplit",
    "OptunaSearch",
    "OptunaTPEBase",
    "SharedWorkTPESampler",
    "TPESearch",
    "fresh_seed",
    "make_tpe_sampler",
    "quiet_optuna",
]

# The good group never holds more trials than this (hyperopt's linear_forgetting, optuna's cap).
_GAMMA_CAP = 25
# The good fraction when gamma is unset: optuna's ``default_gamma``.
_DEFAULT_GAMMA = 0.1


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
    sampler holding it can be copied.
    """

    gamma: float | None = None

    def __call__(self, n: int) -> int:
        fraction = _DEFAULT_GAMMA if self.gamma is None else self.gamma
        return min(math.ceil(fraction * n), _GAMMA_CAP)


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


def make_tpe_sampler(*, multi_objective: bool = False, **kwargs: Any) -> TPESampler:
    """A TPE sampler: the shared-work one for a single objective where it is tested (optuna
    5), optuna's own otherwise (its multi-objective split is not the shared-work one's)."""
    if not multi_objective and optuna.__version__.split(".")[0] == "5":
        return SharedWorkTPESampler(**kwargs)
    return TPESampler(**kwargs)


class TPESearch(OptunaSearch):
    """``tpe``: independent (per-parameter) TPE with hyperopt's settings; see the module."""

    name = "tpe"
    multi_objective = True
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
            multi_objective=self.objective_count > 1,
        )
