"""CMA-ES (``cmaes``) over the numeric parameters, with IPOP / BIPOP restarts.

This module owns the evolution strategy's bookkeeping around the ``cmaes`` library's
:class:`cmaes.CMA`: mapping parameters onto the unit cube, asking points in generations of
``population_size``, telling a generation once enough of its trials have finished, and
restarting with a new population size when the strategy has converged.

Katib's settings and checks (``pkg/suggestion/v1beta1/optuna/service.py``,
``_validate_cmaes_setting``; the goptuna service adds ``bipop``):

* ``random_state`` (>= 0): seed.
* ``sigma`` (> 0; Katib checks >= 0 but CMA-ES cannot start from 0): initial step size on the
  unit cube every parameter is scaled to, as in optuna's ``CmaEsSampler``. Default 1/6.
* ``restart_strategy`` (``none``): ``ipop`` doubles the population at each restart, ``bipop``
  alternates such large populations with small ones (Hansen 2009); ``none`` (or Katib's
  ``None``) never restarts.
* At least 2 double or int parameters, as Katib requires.

Parameter handling:

* ``logUniform`` / ``logNormal`` parameters are searched on the log scale; ``normal`` ones
  like ``uniform`` ones (CMA-ES has its own search distribution).
* int and stepped parameters are searched continuously over their range widened by half a
  step, then rounded onto their grid; the continuous point is what CMA-ES is told.
* categorical and discrete parameters are drawn uniformly at random for each point (as
  optuna's ``CmaEsSampler`` does with its independent sampler).

Trials: the first ``population_size`` finished trials of a generation are told together;
later ones of a told generation, and trials CMA-ES did not propose, are ignored. A trial
without an objective (failed, no metrics, non-finite) is told as the worst objective seen so
far, so that CMA-ES moves away from failing regions; while no trial has succeeded at all,
failures are dropped and the generation is refilled instead.

No point is suggested twice. When CMA-ES proposes a point (after rounding) that has already
finished, it is counted for the generation with the known objective, at no cost, and another
is asked; so the strategy keeps progressing, and converges and restarts, even where rounding
makes it propose tried points over and over. After many such asks, or once it has converged
with ``restart_strategy: none``, a random unseen point is suggested instead; it does not
count for CMA-ES.

Cost per suggestion is constant in the history: the history is never re-read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cmaes import CMA

from suggestion._base import (
    RUNNING,
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_choice,
    check_float,
    check_int,
)
from suggestion._space import DOUBLE, INT, LOG_NORMAL, LOG_UNIFORM, Parameter, SearchSpace
from suggestion._state import STATE_VERSION, InvalidStateError, check_version, decode, encode
from suggestion.algorithms.random import RandomSearch, quantize, sample_parameter

# Asks (each well under 0.1 ms) before a point already tried is replaced by a random unseen one.
_MAX_ASKS = 50
# Population growth per IPOP / BIPOP restart; 2 is what Hansen, optuna and goptuna use.
_INC_POPSIZE = 2
_DEFAULT_SIGMA = 1 / 6
_NO_RESTART = ("none", "None")

Key = tuple[str, ...]


@dataclass(frozen=True)
class _Axis:
    """One numeric parameter as a unit-interval coordinate."""

    param: Parameter
    lo: float
    hi: float
    log: bool

    @classmethod
    def of(cls, param: Parameter) -> _Axis:
        half = 0.0
        if param.type == INT or param.step:
            # Every grid value gets an equally wide slice of the interval.
            half = (param.step or 1.0) / 2
        low, high = param.low - half, param.high + half
        log = param.distribution in (LOG_UNIFORM, LOG_NORMAL)
        if log:
            low = low if low > 0 else param.low
            return cls(param, math.log(low), math.log(high), True)
        return cls(param, low, high, False)

    def format(self, u: float) -> str:
        x = self.lo + min(max(u, 0.0), 1.0) * (self.hi - self.lo)
        return self.param.format(quantize(self.param, math.exp(x) if self.log else x))


def _cma_from(data: Any, dim: int) -> CMA:
    """A CMA rebuilt from its state as :func:`_cma_state` stored it (data only, no pickle)."""
    fields = decode(data)
    if not isinstance(fields, dict) or fields.get("_n_dim") != dim:
        raise InvalidStateError("cmaes: the stored CMA does not fit this search space")
    cma = CMA.__new__(CMA)
    try:
        # The library's own pickle protocol, fed from checked data instead of a pickle.
        cma.__setstate__(fields)
        cma.population_size  # noqa: B018 - fails now if fields are missing
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InvalidStateError(f"cmaes: the stored CMA does not load: {e}") from e
    return cma


def _cma_state(cma: CMA) -> Any:
    return encode(cma.__getstate__())


def numeric_count(space: SearchSpace) -> int:
    """How many double and int parameters ``space`` has."""
    return sum(1 for p in space if p.type in (DOUBLE, INT))


class CMAESSearch(Algorithm):
    """``cmaes``: CMA-ES on the double and int parameters; see the module docstring."""

    name = "cmaes"
    settings_spec = {
        "random_state": SettingSpec(None, "seed of the random generators", check_int(0)),
        "sigma": SettingSpec(
            None,
            "initial step size on the unit cube (default 1/6)",
            check_float(0.0, exclusive_min=True),
        ),
        "restart_strategy": SettingSpec(
            "none", "ipop, bipop or none", check_choice("ipop", "bipop", "none", "None")
        ),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        seed = self.settings.get("random_state")
        self._rng = np.random.default_rng(None if seed is None else int(seed))
        self._axes = [_Axis.of(p) for p in self.space if p.type in (DOUBLE, INT)]
        self._others = [p for p in self.space if p.type not in (DOUBLE, INT)]
        self._sigma0 = float(self.settings.get("sigma", _DEFAULT_SIGMA))
        self._strategy = self.settings.get("restart_strategy", "none")
        dim = len(self._axes)
        self._bounds = np.array([[0.0, 1.0]] * dim)
        self._cma = self._new_cma(np.full(dim, 0.5), self._sigma0, None)
        self._popsize0 = self._cma.population_size
        # Restart bookkeeping: restarts so far, population doublings (IPOP's and BIPOP's large
        # regime), and BIPOP's evaluation budget split between small and large populations.
        self._restarts = 0
        self._doublings = 0
        self._small_evals = 0
        self._large_evals = 0
        self._poptype = "small"
        # The current generation: asked points not finished yet (by assignment) and
        # finished ones waiting for the generation to fill up.
        self._pending: dict[Key, list[float]] = {}
        self._solutions: list[tuple[list[float], float | None]] = []
        self._worst: float | None = None
        self._seen: set[Key] = set()
        self._finished: set[str] = set()
        # Finished points' values (None: failed), rebuilt from the history on every start.
        self._values: dict[Key, float | None] = {}
        fallback_settings = {} if seed is None else {"random_state": str(seed)}
        self._fallback = RandomSearch(
            self.space, maximize=self.maximize, settings=fallback_settings
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
        count = numeric_count(space)
        problems: list[tuple[str | None, str]] = []
        if count < 2:
            problems.append((None, f"cmaes needs at least 2 double or int parameters, got {count}"))
        problems.extend(
            (p.name, f"cmaes needs min > 0 for a {p.distribution} parameter")
            for p in space
            if p.type in (DOUBLE, INT)
            and p.distribution in (LOG_UNIFORM, LOG_NORMAL)
            and p.low <= 0
        )
        return problems

    def _new_cma(self, mean: np.ndarray, sigma: float, population_size: int | None) -> CMA:
        return CMA(
            mean=mean,
            sigma=sigma,
            bounds=self._bounds,
            seed=int(self._rng.integers(2**31)),
            population_size=population_size,
        )

    # History -----------------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in active:
            self._seen.add(self.space.key(trial.assignments))
        for trial in completed:
            key = self.space.key(trial.assignments)
            self._seen.add(key)
            if trial.name in self._finished:
                continue
            self._finished.add(trial.name)
            value = self._internal_value(trial.objective)
            self._values.setdefault(key, value)
            if value is not None and (self._worst is None or value > self._worst):
                self._worst = value
            # Only points of the current generation count; after a restart of the
            # controller, those already collected are no longer pending either.
            x = self._pending.pop(key, None)
            if x is not None:
                self._collect(x, value)
        self._fallback.update(completed, active)

    def _collect(self, x: list[float], value: float | None) -> None:
        self._solutions.append((x, value))
        if len(self._solutions) >= self._cma.population_size:
            self._tell()

    def _internal_value(self, objective: float | None) -> float | None:
        """The objective as CMA-ES minimises it; None for no usable value."""
        if objective is None or not math.isfinite(objective):
            return None
        return -objective if self.maximize else objective

    def _tell(self) -> None:
        if self._worst is None:
            # Nothing has succeeded yet: no value to rank by. Refill the generation.
            self._solutions = []
            return
        worst = self._worst
        told = [
            (np.asarray(x, dtype=float), worst if value is None else value)
            for x, value in self._solutions[: self._cma.population_size]
        ]
        self._cma.tell(told)
        self._solutions = []
        self._pending = {}
        if self._cma.should_stop() and self._strategy not in _NO_RESTART:
            self._restart()

    def _restart(self) -> None:
        """A new CMA-ES from a random point, with the population the strategy calls for."""
        evals = self._cma.population_size * self._cma.generation
        sigma = self._sigma0
        self._restarts += 1
        if self._strategy == "ipop":
            self._doublings += 1
            popsize = self._popsize0 * _INC_POPSIZE**self._doublings
        else:  # bipop, following the cmaes library's example and Hansen (2009)
            if self._poptype == "small":
                self._small_evals += evals
            else:
                self._large_evals += evals
            if self._small_evals < self._large_evals:
                self._poptype = "small"
                multiplier = _INC_POPSIZE**self._doublings
                popsize = math.floor(self._popsize0 * multiplier ** (self._rng.uniform() ** 2))
                sigma = self._sigma0 * 10 ** (-2 * self._rng.uniform())
            else:
                self._poptype = "large"
                self._doublings += 1
                popsize = self._popsize0 * _INC_POPSIZE**self._doublings
        mean = self._rng.uniform(size=len(self._axes))
        self._cma = self._new_cma(mean, sigma, max(popsize, 2))
        self._pending = {}

    @property
    def generation(self) -> int:
        """Generations told to the current CMA-ES (since its last restart)."""
        return int(self._cma.generation)

    @property
    def population_size(self) -> int:
        return int(self._cma.population_size)

    @property
    def restarts(self) -> int:
        return self._restarts

    # Suggestions -------------------------------------------------------------------------

    def suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for _ in range(count):
            assignments = self._ask_unseen()
            if assignments is None:
                break
            self._seen.add(self.space.key(assignments))
            self._fallback.update([], [TrialRecord("", assignments, RUNNING)])
            out.append(assignments)
        return out

    def _ask_unseen(self) -> dict[str, str] | None:
        # Converged without restarts: CMA-ES would only propose what it has tried.
        asks = 0 if self._strategy in _NO_RESTART and self._cma.should_stop() else _MAX_ASKS
        for _ in range(asks):
            # Reseeded from our own generator so that the state needs only its position
            # (a pickled CMA drops its generator).
            self._cma.reseed_rng(int(self._rng.integers(2**32)))
            x = self._cma.ask()
            values = {
                axis.param.name: axis.format(float(u))
                for axis, u in zip(self._axes, x, strict=True)
            }
            values.update((p.name, sample_parameter(p, self._rng)) for p in self._others)
            assignments = {p.name: values[p.name] for p in self.space}
            key = self.space.key(assignments)
            point = [float(u) for u in x]
            if key not in self._seen:
                self._pending[key] = point
                return assignments
            if key in self._values:
                self._collect(point, self._values[key])
        picks = self._fallback.suggest(1)
        if not picks or self.space.key(picks[0]) in self._seen:
            return None
        return picks[0]

    # State -------------------------------------------------------------------------------

    def dump_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "cma": _cma_state(self._cma),
            "rng": self._rng.bit_generator.state,
            "pending": [[list(key), x] for key, x in self._pending.items()],
            "solutions": [[x, value] for x, value in self._solutions],
            "worst": self._worst,
            "restarts": self._restarts,
            "doublings": self._doublings,
            "population_size": self._cma.population_size,
            "small_evals": self._small_evals,
            "large_evals": self._large_evals,
            "poptype": self._poptype,
            "fallback": self._fallback.dump_state(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        check_version(state, self.name)
        self._cma = _cma_from(state.get("cma"), len(self._axes))
        if "rng" in state:
            self._rng.bit_generator.state = dict(state["rng"])
        self._pending = {tuple(key): list(x) for key, x in state.get("pending", [])}
        self._solutions = [(list(x), value) for x, value in state.get("solutions", [])]
        self._worst = state.get("worst")
        self._restarts = int(state.get("restarts", 0))
        self._doublings = int(state.get("doublings", 0))
        self._small_evals = int(state.get("small_evals", 0))
        self._large_evals = int(state.get("large_evals", 0))
        self._poptype = str(state.get("poptype", "small"))
        if "fallback" in state:
            self._fallback.load_state(state["fallback"])
