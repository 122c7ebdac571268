"""Latin hypercube sampling, packaged as a third-party suggestion algorithm.

A plugin is any installed package that names an :class:`suggestion.Algorithm` subclass under
the entry-point group ``katib.suggestion``; its name then works as ``algorithmName``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import qmc

from suggestion import Algorithm, SearchSpace, SettingSpec, TrialRecord, check_int


class LatinHypercube(Algorithm):
    """Stratified random design: ``batch`` points at a time, one per stratum of each axis."""

    name = "lhs"
    settings_spec = {
        "random_state": SettingSpec(None, "seed", check_int(0)),
        "batch": SettingSpec("16", "points per hypercube", check_int(2)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seed = self.settings.get("random_state")
        self._seed = None if seed is None else int(seed)
        self._batch = int(self.settings["batch"])
        self._drawn = 0

    @classmethod
    def validate_space(
        cls, space: SearchSpace, *, settings: Mapping[str, str],
        max_trial_count: int | None, parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        return [(p.name, "lhs handles double and int parameters only")
                for p in space if not p.is_numeric]

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        pass  # a design, not a model: history does not change what comes next

    def suggest(self, count: int) -> list[dict[str, str]]:
        out = []
        for _ in range(count):
            hypercube, index = divmod(self._drawn, self._batch)
            seed = None if self._seed is None else self._seed + hypercube
            point = qmc.LatinHypercube(d=len(self.space), seed=seed).random(self._batch)[index]
            pairs = zip(self.space, point, strict=True)
            out.append({p.name: p.format(_scale(p, u)) for p, u in pairs})
            self._drawn += 1
        return out

    def dump_state(self) -> dict[str, Any]:
        return {"drawn": self._drawn}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._drawn = int(state.get("drawn", 0))


def _scale(param: Any, u: float) -> float:
    if param.distribution in ("logUniform", "logNormal"):
        return math.exp(math.log(param.low) + u * (math.log(param.high) - math.log(param.low)))
    value = param.low + u * (param.high - param.low)
    if param.step:
        value = param.low + round((value - param.low) / param.step) * param.step
    return min(max(value, param.low), param.high)
