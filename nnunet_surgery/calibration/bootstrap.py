"""Case-level (cluster) bootstrap of pooled metrics from per-case sums (docs/calibration.md#bootstrap).

Voxels within a case are strongly correlated, so the unit of resampling is the case. Resample r draws
n case indices uniformly with replacement, `numpy.random.default_rng(seed).integers(0, n, size=(R, n))`,
and the pooled metric of the resample is computed from the sum of the drawn cases' sufficient statistics.
Since every metric here is a function of per-case sums, a resample is one weighted sum `W @ sums` with
`W[r, c]` the number of times case c was drawn: all R resamples cost one (R, n) x (n, F) product.
Paired comparisons use the same `W` for both models.

Intervals (docs/calibration.md#bca): `percentile_interval` (the report's interval so far) and
`bootstrap_bounds`, element-wise over any leading shape, by `method` "bca" (bias-corrected and accelerated,
Efron 1987) or "percentile". BCa reads the resamples at the levels

    alpha_lo,hi = Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q))),    q = (1 - level) / 2 and 1 - q

with z0 = Phi^-1(share of resamples below the estimate, ties counted half), clipped to
[1 / (2 R), 1 - 1 / (2 R)], and the acceleration a = sum d**3 / (6 (sum d**2)**1.5) of the jackknife
values, d_i = mean_j theta_(j) - theta_(i) (0 when all are equal); where 1 - a (z0 + z_q) <= 0 the level
is its limit, 0 or 1.

A debiased estimate (`estimators`) is not the metric of the resampled cases' empirical distribution: on the
resamples it estimates that distribution's plug-in value t (its `reference`), and its bias there is not
its bias in the population (for the L1 correction the resampled gaps sit where the correction is least
exact, while a calibrated bin's true gap is 0, where it is exact). Its interval is therefore read from the
resamples shifted by estimate - t, which center them on the estimate, with z0 = 0 (no median-bias
correction from the bootstrap) and the jackknife acceleration (docs/calibration.md#bca). With
`contain_estimate` (the default) the interval is widened to the point estimate
when it would exclude it, so every estimate lies inside its own interval by construction; for BCa that
happens only when |z0| is about z_q or more (docs/calibration.md#bca).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_METHOD",
    "DEFAULT_RESAMPLES",
    "METHODS",
    "Interval",
    "acceleration",
    "bca_levels",
    "bias_correction",
    "bootstrap_bounds",
    "bootstrap_interval",
    "case_weights",
    "percentile_interval",
]

Method = Literal["bca", "percentile"]
METHODS: tuple[Method, ...] = ("bca", "percentile")
DEFAULT_METHOD: Method = "bca"

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A percentile interval [low, high] (NaN, NaN when the metric is undefined in every resample)."""

    low: float
    high: float

    def excludes(self, value: float) -> bool:
        """Whether `value` lies outside the interval (False for a NaN interval)."""
        return bool(value < self.low or value > self.high)


def case_weights(n_cases: int, n_resamples: int, seed: int) -> np.ndarray:
    """(R, n) float64 multiplicities: row r counts how often each case is drawn in resample r.

    Args:
        n_cases: number of cases n (>= 1).
        n_resamples: number of resamples R (>= 1).
        seed: seed of `numpy.random.default_rng`.
    """
    if n_cases < 1 or n_resamples < 1:
        raise ValueError(f"need n_cases >= 1 and n_resamples >= 1, but got {n_cases} and {n_resamples}")
    draws = np.random.default_rng(seed).integers(0, n_cases, size=(n_resamples, n_cases))
    rows = np.repeat(np.arange(n_resamples), n_cases)
    counts = np.bincount(rows * n_cases + draws.ravel(), minlength=n_resamples * n_cases)
    return counts.reshape(n_resamples, n_cases).astype(np.float64)


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> Interval:
    """Central percentile interval of the resampled values, NaN resamples left out.

    Args:
        samples: (R,) values of a metric over the resamples.
        level: coverage, e.g. 0.95 for the 2.5th and 97.5th percentiles (numpy's linear interpolation).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), but got {level}")
    samples = np.asarray(samples, dtype=np.float64)
    kept = samples[~np.isnan(samples)]
    if kept.size == 0:
        return Interval(float("nan"), float("nan"))
    tail = round(50.0 * (1.0 - level), 12)  # 2.5 for 0.95, without float noise (5.000000000000001 for 0.9)
    low, high = np.percentile(kept, [tail, 100.0 - tail])
    return Interval(float(low), float(high))


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), but got {level}")


def bias_correction(estimate: np.ndarray, resampled: np.ndarray) -> np.ndarray:
    """BCa's z0 = Phi^-1(p0), p0 the share of resamples below the estimate (ties half), per column.

    Args:
        estimate: (...) point estimates.
        resampled: (R, ...) resampled values; NaN resamples are left out.

    Returns:
        (...) z0, with p0 clipped to [1 / (2 R'), 1 - 1 / (2 R')] (R' the non-NaN resamples); NaN where
        there are none.
    """
    resampled = np.asarray(resampled, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    valid = ~np.isnan(resampled)
    kept = valid.sum(axis=0)
    below = (valid & (resampled < estimate)).sum(axis=0) + 0.5 * (valid & (resampled == estimate)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip(below / kept, 0.5 / kept, 1.0 - 0.5 / kept)
    return np.where(kept > 0, ndtri(share), np.nan)


def acceleration(jackknife: np.ndarray) -> np.ndarray:
    """BCa's acceleration a = sum d**3 / (6 (sum d**2)**1.5), d_i = mean_j theta_(j) - theta_(i).

    Args:
        jackknife: (n, ...) leave-one-case-out values; NaN values are left out.

    Returns:
        (...) a; 0 where the defined values are all equal (or fewer than two).
    """
    jackknife = np.asarray(jackknife, dtype=np.float64)
    valid = ~np.isnan(jackknife)
    kept = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, jackknife, 0.0).sum(axis=0) / kept
    d = np.where(valid, mean - jackknife, 0.0)
    squares = (d * d).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = (d * d * d).sum(axis=0) / (6.0 * squares**1.5)
    return np.where((kept >= 2) & (squares > 0), a, 0.0)


def bca_levels(
    estimate: np.ndarray,
    resampled: np.ndarray,
    jackknife: np.ndarray,
    level: float = DEFAULT_LEVEL,
    *,
    median_bias: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The BCa quantile levels (alpha_lo, alpha_hi) of each column (module docstring); z0 = 0 without
    `median_bias`."""
    _check_level(level)
    z0 = bias_correction(estimate, resampled)
    if not median_bias:
        z0 = np.where(np.isnan(z0), np.nan, 0.0)
    a = acceleration(jackknife)
    tail = (1.0 - level) / 2.0
    levels = []
    for z in (ndtri(tail), ndtri(1.0 - tail)):
        w = z0 + z
        denominator = 1.0 - a * w
        with np.errstate(invalid="ignore", divide="ignore"):
            shifted = np.where(denominator > 0, z0 + w / denominator, np.copysign(np.inf, w))
        levels.append(ndtr(shifted))
    return levels[0], levels[1]


def _quantiles(resampled: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Column-wise quantile of the non-NaN resamples at its own level, numpy's "linear" method."""
    ordered = np.sort(resampled, axis=0)  # NaN last
    kept = (~np.isnan(resampled)).sum(axis=0)
    position = levels * np.maximum(kept - 1, 0)
    low = np.clip(np.floor(position).astype(np.intp), 0, np.maximum(kept - 1, 0))
    high = np.minimum(low + 1, np.maximum(kept - 1, 0))
    t = position - low
    a = np.take_along_axis(ordered, low[None], axis=0)[0]
    b = np.take_along_axis(ordered, high[None], axis=0)[0]
    value = np.where(t >= 0.5, b - (b - a) * (1.0 - t), a + (b - a) * t)
    return np.where(kept > 0, value, np.nan)


def bootstrap_bounds(
    estimate: np.ndarray,
    resampled: np.ndarray,
    jackknife: np.ndarray | None = None,
    *,
    level: float = DEFAULT_LEVEL,
    method: Method = DEFAULT_METHOD,
    contain_estimate: bool = True,
    reference: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval bounds of each column (module docstring): BCa or percentile.

    Args:
        estimate: (...) point estimates on all cases.
        resampled: (R, ...) the metric over the bootstrap resamples (NaN where undefined).
        jackknife: (n, ...) leave-one-case-out values (BCa only; None gives a = 0, the BC interval).
        level: coverage, e.g. 0.95.
        method: "bca" or "percentile".
        contain_estimate: widen each interval to its estimate where it would exclude it.
        reference: (...) for a debiased estimate, the plug-in value its resamples estimate (module
            docstring); None for a plug-in estimate.

    Returns:
        (low, high), each (...); NaN where no resample is defined or the estimate is NaN.
    """
    _check_level(level)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, but got {method!r}")
    resampled = np.asarray(resampled, dtype=np.float64)
    estimate = np.broadcast_to(np.asarray(estimate, dtype=np.float64), resampled.shape[1:])
    if reference is not None:
        resampled = resampled + (estimate - np.asarray(reference, dtype=np.float64))
    if resampled.shape[0] == 0:
        low = high = np.full(estimate.shape, np.nan)
    elif method == "percentile":
        low, high = _nan_percentiles(resampled, round(50.0 * (1.0 - level), 12))
    else:
        if jackknife is None:
            jackknife = np.zeros((2, *estimate.shape))
        alpha_low, alpha_high = bca_levels(
            estimate, resampled, jackknife, level, median_bias=reference is None
        )
        low, high = _quantiles(resampled, alpha_low), _quantiles(resampled, alpha_high)
    undefined = np.isnan(estimate) | np.isnan(low)
    if contain_estimate:
        low, high = np.minimum(low, estimate), np.maximum(high, estimate)
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, high)


def _nan_percentiles(resampled: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    """np.percentile of each column's non-NaN values at tail and 100 - tail (as `percentile_interval`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        low, high = np.nanpercentile(resampled, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_interval(
    estimate: float,
    resampled: np.ndarray,
    jackknife: np.ndarray | None = None,
    *,
    level: float = DEFAULT_LEVEL,
    method: Method = DEFAULT_METHOD,
    contain_estimate: bool = True,
    reference: float | None = None,
) -> Interval:
    """`bootstrap_bounds` of one metric: (R,) resamples and (n,) jackknife values -> Interval."""
    low, high = bootstrap_bounds(
        np.float64(estimate),
        np.asarray(resampled, dtype=np.float64).reshape(-1),
        None if jackknife is None else np.asarray(jackknife, dtype=np.float64).reshape(-1),
        level=level,
        method=method,
        contain_estimate=contain_estimate,
        reference=None if reference is None else np.float64(reference),
    )
    return Interval(float(low), float(high))
