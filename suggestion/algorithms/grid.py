"""Grid search: every combination of the parameters' grids, each once, in a seeded random order.

Katib's ``grid`` is optuna's ``GridSampler``, which visits the grid's points in a random order
(seeded by ``random_state``), so that a budget smaller than the grid still samples the whole
space rather than one corner of it. Here the order is a keyed pseudo-random permutation of the
point indexes ``[0, N)``: a Feistel network over the smallest even power of two that holds
``N``, with cycle walking (an index that lands outside ``[0, N)`` is permuted again until it
lands inside). A bijection on the larger domain, walked this way, is a bijection on ``[0, N)``,
and needs no list: the ``k``-th point of a grid of 10^24 points costs a few hashes. An index is
turned into a point by mixed-radix decoding over the parameters' grid sizes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from suggestion._base import Algorithm, SettingSpec, TrialRecord, check_int
from suggestion._space import DOUBLE, SearchSpace

# Feistel rounds: 4 already give a pseudo-random permutation (Luby-Rackoff); 6 for margin.
_ROUNDS = 6


def grid_points(space: SearchSpace) -> int:
    """The number of grid points, computed arithmetically (a grid may be astronomically big)."""
    size = 1
    for param in space:
        size *= param.grid_size()
    return size


class IndexPermutation:
    """A keyed bijection of ``[0, size)`` that is computed, never listed.

    A balanced Feistel network on ``2 * half`` bits (``4 ** half >= size``, so at most four
    times ``size``) with a SHAKE-256 round function keyed by ``seed``; indexes outside
    ``[0, size)`` are cycle-walked. The expected number of walks per index is below 4.
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 1:
            raise ValueError(f"a permutation needs at least one element, got {size}")
        self.size = size
        self._half = max(1, ((size - 1).bit_length() + 1) // 2)
        self._mask = (1 << self._half) - 1
        self._width = (self._half + 7) // 8
        self._key = hashlib.sha256(b"katib-grid:" + str(seed).encode()).digest()

    def _round(self, number: int, value: int) -> int:
        data = self._key + bytes((number,)) + value.to_bytes(self._width, "big")
        digest = hashlib.shake_256(data).digest(self._width)
        return int.from_bytes(digest, "big") & self._mask

    def _encrypt(self, x: int) -> int:
        left, right = x >> self._half, x & self._mask
        for number in range(_ROUNDS):
            left, right = right, left ^ self._round(number, right)
        return (left << self._half) | right

    def __call__(self, index: int) -> int:
        """The position ``index`` maps to, in ``[0, size)``."""
        if not 0 <= index < self.size:
            raise IndexError(f"index {index} outside [0, {self.size})")
        if self.size == 1:
            return 0
        x = self._encrypt(index)
        while x >= self.size:
            x = self._encrypt(x)
        return x


class GridSearch(Algorithm):
    """Exhaustive grid in a seeded random order. Doubles need a ``step``; int steps default to 1.

    ``random_state`` seeds the order (an unseeded instance draws a seed once and keeps it in
    its state). A cursor walks the permutation, so a restarted experiment continues the same
    order. Points already in the history are skipped. The experiment ends once every point
    has been suggested (``suggest`` returns []).
    """

    name = "grid"
    multi_objective = True  # it never looks at the objectives
    settings_spec = {
        "random_state": SettingSpec(None, "seed of the visiting order", check_int(0)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sizes = [p.grid_size() for p in self.space]
        self._total = grid_points(self.space)
        seed_text = self.settings.get("random_state")
        self._seed = int(seed_text) if seed_text is not None else secrets.randbits(32)
        self._order = IndexPermutation(self._total, self._seed)
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

    @property
    def total(self) -> int:
        """How many points the grid has."""
        return self._total

    def point(self, index: int) -> tuple[str, ...]:
        """The grid point of row-major ``index`` (the last parameter varies fastest)."""
        coords: list[str] = []
        for param, size in zip(
            reversed(self.space.parameters), reversed(self._sizes), strict=True
        ):
            index, k = divmod(index, size)
            coords.append(param.grid_value(k))
        return tuple(reversed(coords))

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            self._seen.add(self.space.key(trial.assignments))

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        while len(out) < count and self._cursor < self._total:
            point = self.point(self._order(self._cursor))
            self._cursor += 1
            if point in self._seen:
                continue
            self._seen.add(point)
            out.append(dict(zip(self.space.names, point, strict=True)))
        return out

    def dump_state(self) -> dict[str, Any]:
        # The seed as text: JSON numbers beyond 2**53 do not survive every reader.
        return {"cursor": self._cursor, "seed": str(self._seed)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self._cursor = int(state.get("cursor", 0))
        if "seed" in state:
            self._seed = int(state["seed"])
            self._order = IndexPermutation(self._total, self._seed)
