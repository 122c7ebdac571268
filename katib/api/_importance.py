"""Parameter importance, computed on the server with Optuna's importance evaluators.

Our trials are handed to Optuna as finished trials of an in-memory study (the distributions
come from the experiment's search space), and one of Optuna's evaluators ranks the
parameters: PED-ANOVA (fast, the default), fANOVA, or mean decrease in impurity of a random
forest. Results are cached per experiment until it has new finished trials.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

from katib.errors import KatibError
from katib.records import ExperimentRecord, TrialRecord, TrialState

#: Evaluator names the endpoint accepts.
METHODS = ("ped-anova", "fanova", "mean-decrease-impurity")
#: Beyond this many trials the evaluators see a seeded sample (their cost grows with it).
MAX_TRIALS = 2000
#: fANOVA's forests are slow in Optuna's pure Python: a smaller sample and smaller forest.
MAX_FANOVA_TRIALS = 1000
#: Fewest finished trials an importance is computed from.
MIN_TRIALS = 4

_cache: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 64


class ImportanceUnavailableError(KatibError):
    """Too few finished trials, or a search space Optuna cannot rank."""


def _distributions(experiment: ExperimentRecord) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for p in experiment.spec.spec.parameters or []:
        space = p.feasible_space
        if p.name is None or space is None:
            continue
        kind = (p.parameter_type or "").lower()
        log = (space.distribution or "") in ("logUniform", "logNormal")
        try:
            if kind == "double" and space.min is not None and space.max is not None:
                low, high = float(space.min), float(space.max)
                out[p.name] = FloatDistribution(low, high, log=log and low > 0)
            elif kind == "int" and space.min is not None and space.max is not None:
                low_i, high_i = int(float(space.min)), int(float(space.max))
                out[p.name] = IntDistribution(low_i, high_i, log=log and low_i > 0)
            elif space.values:
                out[p.name] = CategoricalDistribution(list(dict.fromkeys(space.values)))
        except ValueError:
            continue
    # A parameter that cannot vary has no importance (and breaks some evaluators).
    return {k: d for k, d in out.items() if not d.single()}


def _value(distribution: Any, raw: str) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return raw
    if isinstance(distribution, IntDistribution):
        return int(float(raw))
    return float(raw)


def _frozen(trials: Sequence[TrialRecord], distributions: dict[str, Any]) -> list[Any]:
    from optuna.trial import create_trial

    out = []
    for t in trials:
        if t.objective is None or not math.isfinite(t.objective):
            continue
        try:
            params = {k: _value(d, t.assignments[k]) for k, d in distributions.items()}
            for k, d in distributions.items():
                if not d._contains(d.to_internal_repr(params[k])):
                    raise ValueError(k)
        except (KeyError, ValueError):
            continue  # outside today's space (a spec edited since): leave it out
        out.append(create_trial(params=params, distributions=distributions, value=t.objective))
    return out


def _evaluator(method: str) -> Any:
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        PedAnovaImportanceEvaluator,
    )

    if method == "fanova":
        return FanovaImportanceEvaluator(n_trees=16, max_depth=8, seed=0)
    if method == "mean-decrease-impurity":
        return MeanDecreaseImpurityImportanceEvaluator(seed=0)
    return PedAnovaImportanceEvaluator()


def importance(
    experiment: ExperimentRecord, trials: Sequence[TrialRecord], method: str = "ped-anova"
) -> dict[str, Any]:
    """``{"method", "trials", "importances": [{"name", "importance"}]}``, most important first.

    Raises:
        ImportanceUnavailableError: Fewer than :data:`MIN_TRIALS` succeeded trials with an
            objective, or no parameter that varies.
    """
    if method not in METHODS:
        raise ImportanceUnavailableError(f"method must be one of {', '.join(METHODS)}")
    done = [t for t in trials if t.state == TrialState.SUCCEEDED and t.objective is not None]
    last = max((t.id for t in done), default=0)
    key = (experiment.id, experiment.created_at, method, len(done), last)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    result = _compute(experiment, done, method)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _compute(
    experiment: ExperimentRecord, done: Sequence[TrialRecord], method: str
) -> dict[str, Any]:
    import warnings

    import optuna

    distributions = _distributions(experiment)
    if not distributions:
        raise ImportanceUnavailableError("no parameter of this experiment varies")
    sample = list(done)
    most = MAX_FANOVA_TRIALS if method == "fanova" else MAX_TRIALS
    if len(sample) > most:
        sample = random.Random(0).sample(sample, most)
    frozen = _frozen(sample, distributions)
    if len(frozen) < MIN_TRIALS:
        raise ImportanceUnavailableError(
            f"parameter importance needs at least {MIN_TRIALS} succeeded trials "
            f"with an objective value ({len(frozen)} so far)"
        )
    objective = experiment.spec.spec.objective
    maximize = objective is not None and objective.type == "maximize"
    direction: Literal["minimize", "maximize"] = "maximize" if maximize else "minimize"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        study = optuna.create_study(direction=direction)
        study.add_trials(frozen)
        try:
            ranked = optuna.importance.get_param_importances(
                study, evaluator=_evaluator(method), normalize=True
            )
        except (ValueError, RuntimeError) as e:
            raise ImportanceUnavailableError(f"cannot rank the parameters: {e}") from e
    return {
        "method": method,
        "trials": len(frozen),
        "importances": [
            {"name": name, "importance": round(float(value), 6)}
            for name, value in ranked.items()
        ],
    }
