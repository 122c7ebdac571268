"""Random search: independent draws from each parameter's distribution."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from suggestion._base import Algorithm, SettingSpec, TrialRecord, check_int
from suggestion._space import (
    DOUBLE,
    INT,
    LOG_NORMAL,
    LOG_UNIFORM,
    NORMAL,
    Parameter,
    SearchSpace,
)

# Draws before a duplicate is accepted; only small discrete spaces get near it.
_MAX_RETRIES = 50
# Largest finite space whose unseen points are listed once random draws keep hitting seen
# ones (a nearly exhausted space of a few hundred points defeats the retries).
_MAX_ENUMERATED = 100_000


def sample_parameter(param: Parameter, rng: np.random.Generator) -> str:
    """One draw of ``param`` as its formatted string.

    ``normal`` is centred in [min, max] with sigma = range/6 and ``logNormal`` the same in log
    space; both are truncated to the feasible space so that no draw falls outside it.
    """
    if not param.is_numeric:
        return param.values[int(rng.integers(len(param.values)))]
    low, high = param.low, param.high
    if param.distribution in (LOG_UNIFORM, LOG_NORMAL):
        lo, hi = math.log(low), math.log(high)
    else:
        lo, hi = low, high
    if param.distribution in (NORMAL, LOG_NORMAL):
        mu, sigma = (lo + hi) / 2, (hi - lo) / 6 or 1.0
        x = float(rng.normal(mu, sigma))
        for _ in range(_MAX_RETRIES):
            if lo <= x <= hi:
                break
            x = float(rng.normal(mu, sigma))
        x = min(max(x, lo), hi)
    elif param.type == INT and param.distribution not in (LOG_UNIFORM, LOG_NORMAL):
        # Every integer in [low, high] equally likely, including both ends.
        x = float(rng.integers(int(low), int(high) + 1))
    else:
        x = float(rng.uniform(lo, hi))
    if param.distribution in (LOG_UNIFORM, LOG_NORMAL):
        x = math.exp(x)
    return param.format(quantize(param, x))


def quantize(param: Parameter, x: float) -> float:
    """Snap ``x`` onto the parameter's step grid (and integers for int), inside bounds."""
    if param.step:
        k = round((x - param.low) / param.step)
        k = max(0, min(k, int(math.floor((param.high - param.low) / param.step + 1e-9))))
        x = param.low + k * param.step
    if param.type == INT:
        x = float(round(x))
    if param.type in (INT, DOUBLE):
        x = min(max(x, param.low), param.high)
    return x


def finite_size(space: SearchSpace) -> int | None:
    """How many points ``space`` has (an upper bound), or None if it is continuous or huge."""
    size = 1
    for param in space:
        if not param.is_numeric:
            size *= len(param.values)
        elif param.type == DOUBLE and not param.step:
            return None
        else:
            step = param.step or 1.0
            size *= int(math.floor((param.high - param.low) / step + 1e-9)) + 1
        if size > _MAX_ENUMERATED:
            return None
    return size


class RandomSearch(Algorithm):
    """Random search, reproducible with ``random_state``."""

    name = "random"
    multi_objective = True  # it never looks at the objectives
    settings_spec = {
        "random_state": SettingSpec(None, "seed of the random generator", check_int(0)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seed = self.settings.get("random_state")
        self._rng = np.random.default_rng(None if seed is None else int(seed))
        self._seen: set[tuple[str, ...]] = set()

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            self._seen.add(self.space.key(trial.assignments))

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for _ in range(count):
            candidate = self._draw()
            for _ in range(_MAX_RETRIES):
                if self.space.key(candidate) not in self._seen:
                    break
                candidate = self._draw()
            if self.space.key(candidate) in self._seen:
                candidate = self._draw_unseen() or candidate
            self._seen.add(self.space.key(candidate))
            out.append(candidate)
        return out

    def _draw_unseen(self) -> dict[str, str] | None:
        """A uniform pick among the points not seen yet, if the space is small enough to list."""
        if finite_size(self.space) is None:
            return None
        axes = [p.grid() for p in self.space]
        unseen = [point for point in itertools.product(*axes) if point not in self._seen]
        if not unseen:
            return None
        point = unseen[int(self._rng.integers(len(unseen)))]
        return dict(zip(self.space.names, point, strict=True))

    def _draw(self) -> dict[str, str]:
        return {p.name: sample_parameter(p, self._rng) for p in self.space}

    def dump_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state}

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self._rng.bit_generator.state = dict(state["rng"])
