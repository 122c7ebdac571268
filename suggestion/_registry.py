"""Which algorithm class answers to which ``algorithmName``.

Built-in algorithms are listed here; other installed packages add theirs under the
entry-point group ``katib.suggestion`` (``name = "package.module:Class"``). Classes are
imported only when first asked for, so that listing names stays cheap.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from katib.errors import KatibError
from suggestion._base import Algorithm

ENTRY_POINT_GROUP = "katib.suggestion"

_BUILTIN: dict[str, str] = {
    "random": "suggestion.algorithms.random:RandomSearch",
    "grid": "suggestion.algorithms.grid:GridSearch",
    "hyperband": "suggestion.algorithms.hyperband:Hyperband",
    "pbt": "suggestion.algorithms.pbt:PopulationBasedTraining",
    "bayesianoptimization": "suggestion.algorithms.bayesopt:BayesianOptimization",
    "tpe": "suggestion.algorithms.tpe:TPESearch",
    "multivariate-tpe": "suggestion.algorithms.multivariate_tpe:MultivariateTPESearch",
    "cmaes": "suggestion.algorithms.cmaes:CMAESSearch",
    "sobol": "suggestion.algorithms.sobol:SobolSearch",
    "nsga2": "suggestion.algorithms.nsga:NSGAIISearch",
    "nsga3": "suggestion.algorithms.nsga:NSGAIIISearch",
    "enas": "suggestion.algorithms.enas:ENAS",
    "darts": "suggestion.algorithms.darts:DARTS",
}


class UnknownAlgorithmError(KatibError):
    """No built-in or installed plugin has this algorithm name."""


@cache
def _plugins() -> dict[str, str]:
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def algorithm_names() -> list[str]:
    """Every usable algorithm name, built-in and plugin."""
    return sorted(set(_BUILTIN) | set(_plugins()))


def get_algorithm(name: str) -> type[Algorithm]:
    """The class registered under ``name``; plugins may not shadow a built-in."""
    target = _BUILTIN.get(name) or _plugins().get(name)
    if target is None:
        known = ", ".join(algorithm_names())
        raise UnknownAlgorithmError(f"unknown algorithm {name!r} (known: {known})")
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise UnknownAlgorithmError(
            f"algorithm {name!r} could not be loaded from {target}: {e}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, Algorithm)):
        raise UnknownAlgorithmError(f"algorithm {name!r} ({target}) is not an Algorithm subclass")
    return cls
