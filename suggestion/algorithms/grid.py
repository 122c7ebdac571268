"""Grid search: every combination of the parameters' grids, in order, each once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from suggestion._base import Algorithm, SettingSpec, TrialRecord, check_int
from suggestion._space import DOUBLE, SearchSpace


def grid_points(space: SearchSpace) -> int:
    """The number of grid points, computed arithmetically (a grid may be astronomically big)."""
    size = 1
    for param in space:
        size *= param.grid_size()
    return size


class GridSearch(Algorithm):
    """Exhaustive grid. Doubles need a ``step``; int steps default to 1.

    Points are visited in row-major order (the last parameter varies fastest) through a cursor,
    so even a huge grid costs nothing to hold. The experiment ends once every point has been
    tried (``suggest`` returns []).
    """

    name = "grid"
    settings_spec = {
        # Accepted for compatibility with Katib's settings; the grid order is deterministic.
        "random_state": SettingSpec(None, "accepted for compatibility; unused", check_int(0)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sizes = [p.grid_size() for p in self.space]
        self._total = grid_points(self.space)
        self._cursor = 0
        self._seen: set[tuple[str, ...]] = set()

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        problems: list[tuple[str | None, str]] = []
        for param in space:
            if param.type == DOUBLE and not param.step:
                problems.append(
                    (param.name, "grid needs feasibleSpace.step for a double parameter")
                )
        if problems:
            return problems
        size = grid_points(space)
        if max_trial_count is not None and max_trial_count > size:
            problems.append(
                (None, f"maxTrialCount {max_trial_count} exceeds the grid's {size} points")
            )
        return problems

    def _point(self, index: int) -> tuple[str, ...]:
        coords: list[str] = []
        for param, size in zip(reversed(self.space.parameters), reversed(self._sizes),
                               strict=True):
            index, k = divmod(index, size)
            coords.append(param.grid_value(k))
        return tuple(reversed(coords))

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            self._seen.add(self.space.key(trial.assignments))

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        while len(out) < count and self._cursor < self._total:
            point = self._point(self._cursor)
            self._cursor += 1
            if point in self._seen:
                continue
            self._seen.add(point)
            out.append(dict(zip(self.space.names, point, strict=True)))
        return out

    def dump_state(self) -> dict[str, Any]:
        return {"cursor": self._cursor}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._cursor = int(state.get("cursor", 0))
