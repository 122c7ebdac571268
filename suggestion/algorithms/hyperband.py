"""Hyperband: successive halving over brackets, as Katib's hyperband suggestion service runs it.

Katib's reference is ``pkg/suggestion/v1beta1/hyperband/service.py``. With ``R = r_l`` and
``s_max = floor(log(R) / log(eta))``, brackets run for ``s = s_max, ..., 0``. Bracket ``s``
starts ``n = ceil((s_max + 1) * eta**s / (s + 1))`` random configurations with the resource
``R * eta**-s``. Within a bracket, once every trial of a rung has finished, the best
``ceil(size / eta)`` configurations are suggested again with ``eta`` times the resource, until
the rung with the full resource ``R``. A bracket's last rung needs no result, so the next
bracket starts as soon as that rung has been handed out; after the last bracket ``suggest``
returns [] for good and the experiment ends.

The resource is written into the parameter named by ``resource_name``, formatted for its type
(ints rounded), whatever that parameter's feasible space says: Katib's own example fixes
``num-epochs`` to ``[1, 1]`` and still trains the promoted configurations for 2 epochs.

Where this differs from Katib's code, on purpose:

- Katib round-trips the resource through ``int()`` between calls, so for an ``r_l`` that is
  not a power of ``eta`` its later rungs get truncated resources (r_l=10, eta=3: 1, 3, 9
  instead of 1, 3, 10). Here rung ``i`` of bracket ``s`` gets exactly ``R * eta**(i - s)``.
- Katib takes each bracket's size from the controller's request count and fails when a
  trial of the rung did not succeed; here sizes follow the formula above, trials without an
  objective value are never promoted, and a rung without any result ends its bracket.
- ``floor`` and ``ceil`` tolerate float noise (``log(243) / log(3)`` is 4.999...; Katib's
  ``int()`` makes that 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from suggestion._base import Algorithm, SettingSpec, TrialRecord, check_float
from suggestion._space import DOUBLE, INT, SearchSpace
from suggestion.algorithms.random import finite_size, sample_parameter

# Draws before a configuration already tried is accepted again (only tiny spaces get near).
_MAX_RETRIES = 50
# Slack for float noise in floor/ceil of exact ratios.
_EPS = 1e-9


def _check_present(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _floor(x: float) -> int:
    return math.floor(x + _EPS)


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS)


@dataclass(frozen=True)
class Schedule:
    """The bracket arithmetic of one ``(r_l, eta)`` pair."""

    r_l: float
    eta: float

    @property
    def s_max(self) -> int:
        # Katib: int(log(r_l) / log(eta)); r_l < eta gives a single bracket.
        return max(0, _floor(math.log(self.r_l) / math.log(self.eta)))

    def bracket_size(self, s: int) -> int:
        """``n``: how many configurations bracket ``s`` starts with."""
        return _ceil((self.s_max + 1) * self.eta**s / (s + 1))

    def resource(self, s: int, i: int) -> float:
        """The resource of rung ``i`` of bracket ``s``."""
        return self.r_l * self.eta ** (i - s)

    def promoted(self, s: int, i: int) -> int:
        """How many configurations of rung ``i`` go on to rung ``i + 1`` (Katib's formula)."""
        n_i = _ceil(self.bracket_size(s) * self.eta ** (-i))
        return _ceil(n_i / self.eta)

    def rung_sizes(self, s: int) -> list[int]:
        """Sizes of the rungs of bracket ``s`` when every trial reports a value."""
        sizes = [self.bracket_size(s)]
        for i in range(s):
            sizes.append(min(sizes[-1], self.promoted(s, i)))
        return sizes

    def brackets(self) -> list[list[tuple[int, float]]]:
        """``(configurations, resource)`` of every rung, bracket by bracket, in run order."""
        return [
            [(size, self.resource(s, i)) for i, size in enumerate(self.rung_sizes(s))]
            for s in range(self.s_max, -1, -1)
        ]

    @property
    def total_trials(self) -> int:
        return sum(size for bracket in self.brackets() for size, _ in bracket)


def _parse_schedule(settings: Mapping[str, str]) -> Schedule | None:
    """The schedule of valid settings, None when they are missing or bad."""
    try:
        r_l = float(settings["r_l"])
        eta = float(settings.get("eta", "3"))
    except (KeyError, TypeError, ValueError):
        return None
    if not (r_l > 0 and eta > 1 and math.isfinite(r_l) and math.isfinite(eta)):
        return None
    return Schedule(r_l, eta)


class Hyperband(Algorithm):
    """Katib's hyperband; ``resource_name`` and ``r_l`` are required (see the module docstring).

    State: the bracket ``s`` and rung ``i`` in progress and the members of that rung, each
    with its assignments, whether it was handed out, and the trial name once a trial with
    those assignments shows up in :meth:`update`.
    """

    name = "hyperband"
    supports_warm_start = False  # its brackets run their own configurations
    settings_spec = {
        "r_l": SettingSpec(
            None,
            "the largest resource a configuration gets (Katib's R); required",
            check_float(0.0, exclusive_min=True),
        ),
        "resource_name": SettingSpec(
            None,
            "the int or double parameter that carries the resource; required",
            _check_present,
        ),
        "eta": SettingSpec(
            "3",
            "the halving rate: a rung keeps 1/eta of its configurations",
            check_float(1.0, exclusive_min=True),
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schedule = _parse_schedule(self.settings)
        if schedule is None or "resource_name" not in self.settings:
            raise ValueError("hyperband needs valid r_l and resource_name settings")
        self.schedule = schedule
        self.resource = self.space[self.settings["resource_name"]]
        self._others = [p for p in self.space if p.name != self.resource.name]
        self._rng = np.random.default_rng()
        self._bracket = schedule.s_max  # -1 once every bracket has been handed out
        self._rung = 0
        self._members: list[dict[str, Any]] | None = None  # None: bracket not started yet
        self._restored = False
        self._seen: set[tuple[str, ...]] = set()
        self._finished: dict[str, TrialRecord] = {}
        self._bound: set[str] = set()

    # --- validation ------------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        problems = super().validate_settings(settings)
        for key in ("r_l", "resource_name"):
            if key not in settings:
                problems.append((key, "must be set: hyperband needs r_l and resource_name"))
        return problems

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
        name = settings.get("resource_name")
        if name:
            if name not in space.names:
                problems.append((None, f"resource_name {name!r} must name one of the parameters"))
            elif space[name].type not in (INT, DOUBLE):
                problems.append(
                    (
                        name,
                        "the resource_name parameter must be int or double, "
                        f"not {space[name].type}",
                    )
                )
        schedule = _parse_schedule(settings)
        if schedule is not None and parallel_trial_count is not None:
            # The first bracket hands out all its configurations at once (Katib's rule).
            needed = schedule.bracket_size(schedule.s_max)
            if parallel_trial_count < needed:
                problems.append(
                    (
                        None,
                        f"parallelTrialCount must be not less than {needed}, the size of the "
                        f"first bracket for r_l={settings['r_l']} and eta={schedule.eta:g}",
                    )
                )
        return problems

    @classmethod
    def example_settings(cls, space: SearchSpace) -> dict[str, str] | None:
        """Settings that run on ``space`` with parallelTrialCount 3, or None (contract tests).

        The resource is an unstepped int or double parameter that holds 1 and 3 (r_l=3,
        eta=3); the other parameters need room for the 4 configurations that share the
        resource 3, or hyperband would have to repeat one.
        """
        for param in space:
            if param.type in (INT, DOUBLE) and not param.step and param.low <= 1 <= 3 <= param.high:
                others = SearchSpace(tuple(p for p in space if p.name != param.name))
                size = finite_size(others)
                if size is not None and size < 4:
                    return None
                return {"resource_name": param.name, "r_l": "3", "eta": "3"}
        return None

    @property
    def total_trials(self) -> int:
        """Trials of the whole schedule when every trial reports a value."""
        return self.schedule.total_trials

    # --- the algorithm ---------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in (*completed, *active):
            key = self.space.key(trial.assignments)
            self._seen.add(key)
            if trial.is_finished:
                self._finished[trial.name] = trial
            if trial.name not in self._bound:
                self._bind(trial.name, key)

    def _bind(self, name: str, key: tuple[str, ...]) -> None:
        for member in self._members or ():
            if (
                member["suggested"]
                and member["trial"] is None
                and self.space.key(member["assignments"]) == key
            ):
                member["trial"] = name
                self._bound.add(name)
                return

    def suggest(self, count: int) -> list[dict[str, str]]:
        if self._restored:
            self._restored = False
            # Handed out before the restart but never created: hand them out again.
            for member in self._members or ():
                if member["trial"] is None:
                    member["suggested"] = False
        out: list[dict[str, str]] = []
        while len(out) < count and self._bracket >= 0:
            if self._members is None:
                self._members = self._start_bracket()
            waiting = [m for m in self._members if not m["suggested"]]
            if waiting:
                for member in waiting[: count - len(out)]:
                    member["suggested"] = True
                    out.append(dict(member["assignments"]))
                continue
            if self._rung < self._bracket:
                if not self._rung_finished():
                    break  # the rung is still running: nothing to suggest until it ends
                promoted = self._promote()
                if promoted:
                    self._rung += 1
                    self._members = promoted
                    continue
            self._next_bracket()
        return out

    def _start_bracket(self) -> list[dict[str, Any]]:
        s = self._bracket
        resource = self.resource.format(self.schedule.resource(s, 0))
        members: list[dict[str, Any]] = []
        for _ in range(self.schedule.bracket_size(s)):
            assignments = self._draw(resource)
            self._seen.add(self.space.key(assignments))
            members.append(_member(assignments))
        return members

    def _draw(self, resource: str) -> dict[str, str]:
        """A random configuration not tried yet where the space allows, with ``resource``."""
        candidate = self._sample(resource)
        for _ in range(_MAX_RETRIES):
            if self.space.key(candidate) not in self._seen:
                break
            candidate = self._sample(resource)
        return candidate

    def _sample(self, resource: str) -> dict[str, str]:
        drawn = {p.name: sample_parameter(p, self._rng) for p in self._others}
        return {p.name: resource if p is self.resource else drawn[p.name] for p in self.space}

    def _rung_finished(self) -> bool:
        assert self._members is not None
        return all(m["trial"] is not None and m["trial"] in self._finished for m in self._members)

    def _promote(self) -> list[dict[str, Any]]:
        """The next rung: the best configurations of this one, with ``eta`` times the resource."""
        assert self._members is not None
        scored = [(self._finished[m["trial"]].objective, m["assignments"]) for m in self._members]
        # Trials without a value (failed, no metrics) lose; sorted() keeps ties in order.
        ranked = sorted(
            ((value, a) for value, a in scored if value is not None),
            key=lambda item: -item[0] if self.maximize else item[0],
        )
        keep = self.schedule.promoted(self._bracket, self._rung)
        resource = self.resource.format(self.schedule.resource(self._bracket, self._rung + 1))
        members = []
        for _, assignments in ranked[:keep]:
            promoted = {**assignments, self.resource.name: resource}
            self._seen.add(self.space.key(promoted))
            members.append(_member(promoted))
        return members

    def _next_bracket(self) -> None:
        self._bracket -= 1
        self._rung = 0
        self._members = None

    # --- state -----------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        return {
            "bracket": self._bracket,
            "rung": self._rung,
            "members": None if self._members is None else [dict(m) for m in self._members],
            "rng": self._rng.bit_generator.state,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self._rng.bit_generator.state = dict(state["rng"])
        self._bracket = int(state.get("bracket", self._bracket))
        self._rung = int(state.get("rung", 0))
        members = state.get("members")
        self._members = (
            None
            if members is None
            else [
                {
                    "assignments": {str(k): str(v) for k, v in m["assignments"].items()},
                    "suggested": bool(m["suggested"]),
                    "trial": None if m.get("trial") is None else str(m["trial"]),
                }
                for m in members
            ]
        )
        self._bound = {m["trial"] for m in self._members or () if m["trial"] is not None}
        for member in self._members or ():
            self._seen.add(self.space.key(member["assignments"]))
        self._restored = True


def _member(assignments: Mapping[str, str]) -> dict[str, Any]:
    return {"assignments": dict(assignments), "suggested": False, "trial": None}
