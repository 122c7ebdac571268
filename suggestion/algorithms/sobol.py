"""Sobol quasi-random search (``sobol``): a low-discrepancy sequence mapped onto the space.

This module owns the mapping of the unit cube onto the parameters and the position in the
sequence. Katib serves ``sobol`` with goptuna's Sobol sampler
(``pkg/suggestion/v1beta1/goptuna/converter.go``), which reads no settings. Here the
sequence is scipy's scrambled Sobol sequence, and ``random_state`` (>= 0, optional) seeds the
scrambling; without it a seed is drawn once and kept in the state.

One dimension per parameter, mapped like random search maps its draws:

* ``uniform``: linear; ``logUniform``: linear in log space;
* ``normal`` (``logNormal``): the inverse CDF of a normal centred in [min, max] (in log space)
  with sigma = range / 6, truncated to the range;
* int and stepped parameters: the nearest grid value, each grid value getting an equally
  wide slice of the unit interval (for the uniform distributions);
* categorical and discrete parameters: equal bins, one per value.

A point already tried is skipped (the sequence moves on); after a few in a row a random
unseen point is used instead, which does not consume the sequence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri  # type: ignore[import-untyped]
from scipy.stats import qmc  # type: ignore[import-untyped]

from suggestion._base import RUNNING, Algorithm, SettingSpec, TrialRecord, check_int
from suggestion._space import INT, LOG_NORMAL, LOG_UNIFORM, NORMAL, Parameter, SearchSpace
from suggestion.algorithms.random import RandomSearch, quantize

# Sequence points skipped as already tried before a random unseen point is used instead.
_MAX_SKIPS = 20
# The normal distributions span +-3 sigma of the range, as in random search and Katib.
_SIGMAS = 3.0

Key = tuple[str, ...]


@dataclass(frozen=True)
class _Dimension:
    """One parameter as a unit-interval coordinate."""

    param: Parameter

    def format(self, u: float) -> str:
        param = self.param
        if not param.is_numeric:
            index = min(int(u * len(param.values)), len(param.values) - 1)
            return param.values[index]
        log = param.distribution in (LOG_UNIFORM, LOG_NORMAL)
        low, high = param.low, param.high
        if param.distribution in (NORMAL, LOG_NORMAL):
            lo, hi = (math.log(low), math.log(high)) if log else (low, high)
            # Inverse CDF of the normal truncated to [-3 sigma, +3 sigma].
            tail = float(ndtr(-_SIGMAS))
            z = float(ndtri(tail + u * (1 - 2 * tail)))
            x = (lo + hi) / 2 + z * (hi - lo) / (2 * _SIGMAS)
        else:
            if param.type == INT or param.step:
                # Widen by half a step so that both end values get a whole slice.
                half = (param.step or 1.0) / 2
                low = low - half if not log or low - half > 0 else low
                high += half
            lo, hi = (math.log(low), math.log(high)) if log else (low, high)
            x = lo + u * (hi - lo)
        return param.format(quantize(param, math.exp(x) if log else x))


class SobolSearch(Algorithm):
    """``sobol``: scrambled Sobol points, reproducible with ``random_state``."""

    name = "sobol"
    multi_objective = True  # it never looks at the objectives
    settings_spec = {
        "random_state": SettingSpec(None, "seed of the scrambling", check_int(0)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seed_text = self.settings.get("random_state")
        # Unseeded: a seed drawn once, then kept in the state.
        seed = (
            int(seed_text)
            if seed_text is not None
            else int(np.random.default_rng().integers(2**32))
        )
        self._dimensions = [_Dimension(p) for p in self.space]
        self._seed = seed
        self._drawn = 0
        self._engine = self._new_engine()
        self._seen: set[Key] = set()
        self._fallback = RandomSearch(
            self.space, maximize=self.maximize, settings={"random_state": str(seed)}
        )

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        return [
            (p.name, f"sobol needs min > 0 for a {p.distribution} parameter")
            for p in space
            if p.is_numeric and p.distribution in (LOG_UNIFORM, LOG_NORMAL) and p.low <= 0
        ]

    def _new_engine(self) -> qmc.Sobol:
        return qmc.Sobol(max(len(self._dimensions), 1), scramble=True, seed=self._seed)

    def _next_point(self) -> dict[str, str]:
        with warnings.catch_warnings():
            # scipy warns that balance needs powers of 2; points are drawn one at a time.
            warnings.simplefilter("ignore", UserWarning)
            u = self._engine.random(1)[0]
        self._drawn += 1
        return {d.param.name: d.format(float(x)) for d, x in zip(self._dimensions, u, strict=True)}

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            self._seen.add(self.space.key(trial.assignments))
        self._fallback.update(completed, active)

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for _ in range(count):
            assignments = self._next_unseen()
            if assignments is None:
                break
            self._seen.add(self.space.key(assignments))
            self._fallback.update([], [TrialRecord("", assignments, RUNNING)])
            out.append(assignments)
        return out

    def _next_unseen(self) -> dict[str, str] | None:
        for _ in range(_MAX_SKIPS):
            assignments = self._next_point()
            if self.space.key(assignments) not in self._seen:
                return assignments
        picks = self._fallback.suggest(1)
        if not picks or self.space.key(picks[0]) in self._seen:
            return None
        return picks[0]

    def dump_state(self) -> dict[str, Any]:
        return {"seed": self._seed, "drawn": self._drawn, "fallback": self._fallback.dump_state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        seed = int(state.get("seed", self._seed))
        drawn = int(state.get("drawn", 0))
        if seed != self._seed or drawn < self._drawn:
            self._seed, self._drawn = seed, 0
            self._engine = self._new_engine()
        if drawn > self._drawn:
            # Skip ahead rather than regenerate.
            self._engine.fast_forward(drawn - self._drawn)
        self._drawn = drawn
        if "fallback" in state:
            self._fallback.load_state(state["fallback"])
