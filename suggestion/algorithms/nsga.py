"""NSGA-II (``nsga2``) and NSGA-III (``nsga3``): genetic multi-objective search, optuna's.

Both keep a population of ``population_size`` trials per generation; the next generation's
parents are the best of the previous parents and the current population, by non-domination
rank, then by crowding distance (NSGA-II, Deb et al. 2002) or by the distance to reference
points on a simplex (NSGA-III, Deb and Jain 2014, which spreads many-objective fronts more
evenly); children come from uniform crossover and mutation. The first generation is drawn at
random, or is the finished trials of a warm start (``spec.warmStart``). They work with one
objective too (then NSGA-II is a plain genetic algorithm).

The samplers are optuna's ``NSGAIISampler`` and ``NSGAIIISampler`` driven through the study
bridge (:class:`~suggestion.algorithms._optuna.OptunaSearch`); each trial's generation and the
cached parent populations are kept in the algorithm's state by point, so a restarted
experiment goes on with the same generations.

Settings (optuna's names and defaults; Katib has neither algorithm):

* ``population_size`` (50, >= 2): trials per generation.
* ``crossover_prob`` (0.9, in [0, 1]): probability that a child is a crossover of two parents
  rather than a copy of one.
* ``swapping_prob`` (0.5, in [0, 1]): in a crossover, the probability of taking each
  parameter from the second parent.
* ``mutation_prob`` (unset: 1 / the number of parameters; in [0, 1]): probability that a
  parameter of a child is drawn at random instead.
* ``dividing_parameter`` (nsga3 only; 3, 1..12): divisions of each objective axis for the
  reference points (there are C(objectives + p - 1, p) of them).
* ``random_state`` (>= 0): seed.
"""

from __future__ import annotations

from typing import Any

from optuna.samplers import BaseSampler, NSGAIIISampler, NSGAIISampler

from suggestion._base import SettingSpec, check_float, check_int
from suggestion.algorithms._optuna import OptunaSearch


def _settings(*, nsga3: bool) -> dict[str, SettingSpec]:
    spec = {
        "population_size": SettingSpec("50", "trials per generation", check_int(2)),
        "crossover_prob": SettingSpec(
            "0.9", "probability that a child is a crossover of two parents", check_float(0, 1)
        ),
        "swapping_prob": SettingSpec(
            "0.5", "probability of taking a parameter from the second parent", check_float(0, 1)
        ),
        "mutation_prob": SettingSpec(
            None,
            "probability that a child's parameter is drawn at random (unset: 1/parameters)",
            check_float(0, 1),
        ),
        "random_state": SettingSpec(None, "seed of the random generators", check_int(0)),
    }
    if nsga3:
        # Reference points number C(objectives + p - 1, p): capped so that a typo cannot
        # ask for billions of them.
        spec["dividing_parameter"] = SettingSpec(
            "3", "divisions of each objective axis for the reference points", check_int(1, 12)
        )
    return spec


class _GeneticSearch(OptunaSearch):
    """What ``nsga2`` and ``nsga3`` share: settings, and a sampler reloaded consistently."""

    multi_objective = True
    sampler_class: type[NSGAIISampler] | type[NSGAIIISampler] = NSGAIISampler

    def _sampler_options(self, seed: int) -> dict[str, Any]:
        mutation = self.settings.get("mutation_prob")
        return {
            "population_size": int(self.settings["population_size"]),
            "crossover_prob": float(self.settings["crossover_prob"]),
            "swapping_prob": float(self.settings["swapping_prob"]),
            "mutation_prob": None if mutation is None else float(mutation),
            "seed": seed,
        }

    def _make_sampler(self, seed: int) -> BaseSampler:
        return self.sampler_class(**self._sampler_options(seed))

    def _attrs_of_unknown_trial(self) -> dict[str, Any]:
        # Trials of a warm start form the first generation: the sampler breeds from them.
        return {self.sampler_class._get_generation_key(): 0}


class NSGAIISearch(_GeneticSearch):
    """``nsga2``: optuna's NSGA-II; see the module docstring."""

    name = "nsga2"
    settings_spec = _settings(nsga3=False)
    sampler_class = NSGAIISampler
    trial_attr_prefixes = (NSGAIISampler._get_generation_key(),)
    study_attr_prefixes = (NSGAIISampler._get_parent_cache_key_prefix(),)


class NSGAIIISearch(_GeneticSearch):
    """``nsga3``: optuna's NSGA-III; see the module docstring."""

    name = "nsga3"
    settings_spec = _settings(nsga3=True)
    sampler_class = NSGAIIISampler
    trial_attr_prefixes = (NSGAIIISampler._get_generation_key(),)
    study_attr_prefixes = (NSGAIIISampler._get_parent_cache_key_prefix(),)

    def _sampler_options(self, seed: int) -> dict[str, Any]:
        options = super()._sampler_options(seed)
        options["dividing_parameter"] = int(self.settings["dividing_parameter"])
        return options
