"""Bayesian optimization (Katib's ``bayesianoptimization``): a surrogate model and an acquisition
function over the unit-cube encoding of the search space.

Katib runs scikit-optimize's ``Optimizer`` here; this module keeps its settings, defaults and
behaviour (the ``gp_hedge`` portfolio, EI/PI/LCB with ``xi=0.01`` and ``kappa=1.96``, the
constant liar for batches) but does less work per suggestion, so that it stays fast with a
long history:

* **Encoding.** Each parameter maps to ``[0, 1]``: doubles and ints linearly, or in log space
  for ``logUniform``/``logNormal`` (``normal`` is modelled like ``uniform``: the prior only
  shapes random draws); discrete numbers by their rank among the sorted values; categorical
  values (and non-numeric discrete ones) one-hot. Ints and steps are snapped onto their grid
  before the acquisition function sees a candidate.
* **GP.** scikit-learn's ``GaussianProcessRegressor`` with ``ConstantKernel * Matern(2.5, ARD)
  + WhiteKernel`` fits the hyperparameters on the standardized objective (``normalize_y``,
  plus a Yeo-Johnson warp against heavy tails), warm-started from the previous fit, with a
  random restart while the history is short (<= 100) and none after. They are refitted once
  the history has grown by a tenth (every trial up to 20, every 10th at 100); in between the
  model is conditioned on all observations with the last ones. With more than
  ``_HYPER_SUBSET`` observations they are fitted on a random subset of that size that stays
  stable as the history grows (the likelihood costs O(n^3) per evaluation: at 1,000 points a
  fit would take seconds), and the model is then conditioned on up to ``_MAX_CONDITIONING``
  observations (the best half and an even spread of the rest beyond that). Predictions (mean,
  std and their gradients) come straight from the Cholesky factor, with the white noise left
  out of the predictive variance as skopt does.
* **Acquisition.** Scored on a few thousand random candidates plus perturbations of the best
  observed points (skopt scores 10,000); ``lbfgs`` then polishes the best three of each
  function with L-BFGS-B over the numeric columns, all starts in one scipy call. ``auto``
  means ``lbfgs`` for the GP when every parameter is a double or an int and ``sampling``
  otherwise (and always for tree models, which have no gradient). Spaces of at most
  ``_ENUMERATE_LIMIT`` points are scored exhaustively over their untried points.
* **gp_hedge.** EI, LCB and PI each propose a point; one is drawn with probability
  ``softmax(gains)``; after the next fit each function's gain drops by the new model's mean at
  its proposal (in units of the objective's standard deviation, so the portfolio does not
  depend on the objective's scale).
* **EIps / PIps.** EI or PI per second of training: a second model of the log duration, read
  from a metric named in ``DURATION_METRICS`` (the trial reports it like any other metric).
  With fewer than two finished trials that report one, EI or PI is used instead.
* **Batches and running trials.** Running trials, and points already suggested in the batch,
  enter the model with the best observed value (skopt's ``cl_min`` constant liar) and without
  observation noise, so the acquisition moves away from them. Failed trials (no objective)
  stay out of the model, but no point already tried, running or failed is suggested again
  where the space has other points.
* **Threads.** ``suggest`` runs with one BLAS thread (threadpoolctl): the matrices are small,
  and on a busy machine waking BLAS threads costs 10-20x the work.
* **Initial points.** Until ``n_initial_points`` trials have an objective or are running (and
  while fewer than two have an objective), points come from a scrambled Sobol sequence.

The state holds the random generator, the Sobol position, the hedge gains and proposals and
the last fitted kernel hyperparameters (with the number of observations they were fitted on,
so that a restarted instance conditions on the same model instead of fitting again). The
model does not depend on the order in which the history is fed: observations are sorted by
trial name.
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import cho_solve, cholesky, solve_triangular  # type: ignore[import-untyped]
from scipy.optimize import minimize  # type: ignore[import-untyped]
from scipy.special import ndtr  # type: ignore[import-untyped]
from scipy.stats import qmc  # type: ignore[import-untyped]

from suggestion._base import (
    Algorithm,
    SettingSpec,
    TrialRecord,
    check_choice,
    check_int,
)
from suggestion._space import (
    DISCRETE,
    INT,
    LOG_NORMAL,
    LOG_UNIFORM,
    Parameter,
    SearchSpace,
)
from suggestion.algorithms.random import finite_size, sample_parameter

Array = NDArray[np.float64]
Indices = NDArray[np.intp]

ESTIMATORS = ("GP", "RF", "ET", "GBRT")
ACQ_FUNCS = ("gp_hedge", "LCB", "EI", "PI", "EIps", "PIps")
ACQ_OPTIMIZERS = ("auto", "sampling", "lbfgs")
#: Metric names read as a trial's duration in seconds for EIps / PIps, first found wins.
DURATION_METRICS = ("duration", "duration_seconds", "elapsed_seconds")

_HEDGE = ("EI", "LCB", "PI")
_XI = 0.01  # EI / PI improvement margin, in standardized units (skopt's default)
_KAPPA = 1.96  # LCB exploration weight (skopt's default)
_ETA = 1.0  # gp_hedge softmax temperature (skopt's default)

# Hyperparameter fitting: the subset size above which the marginal likelihood is fitted on a
# random subset, and the L-BFGS-B iteration cap per start. At 300 points one evaluation costs
# a few milliseconds; at 1,000 it costs ~0.2 s, which would break the 3 s budget.
_HYPER_SUBSET = 300
_HYPER_MAXITER = 60
# Hyperparameters are refitted once the history has grown by a tenth since the last fit (every
# new trial up to 20, every 10th at 100, every 100th at 1,000); in between the model is
# conditioned on all observations with the last hyperparameters, which move little by then.
# scikit-learn's kernel objects cost 2-20 ms per likelihood evaluation even on small data, and
# a fit takes 20-60 of them.
_REFIT_GROWTH = 10
# Random restarts besides the warm start: two on a cold start, one per refit while the
# history is short, none after.
_RESTARTS_SHORT = 1
_SHORT_HISTORY = 100
# Observations the GP is conditioned on at most (a Cholesky of 2,000 takes ~0.1 s).
_MAX_CONDITIONING = 2000
# Acquisition candidates: uniform draws, perturbations around each of the best points.
_CANDIDATES = 2000
_LOCAL_CENTRES = 5
_LOCAL_PER_CENTRE = 100
_LOCAL_SCALES = (0.01, 0.05, 0.2)
# L-BFGS-B polishing: starts per acquisition function, iterations of the joint run.
_POLISH_STARTS = 3
_POLISH_MAXITER = 25
# Finite spaces up to this many points are scored point by point, untried ones only.
_ENUMERATE_LIMIT = 5000
# Ranked candidates decoded while looking for an untried point before falling back to random.
_DECODE_TRIES = 64
_RANDOM_TRIES = 50

# The 1-sigma band of skopt's quantile GBRT: std = (q84 - q16) / 2.
_GBRT_QUANTILES = (0.16, 0.5, 0.84)

_C_BOUNDS = (1e-2, 1e2)
_LS_BOUNDS = (1e-2, 1e2)
_NOISE_BOUNDS = (1e-6, 1.0)
_JITTER = 1e-10
_LIE_NOISE = 1e-6
_SQRT5 = math.sqrt(5.0)

_NUMERIC, _ORDINAL, _ONE_HOT = "numeric", "ordinal", "one-hot"


# --- the unit-cube encoding -------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    """Where one parameter sits in the encoded row and how it maps to [0, 1]."""

    param: Parameter
    start: int
    width: int
    kind: str
    log: bool = False
    lo: float = 0.0  # bounds in the modelled scale (log for log distributions)
    hi: float = 1.0
    values: tuple[str, ...] = ()  # ordinal: sorted by value; one-hot: as declared

    @property
    def span(self) -> float:
        return self.hi - self.lo


class _Encoding:
    """Assignments ↔ rows of the unit cube the surrogate models."""

    def __init__(self, space: SearchSpace) -> None:
        columns: list[_Column] = []
        start = 0
        for param in space:
            if param.is_numeric:
                log = param.distribution in (LOG_UNIFORM, LOG_NORMAL) and param.low > 0
                if log:
                    lo, hi = math.log(param.low), math.log(param.high)
                else:
                    lo, hi = param.low, param.high
                columns.append(_Column(param, start, 1, _NUMERIC, log, lo, hi))
                start += 1
            elif param.type == DISCRETE and _all_numbers(param.values):
                ordered = tuple(sorted(param.values, key=float))
                columns.append(_Column(param, start, 1, _ORDINAL, values=ordered))
                start += 1
            else:
                width = len(param.values)
                columns.append(_Column(param, start, width, _ONE_HOT, values=param.values))
                start += width
        self.space = space
        self.columns = columns
        self.width = start
        #: Columns L-BFGS-B may move: the numeric ones (ints are snapped afterwards).
        self.free = np.zeros(start, dtype=bool)
        for col in columns:
            if col.kind == _NUMERIC:
                self.free[col.start] = True

    def encode(self, assignments: Mapping[str, str]) -> Array | None:
        """The row of an assignment, or None if it does not fit the space (e.g. a stale one)."""
        row = np.zeros(self.width)
        try:
            for col in self.columns:
                text = assignments[col.param.name]
                if col.kind == _NUMERIC:
                    value = float(text)
                    if col.log:
                        value = math.log(value)
                    row[col.start] = _unit(value, col)
                elif col.kind == _ORDINAL:
                    row[col.start] = _rank(col.values.index(text), len(col.values))
                else:
                    row[col.start + col.values.index(text)] = 1.0
        except (KeyError, ValueError):
            return None
        if not np.all(np.isfinite(row)):
            return None
        return row

    def decode(self, row: Array) -> dict[str, str]:
        out: dict[str, str] = {}
        for col in self.columns:
            out[col.param.name] = self._decode_one(col, row)
        return out

    def _decode_one(self, col: _Column, row: Array) -> str:
        if col.kind == _NUMERIC:
            value = self._native(col, row[col.start : col.start + 1])[0]
            return col.param.format(float(value))
        if col.kind == _ORDINAL:
            return col.values[_index(float(row[col.start]), len(col.values))]
        return col.values[int(np.argmax(row[col.start : col.start + col.width]))]

    @staticmethod
    def _native(col: _Column, t: Array) -> Array:
        """Unit values of a numeric column → native values on the parameter's grid."""
        param = col.param
        value = col.lo + np.clip(t, 0.0, 1.0) * col.span
        if col.log:
            value = np.exp(value)
        if param.step:
            k_max = math.floor((param.high - param.low) / param.step + 1e-9)
            k = np.clip(np.round((value - param.low) / param.step), 0, k_max)
            value = param.low + k * param.step
        if param.type == INT:
            value = np.round(value)
        clipped: Array = np.clip(value, param.low, param.high)
        return clipped

    def snap(self, rows: Array) -> Array:
        """Rows moved onto the feasible points they decode to (ints, steps, categories)."""
        out = rows.copy()
        for col in self.columns:
            block = out[:, col.start : col.start + col.width]
            if col.kind == _NUMERIC:
                native = self._native(col, block[:, 0])
                if col.log:
                    native = np.log(native)
                block[:, 0] = _unit_array(native, col)
            elif col.kind == _ORDINAL:
                k = len(col.values)
                idx = np.clip(np.round(np.clip(block[:, 0], 0, 1) * (k - 1)), 0, k - 1)
                block[:, 0] = idx / (k - 1) if k > 1 else 0.0
            else:
                hot = np.argmax(block, axis=1)
                block[:] = 0.0
                block[np.arange(len(block)), hot] = 1.0
        return out

    def from_unit(self, u: Array) -> Array:
        """Rows from points of ``[0, 1)^len(space)`` (one coordinate per parameter)."""
        rows = np.zeros((len(u), self.width))
        for j, col in enumerate(self.columns):
            if col.kind == _NUMERIC:
                param = col.param
                if not col.log and (param.step or param.type == INT):
                    # Equal mass for every grid value, ends included.
                    step = param.step or 1.0
                    count = math.floor((param.high - param.low) / step + 1e-9) + 1
                    cell = np.minimum(np.floor(u[:, j] * count), count - 1)
                    rows[:, col.start] = cell / (count - 1) if count > 1 else 0.0
                else:
                    rows[:, col.start] = u[:, j]
            elif col.kind == _ORDINAL:
                k = len(col.values)
                idx = np.minimum(np.floor(u[:, j] * k), k - 1)
                rows[:, col.start] = idx / (k - 1) if k > 1 else 0.0
            else:
                idx = np.minimum(np.floor(u[:, j] * col.width), col.width - 1).astype(int)
                rows[np.arange(len(u)), col.start + idx] = 1.0
        return self.snap(rows)

    def random(self, rng: np.random.Generator, count: int) -> Array:
        return self.from_unit(rng.random((count, len(self.columns))))

    def perturb(
        self, centres: Array, rng: np.random.Generator, per_centre: int, scales: Sequence[float]
    ) -> Array:
        """Points near ``centres``: Gaussian steps on numeric columns, some categories redrawn."""
        rows = np.repeat(centres, per_centre, axis=0)
        scale = np.asarray(scales)[rng.integers(len(scales), size=len(rows))]
        noise = rng.normal(size=rows.shape) * scale[:, None]
        rows = np.where(self.free, np.clip(rows + noise, 0.0, 1.0), rows)
        redraw = self.random(rng, len(rows))
        for col in self.columns:
            if col.kind == _NUMERIC:
                continue
            flip = rng.random(len(rows)) < 0.2
            block = slice(col.start, col.start + col.width)
            rows[flip, block] = redraw[flip, block]
        return self.snap(rows)


def _all_numbers(values: Sequence[str]) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values) and len(values) > 0
    except ValueError:
        return False


def _unit(value: float, col: _Column) -> float:
    return min(max((value - col.lo) / col.span, 0.0), 1.0) if col.span > 0 else 0.0


def _unit_array(values: Array, col: _Column) -> Array:
    if col.span <= 0:
        return np.zeros_like(values)
    out: Array = np.clip((values - col.lo) / col.span, 0.0, 1.0)
    return out


def _rank(index: int, count: int) -> float:
    return index / (count - 1) if count > 1 else 0.0


def _index(t: float, count: int) -> int:
    return int(min(max(round(min(max(t, 0.0), 1.0) * (count - 1)), 0), count - 1))


# --- surrogate models -------------------------------------------------------------------------


class _Posterior(Protocol):
    """A surrogate conditioned on data: predictions in standardized objective units."""

    has_gradient: bool

    def predict(self, rows: Array) -> tuple[Array, Array]: ...

    def predict_grad(self, rows: Array) -> tuple[Array, Array, Array, Array]: ...


def _kernel(width: int, theta: Sequence[float] | None) -> Any:
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    kernel = ConstantKernel(1.0, _C_BOUNDS) * Matern(
        length_scale=np.full(width, 0.5), length_scale_bounds=_LS_BOUNDS, nu=2.5
    ) + WhiteKernel(1e-2, _NOISE_BOUNDS)
    if theta is not None and len(theta) == len(kernel.theta):
        bounds = kernel.bounds
        kernel = kernel.clone_with_theta(np.clip(np.asarray(theta), bounds[:, 0], bounds[:, 1]))
    return kernel


def _refit_due(n: int, fitted_on: int) -> bool:
    return n - fitted_on >= max(1, fitted_on // _REFIT_GROWTH)


def _capped_lbfgs(obj_func: Any, initial_theta: Array, bounds: Array) -> tuple[Array, float]:
    """scikit-learn's hyperparameter optimizer with an iteration cap."""
    result = minimize(
        obj_func,
        initial_theta,
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        options={"maxiter": _HYPER_MAXITER},
    )
    return np.asarray(result.x, dtype=float), float(result.fun)


def fit_gp_hyperparameters(
    x: Array,
    y: Array,
    theta: Sequence[float] | None,
    rng: np.random.Generator,
    priority: Indices | None = None,
) -> list[float]:
    """Log kernel hyperparameters ``[constant, length scales..., noise]`` fitted to ``(x, y)``.

    ``theta`` is the warm start (the previous fit); ``y`` is already standardized.
    ``priority`` orders the observations for subsets (a random order that stays stable as the
    history grows, so that successive subsets differ by a point or two and warm starts hold).
    """
    n = len(y)
    order = np.arange(n) if priority is None else np.asarray(priority)
    if theta is None and n > _SHORT_HISTORY:
        # Cold start on a long history: find the basin with restarts on a small subset, then
        # refine on the larger one from there (restarts at 300 points would take seconds).
        small = np.sort(order[:_SHORT_HISTORY])
        theta = _fit_kernel(x[small], y[small], None, _RESTARTS_SHORT + 1, rng)
    if n > _HYPER_SUBSET:
        keep = np.sort(order[:_HYPER_SUBSET])
        x, y = x[keep], y[keep]
    if theta is None:
        restarts = _RESTARTS_SHORT + 1
    else:
        restarts = _RESTARTS_SHORT if n <= _SHORT_HISTORY else 0
    return _fit_kernel(x, y, theta, restarts, rng)


def _fit_kernel(
    x: Array, y: Array, theta: Sequence[float] | None, restarts: int, rng: np.random.Generator
) -> list[float]:
    from sklearn.gaussian_process import GaussianProcessRegressor

    gp = GaussianProcessRegressor(
        kernel=_kernel(x.shape[1], theta),
        alpha=_JITTER,
        optimizer=_capped_lbfgs,
        n_restarts_optimizer=restarts,
        normalize_y=False,  # y arrives standardized
        copy_X_train=False,
        random_state=int(rng.integers(2**31 - 1)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(x, y)
    return [float(v) for v in gp.kernel_.theta]


class _GaussianPosterior:
    """A GP with fixed hyperparameters conditioned on ``(x, y)``; white noise is left out of
    the predictive variance (the model of the noise-free objective, as in skopt)."""

    has_gradient = True

    def __init__(self, x: Array, y: Array, theta: Sequence[float], exact: int = 0) -> None:
        """``exact``: how many of the last rows are lies, believed without noise (a noisy lie
        leaves the spot looking as promising as the best point, and PI piles the batch on it).
        """
        params = np.exp(np.asarray(theta))
        self.amplitude = float(params[0])
        self.length_scale = params[1:-1]
        noise = np.full(len(y), float(params[-1]) + _JITTER)
        if exact:
            noise[len(y) - exact :] = _LIE_NOISE
        self.x = x
        self.scaled = x / self.length_scale
        gram = self._k(self.scaled, self.scaled)
        gram[np.diag_indices_from(gram)] += noise
        self.chol = self._cholesky(gram)
        self.alpha = cho_solve((self.chol, True), y)

    @staticmethod
    def _cholesky(gram: Array) -> Array:
        jitter = 0.0
        for _ in range(6):
            try:
                out: Array = cholesky(gram + jitter * np.eye(len(gram)), lower=True)
                return out
            except np.linalg.LinAlgError:
                jitter = max(jitter * 10, 1e-8)
        raise np.linalg.LinAlgError("kernel matrix is not positive definite")

    def _k(self, a: Array, b: Array) -> Array:
        """Matern 5/2: amplitude * (1 + s + s^2 / 3) * exp(-s) with s = sqrt(5) * r."""
        s: Array = a @ b.T
        s *= -2.0
        s += (a * a).sum(1)[:, None]
        s += (b * b).sum(1)[None, :]
        np.maximum(s, 0.0, out=s)
        s *= 5.0
        np.sqrt(s, out=s)
        out = np.exp(-s)
        poly = s * s
        poly *= 1.0 / 3.0
        poly += s
        poly += 1.0
        out *= poly
        out *= self.amplitude
        return out

    def predict(self, rows: Array) -> tuple[Array, Array]:
        cross = self._k(rows / self.length_scale, self.scaled)
        mean = cross @ self.alpha
        v = solve_triangular(self.chol, cross.T, lower=True, check_finite=False)
        var = self.amplitude - np.einsum("ij,ij->j", v, v)
        return mean, np.sqrt(np.maximum(var, 1e-12))

    def predict_grad(self, rows: Array) -> tuple[Array, Array, Array, Array]:
        """Mean, std and their gradients with respect to each of ``rows`` (k, width)."""
        diff = rows[:, None, :] - self.x[None, :, :]  # (k, n, width)
        scaled = diff / self.length_scale
        r = np.sqrt(np.einsum("knd,knd->kn", scaled, scaled))
        decay = np.exp(-_SQRT5 * r)
        k = self.amplitude * (1.0 + _SQRT5 * r + (5.0 / 3.0) * r * r) * decay  # (k, n)
        # d k / d x = -5/3 * amplitude * (1 + sqrt5 r) exp(-sqrt5 r) * diff / l^2
        slope = -5.0 / 3.0 * self.amplitude * (1.0 + _SQRT5 * r) * decay
        dk = slope[:, :, None] * (diff / self.length_scale**2)  # (k, n, width)
        mean = k @ self.alpha
        v = solve_triangular(self.chol, k.T, lower=True, check_finite=False)  # (n, k)
        var = self.amplitude - np.einsum("nk,nk->k", v, v)
        sd = np.sqrt(np.maximum(var, 1e-12))
        w = solve_triangular(self.chol.T, v, lower=False, check_finite=False)  # K^-1 k
        d_mean = np.einsum("knd,n->kd", dk, self.alpha)
        d_sd = -np.einsum("knd,nk->kd", dk, w) / sd[:, None]
        d_sd[var <= 1e-12] = 0.0
        return mean, sd, d_mean, d_sd


class _TreePosterior:
    """scikit-optimize's tree ensembles, which give a std from the spread of their trees."""

    has_gradient = False

    def __init__(self, kind: str, x: Array, y: Array, seed: int) -> None:
        from sklearn.ensemble import GradientBoostingRegressor
        from skopt.learning import (
            ExtraTreesRegressor,
            GradientBoostingQuantileRegressor,
            RandomForestRegressor,
        )

        model: Any
        if kind == "RF":
            model = RandomForestRegressor(n_estimators=100, min_samples_leaf=3, random_state=seed)
        elif kind == "ET":
            model = ExtraTreesRegressor(n_estimators=100, min_samples_leaf=3, random_state=seed)
        else:
            model = GradientBoostingQuantileRegressor(
                quantiles=_GBRT_QUANTILES,
                base_estimator=GradientBoostingRegressor(n_estimators=30, loss="quantile"),
                random_state=seed,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y)
        self.model = model
        self.kind = kind

    def predict(self, rows: Array) -> tuple[Array, Array]:
        if self.kind == "GBRT":
            # skopt's return_std calls np.in1d, gone in numpy 2.4; same figures from quantiles.
            low, mean, high = np.asarray(self.model.predict(rows, return_quantiles=True)).T
            sd = (high - low) / 2.0
        else:
            mean, sd = self.model.predict(rows, return_std=True)
        return np.asarray(mean, dtype=float), np.maximum(np.asarray(sd, dtype=float), 1e-9)

    def predict_grad(self, rows: Array) -> tuple[Array, Array, Array, Array]:
        raise NotImplementedError("tree models have no gradient")


# --- acquisition functions --------------------------------------------------------------------


def _phi(z: Array) -> Array:
    out: Array = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return out


def acquisition(name: str, mean: Array, sd: Array, best: float) -> Array:
    """EI, PI (to maximize) or LCB (negated, to maximize) for minimizing the objective."""
    if name == "LCB":
        out: Array = -(mean - _KAPPA * sd)
        return out
    improvement = best - mean - _XI
    z = improvement / sd
    if name == "PI":
        out = ndtr(z)
        return out
    out = improvement * ndtr(z) + sd * _phi(z)
    return out


def _acquisition_grad(
    name: str, mean: Array, sd: Array, d_mean: Array, d_sd: Array, best: float
) -> tuple[Array, Array]:
    """:func:`acquisition` and its gradient, for rows (k,) with gradients (k, width)."""
    if name == "LCB":
        value: Array = -(mean - _KAPPA * sd)
        return value, -(d_mean - _KAPPA * d_sd)
    improvement = best - mean - _XI
    z = improvement / sd
    cdf, pdf = ndtr(z), _phi(z)
    if name == "PI":
        # dz = (-d_mean - z d_sd) / sd
        return cdf, (pdf / sd)[:, None] * (-d_mean - z[:, None] * d_sd)
    value = improvement * cdf + sd * pdf
    return value, -cdf[:, None] * d_mean + pdf[:, None] * d_sd


@dataclass
class _TimeModel:
    """Log-duration model for EIps / PIps: scales an acquisition by E[1 / duration]."""

    posterior: _Posterior
    mean: float
    std: float

    def inverse_time(self, rows: Array) -> Array:
        mu, sd = self.posterior.predict(rows)
        out: Array = np.exp(-(self.mean + self.std * mu) + 0.5 * (self.std * sd) ** 2)
        return out

    def inverse_time_grad(self, rows: Array) -> tuple[Array, Array]:
        mu, sd, d_mu, d_sd = self.posterior.predict_grad(rows)
        mu_t, sd_t = self.mean + self.std * mu, self.std * sd
        value: Array = np.exp(-mu_t + 0.5 * sd_t * sd_t)
        return value, value[:, None] * (-self.std * d_mu + (sd_t * self.std)[:, None] * d_sd)


@dataclass
class _Model:
    """Everything one suggestion round needs: data, fitted hyperparameters, candidates."""

    x: Array
    y: Array
    best: float
    lie: float
    theta: list[float] | None
    posterior: _Posterior  # conditioned on the observations alone
    candidates: Array
    candidate_keys: list[tuple[str, ...]] | None  # set when candidates enumerate the space
    time: _TimeModel | None


# --- the algorithm ----------------------------------------------------------------------------


def _check_acq_optimizer(settings: Mapping[str, str]) -> list[tuple[str, str]]:
    estimator = settings.get("base_estimator", "GP")
    if settings.get("acq_optimizer") == "lbfgs" and estimator in ESTIMATORS and estimator != "GP":
        return [
            (
                "acq_optimizer",
                f"lbfgs needs base_estimator GP ({estimator} has no gradient); "
                "use sampling or auto",
            )
        ]
    return []


class BayesianOptimization(Algorithm):
    """Gaussian-process (or tree-ensemble) Bayesian optimization; see the module docstring."""

    name = "bayesianoptimization"
    settings_spec = {
        "base_estimator": SettingSpec(
            "GP", "surrogate model: GP, RF, ET or GBRT", check_choice(*ESTIMATORS)
        ),
        "n_initial_points": SettingSpec(
            "10", "Sobol points before the model is used", check_int(0)
        ),
        "acq_func": SettingSpec(
            "gp_hedge", "acquisition function: " + ", ".join(ACQ_FUNCS), check_choice(*ACQ_FUNCS)
        ),
        "acq_optimizer": SettingSpec(
            "auto", "auto, sampling or lbfgs", check_choice(*ACQ_OPTIMIZERS)
        ),
        "random_state": SettingSpec(None, "seed of the random generator", check_int(0)),
    }

    @classmethod
    def validate_settings(cls, settings: Mapping[str, str]) -> list[tuple[str, str]]:
        problems = super().validate_settings(settings)
        return problems or _check_acq_optimizer(settings)

    @classmethod
    def validate_space(
        cls,
        space: SearchSpace,
        *,
        settings: Mapping[str, str],
        max_trial_count: int | None,
        parallel_trial_count: int | None,
    ) -> list[tuple[str | None, str]]:
        if len(space) == 0:
            return [(None, "bayesianoptimization needs at least one parameter")]
        return []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimator = self.settings["base_estimator"]
        self.n_initial_points = int(self.settings["n_initial_points"])
        self.acq_func = self.settings["acq_func"]
        optimizer = self.settings["acq_optimizer"]
        if optimizer == "auto":
            use_lbfgs = self.estimator == "GP" and all(p.is_numeric for p in self.space)
            optimizer = "lbfgs" if use_lbfgs else "sampling"
        self.acq_optimizer = optimizer if self.estimator == "GP" else "sampling"

        seed = self.settings.get("random_state")
        self._rng = np.random.default_rng(None if seed is None else int(seed))
        self._sobol_seed = int(self._rng.integers(2**31 - 1))
        self._sobol_index = 0
        self._encoding = _Encoding(self.space)

        # History: objective observations by trial name (minimized: maximize flips the sign).
        self._finished: set[str] = set()
        self._observations: dict[str, tuple[Array, float, float | None]] = {}
        self._seen: set[tuple[str, ...]] = set()
        self._active: dict[tuple[str, ...], Array | None] = {}
        # Suggested but not yet reported back as running or finished.
        self._pending: dict[tuple[str, ...], Array | None] = {}

        # What history cannot rebuild.
        self._gains = np.zeros(len(_HEDGE))
        self._proposals: list[list[float]] | None = None
        self._theta: list[float] | None = None
        self._fit_count = -1  # observations the hyperparameters were last fitted on
        self._model_count = -1  # observations behind the last model (hedge gains use it)
        self._time_theta: list[float] | None = None
        self._time_fit_count = -1

        self._enumerated: tuple[list[tuple[str, ...]], Array] | None = None

    # -- contract ------------------------------------------------------------------------------

    def update(self, completed: Sequence[TrialRecord], active: Sequence[TrialRecord]) -> None:
        for trial in completed:
            key = self.space.key(trial.assignments)
            self._seen.add(key)
            self._pending.pop(key, None)
            if trial.name in self._finished:
                continue
            self._finished.add(trial.name)
            value = trial.objective
            if value is None or not math.isfinite(value):
                continue
            row = self._encoding.encode(trial.assignments)
            if row is None:
                continue
            loss = -float(value) if self.maximize else float(value)
            self._observations[trial.name] = (row, loss, _duration(trial.metrics))
        self._active = {}
        for trial in active:
            if trial.name in self._finished:
                continue
            key = self.space.key(trial.assignments)
            self._seen.add(key)
            self._pending.pop(key, None)
            self._active[key] = self._encoding.encode(trial.assignments)

    def suggest(self, count: int) -> list[dict[str, str]]:
        with _one_blas_thread():
            return self._suggest(count)

    def _suggest(self, count: int) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        model: _Model | None = None
        observed = len(self._observations)
        for _ in range(max(count, 0)):
            in_flight = len(self._active) + len(self._pending)
            if observed < 2 or observed + in_flight < self.n_initial_points:
                assignment = self._initial_point()
            else:
                first = model is None
                if model is None:
                    model = self._build_model()
                assignment = self._model_point(model, first=first)
            if assignment is None:
                break
            key = self.space.key(assignment)
            self._seen.add(key)
            self._pending[key] = self._encoding.encode(assignment)
            out.append(assignment)
        return out

    def dump_state(self) -> dict[str, Any]:
        return {
            "rng": self._rng.bit_generator.state,
            "sobol_seed": self._sobol_seed,
            "sobol_index": self._sobol_index,
            "gains": [float(g) for g in self._gains],
            "proposals": self._proposals,
            "theta": self._theta,
            "fit_count": self._fit_count,
            "model_count": self._model_count,
            "time_theta": self._time_theta,
            "time_fit_count": self._time_fit_count,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self._rng.bit_generator.state = dict(state["rng"])
        self._sobol_seed = int(state.get("sobol_seed", self._sobol_seed))
        self._sobol_index = int(state.get("sobol_index", self._sobol_index))
        gains = state.get("gains")
        if gains is not None and len(gains) == len(_HEDGE):
            self._gains = np.asarray(gains, dtype=float)
        proposals = state.get("proposals")
        self._proposals = [list(map(float, p)) for p in proposals] if proposals else None
        theta = state.get("theta")
        self._theta = [float(v) for v in theta] if theta else None
        self._fit_count = int(state.get("fit_count", -1))
        self._model_count = int(state.get("model_count", -1))
        time_theta = state.get("time_theta")
        self._time_theta = [float(v) for v in time_theta] if time_theta else None
        self._time_fit_count = int(state.get("time_fit_count", -1))

    # -- initial points ------------------------------------------------------------------------

    def _initial_point(self) -> dict[str, str] | None:
        """The next untried Sobol point, else a random or enumerated untried one."""
        engine = qmc.Sobol(len(self._encoding.columns), scramble=True, seed=self._sobol_seed)
        if self._sobol_index:
            engine.fast_forward(self._sobol_index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # balance warnings for non-powers of two
            units = engine.random(_RANDOM_TRIES)
        rows = self._encoding.from_unit(units)
        for i, row in enumerate(rows):
            assignment = self._encoding.decode(row)
            if self.space.key(assignment) not in self._seen:
                self._sobol_index += i + 1
                return assignment
        self._sobol_index += len(rows)
        return self._random_unseen()

    def _random_unseen(self) -> dict[str, str] | None:
        for _ in range(_RANDOM_TRIES):
            assignment = {p.name: sample_parameter(p, self._rng) for p in self.space}
            if self.space.key(assignment) not in self._seen:
                return assignment
        if finite_size(self.space) is None:
            return None
        axes = [p.grid() for p in self.space]
        unseen = [point for point in itertools.product(*axes) if point not in self._seen]
        if not unseen:
            return None
        point = unseen[int(self._rng.integers(len(unseen)))]
        return dict(zip(self.space.names, point, strict=True))

    # -- the model -----------------------------------------------------------------------------

    def _training_data(self) -> tuple[Array, Array, list[float | None], Indices]:
        """Rows, losses, durations sorted by trial name (so that the model does not depend on
        the order of updates), and a stable random priority order for subsets."""
        names = sorted(self._observations)
        x = np.array([self._observations[n][0] for n in names])
        y = np.array([self._observations[n][1] for n in names])
        durations = [self._observations[n][2] for n in names]
        hashes = np.array([zlib.crc32(n.encode()) for n in names], dtype=np.int64)
        priority: Indices = np.argsort(hashes, kind="stable")
        return x, y, durations, priority

    def _build_model(self) -> _Model:
        x, loss, durations, priority = self._training_data()
        y = _standardize(loss)
        n = len(y)
        theta: list[float] | None = None
        if self.estimator == "GP":
            if self._theta is None or _refit_due(n, self._fit_count):
                self._theta = fit_gp_hyperparameters(x, y, self._theta, self._rng, priority)
                self._fit_count = n
            theta = self._theta
        posterior = self._posterior(x, y, theta)
        if n != self._model_count and self._proposals is not None:
            # gp_hedge: each function is rewarded by how good its last proposal now looks.
            mean, _ = posterior.predict(np.asarray(self._proposals))
            self._gains -= mean
            self._proposals = None
        self._model_count = n
        candidates, keys = self._candidates(x, y)
        return _Model(
            x=x,
            y=y,
            best=float(y.min()),
            lie=float(y.min()),
            theta=theta,
            posterior=posterior,
            candidates=candidates,
            candidate_keys=keys,
            time=self._time_model(x, durations, priority),
        )

    def _posterior(
        self,
        x: Array,
        y: Array,
        theta: list[float] | None,
        lies: Array | None = None,
        lie: float = 0.0,
    ) -> _Posterior:
        """The model conditioned on observations ``(x, y)`` and on ``lies`` valued ``lie``."""
        if theta is not None and len(y) > _MAX_CONDITIONING:
            x, y = self._conditioning_subset(x, y)
        exact = 0
        if lies is not None and len(lies):
            exact = len(lies)
            x = np.vstack([x, lies])
            y = np.concatenate([y, np.full(exact, lie)])
        if theta is not None:
            return _GaussianPosterior(x, y, theta, exact)
        seed = (self._sobol_seed + len(y)) % (2**31 - 1)
        return _TreePosterior(self.estimator, x, y, seed)

    def _conditioning_subset(self, x: Array, y: Array) -> tuple[Array, Array]:
        # Deterministic in the data: the best half, and an evenly spaced pick of the rest.
        order = np.argsort(y, kind="stable")
        half = _MAX_CONDITIONING // 2
        rest = order[half:]
        spread = rest[np.linspace(0, len(rest) - 1, _MAX_CONDITIONING - half).astype(int)]
        keep = np.sort(np.concatenate([order[:half], spread]))
        return x[keep], y[keep]

    def _time_model(
        self, x: Array, durations: list[float | None], priority: Indices
    ) -> _TimeModel | None:
        if not self.acq_func.endswith("ps"):
            return None
        rows = [i for i, d in enumerate(durations) if d is not None]
        if len(rows) < 2:
            return None  # no durations reported: plain EI / PI
        log_t = np.log(np.array([durations[i] for i in rows], dtype=float))
        mean, std = float(log_t.mean()), float(log_t.std()) or 1.0
        y_t = (log_t - mean) / std
        x_t = x[rows]
        theta: list[float] | None = None
        if self.estimator == "GP":
            if self._time_theta is None or _refit_due(len(rows), self._time_fit_count):
                rank = np.empty(len(x), dtype=int)
                rank[priority] = np.arange(len(x))
                order: Indices = np.argsort(rank[rows], kind="stable")
                self._time_theta = fit_gp_hyperparameters(
                    x_t, y_t, self._time_theta, self._rng, order
                )
                self._time_fit_count = len(rows)
            theta = self._time_theta
        return _TimeModel(self._posterior(x_t, y_t, theta), mean, std)

    def _candidates(self, x: Array, y: Array) -> tuple[Array, list[tuple[str, ...]] | None]:
        size = finite_size(self.space)
        if size is not None and size <= _ENUMERATE_LIMIT:
            if self._enumerated is None:
                points = list(itertools.product(*(p.grid() for p in self.space)))
                assignments = [dict(zip(self.space.names, pt, strict=True)) for pt in points]
                encoded = [self._encoding.encode(a) for a in assignments]
                rows = np.array(
                    [r if r is not None else np.zeros(self._encoding.width) for r in encoded]
                )
                self._enumerated = ([tuple(pt) for pt in points], rows)
            keys, rows = self._enumerated
            keep = [i for i, key in enumerate(keys) if key not in self._seen]
            return rows[keep], [keys[i] for i in keep]
        uniform = self._encoding.random(self._rng, _CANDIDATES)
        centres = x[np.argsort(y, kind="stable")[:_LOCAL_CENTRES]]
        local = self._encoding.perturb(centres, self._rng, _LOCAL_PER_CENTRE, _LOCAL_SCALES)
        return np.vstack([uniform, local]), None

    def _liars(self) -> list[Array]:
        return [row for row in (*self._active.values(), *self._pending.values()) if row is not None]

    def _model_point(self, model: _Model, *, first: bool) -> dict[str, str] | None:
        if len(model.candidates) == 0:
            return self._random_unseen()
        liars = self._liars()
        posterior = model.posterior
        if liars:
            posterior = self._posterior(model.x, model.y, model.theta, np.asarray(liars), model.lie)
        mean, sd = posterior.predict(model.candidates)

        functions = _HEDGE if self.acq_func == "gp_hedge" else (self.acq_func.removesuffix("ps"),)
        ranked = self._rank(functions, posterior, model, mean, sd)
        if self.acq_func == "gp_hedge":
            logits = _ETA * (self._gains - self._gains.max())
            probs = np.exp(logits) / np.exp(logits).sum()
            chosen = int(np.argmax(self._rng.multinomial(1, probs)))
            if first:
                self._proposals = [[float(v) for v in r[0]] for r in ranked]
        else:
            chosen = 0
        return self._first_unseen(ranked[chosen], model)

    def _rank(
        self,
        functions: Sequence[str],
        posterior: _Posterior,
        model: _Model,
        mean: Array,
        sd: Array,
    ) -> list[Array]:
        """For each acquisition function, candidate rows best first; polished ones lead."""
        tops: list[Array] = []
        for name in functions:
            values = acquisition(name, mean, sd, model.best)
            if model.time is not None:
                values = values * model.time.inverse_time(model.candidates)
            order = np.argsort(-values, kind="stable")[:_DECODE_TRIES]
            tops.append(model.candidates[order])
        if (
            self.acq_optimizer != "lbfgs"
            or not posterior.has_gradient
            or model.candidate_keys is not None
            or not self._encoding.free.any()
        ):
            return tops
        polished = self._polish(functions, [t[:_POLISH_STARTS] for t in tops], posterior, model)
        out: list[Array] = []
        for name, rows, top in zip(functions, polished, tops, strict=True):
            rows = self._encoding.snap(rows)
            p_mean, p_sd = posterior.predict(rows)
            p_values = acquisition(name, p_mean, p_sd, model.best)
            if model.time is not None:
                p_values = p_values * model.time.inverse_time(rows)
            out.append(np.vstack([rows[np.argsort(-p_values, kind="stable")], top]))
        return out

    def _polish(
        self,
        functions: Sequence[str],
        starts: Sequence[Array],
        posterior: _Posterior,
        model: _Model,
    ) -> list[Array]:
        """L-BFGS-B on the numeric columns from every start of every function at once.

        The objective is the sum over starts, each scaled by its function's magnitude: it is
        separable, so each start follows its own gradient, and one scipy call (whose
        per-iteration overhead dominates at this size) serves them all.
        """
        free = self._encoding.free
        width = int(free.sum())
        rows0 = np.vstack(starts)
        owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)])
        time = model.time
        mean, sd = posterior.predict(rows0)
        scale = np.ones(len(rows0))
        for i, name in enumerate(functions):
            mask = owner == i
            magnitude = float(np.abs(acquisition(name, mean[mask], sd[mask], model.best)).max())
            scale[mask] = 1.0 / max(magnitude, 1e-12)

        def negative(z: Array) -> tuple[float, Array]:
            rows = rows0.copy()
            rows[:, free] = z.reshape(len(rows0), width)
            mean, sd, d_mean, d_sd = posterior.predict_grad(rows)
            value = np.empty(len(rows))
            grad = np.empty_like(rows)
            for i, name in enumerate(functions):
                mask = owner == i
                value[mask], grad[mask] = _acquisition_grad(
                    name, mean[mask], sd[mask], d_mean[mask], d_sd[mask], model.best
                )
            if time is not None:
                inv_t, d_inv_t = time.inverse_time_grad(rows)
                value, grad = value * inv_t, grad * inv_t[:, None] + value[:, None] * d_inv_t
            return -float((scale * value).sum()), -(scale[:, None] * grad)[:, free].ravel()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = minimize(
                negative,
                rows0[:, free].ravel(),
                method="L-BFGS-B",
                jac=True,
                bounds=[(0.0, 1.0)] * (len(rows0) * width),
                options={"maxiter": _POLISH_MAXITER},
            )
        out = rows0.copy()
        out[:, free] = np.clip(result.x.reshape(len(rows0), width), 0.0, 1.0)
        return [out[owner == i] for i in range(len(functions))]

    def _first_unseen(self, ranked: Array, model: _Model) -> dict[str, str] | None:
        for row in ranked[: _POLISH_STARTS + _DECODE_TRIES]:
            assignment = self._encoding.decode(row)
            if self.space.key(assignment) not in self._seen:
                return assignment
        return self._random_unseen()


# Yeo-Johnson exponents tried, by maximum likelihood on a grid (a warp needs no more precision).
_YJ_LAMBDAS = np.linspace(-2.0, 3.0, 51)


def _standardize(loss: Array) -> Array:
    """The losses the model sees: zero mean, unit variance, and from a handful of points on a
    Yeo-Johnson power transform, so that a heavy tail (Rosenbrock, diverged trainings) does
    not flatten the model everywhere else. Monotone: the best point stays the best."""
    scale = float(loss.std()) or 1.0
    y: Array = (loss - loss.mean()) / scale
    if len(y) < 5 or float(y.std()) == 0:
        return y
    warped = _yeo_johnson(y)
    spread = float(warped.std())
    if not np.all(np.isfinite(warped)) or spread == 0:
        return y
    out: Array = (warped - warped.mean()) / spread
    return out


def _yeo_johnson(y: Array) -> Array:
    """Yeo-Johnson transform of ``y`` with the maximum-likelihood exponent on ``_YJ_LAMBDAS``.

    scipy's and scikit-learn's versions find the exponent with Brent's method and take
    ~0.1 s per call here; a vectorized grid takes well under a millisecond.
    """
    lam = _YJ_LAMBDAS[:, None]
    pos = y >= 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        up = np.where(
            np.abs(lam) < 1e-12, np.log1p(np.abs(y)), (np.power(1 + np.abs(y), lam) - 1) / lam
        )
        down = np.where(
            np.abs(lam - 2) < 1e-12,
            -np.log1p(np.abs(y)),
            -(np.power(1 + np.abs(y), 2 - lam) - 1) / (2 - lam),
        )
        transformed = np.where(pos, up, down)
        variance = transformed.var(axis=1)
        llf = -0.5 * len(y) * np.log(variance) + (_YJ_LAMBDAS - 1) * float(
            np.sum(np.sign(y) * np.log1p(np.abs(y)))
        )
    llf[~np.isfinite(llf)] = -np.inf
    out: Array = transformed[int(np.argmax(llf))]
    return out


@cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """Run with one BLAS thread: the matrices here are small, and waking BLAS threads on a
    busy machine cost 10-20x more than the work (L-BFGS-B's tiny vector operations most)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _duration(metrics: Mapping[str, float]) -> float | None:
    for name in DURATION_METRICS:
        value = metrics.get(name)
        if value is not None and math.isfinite(value) and value > 0:
            return float(value)
    return None
