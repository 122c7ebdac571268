"""Multivariate TPE (``multivariate-tpe``): one joint density over all parameters.

Katib serves it with optuna's ``TPESampler(multivariate=True, constant_liar=True)``
(``pkg/suggestion/v1beta1/optuna/service.py``, ``OptimizerConfiguration``); settings, all
validated there as integers >= 0:

* ``n_startup_trials`` (10): finished trials drawn at random before the model is used.
* ``n_ei_candidates`` (24): candidates scored per suggestion; at least 1 here, since optuna
  fails on 0.
* ``random_state``: seed.

The study bridge (distributions, history, restarts) is :class:`OptunaSearch`'s.
"""

from __future__ import annotations

from optuna.samplers import TPESampler

from suggestion._base import SettingSpec, check_int
from suggestion.algorithms._optuna import OptunaSearch
from suggestion.algorithms.tpe import make_tpe_sampler


class MultivariateTPESearch(OptunaSearch):
    """``multivariate-tpe``: optuna's TPE modelling the parameters jointly (with several
    objectives, optuna's multi-objective TPE)."""

    name = "multivariate-tpe"
    multi_objective = True
    settings_spec = {
        "n_startup_trials": SettingSpec(
            "10", "finished trials sampled at random before TPE starts", check_int(0)
        ),
        "n_ei_candidates": SettingSpec("24", "candidates scored per suggestion", check_int(1)),
        "random_state": SettingSpec(None, "seed of the random generators", check_int(0)),
    }

    def _make_sampler(self, seed: int) -> TPESampler:
        return make_tpe_sampler(
            n_startup_trials=int(self.settings["n_startup_trials"]),
            n_ei_candidates=int(self.settings["n_ei_candidates"]),
            seed=seed,
            multivariate=True,
            constant_liar=True,
            multi_objective=self.objective_count > 1,
        )
