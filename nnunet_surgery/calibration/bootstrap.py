"""Case-level (cluster) bootstrap of pooled metrics from per-case sums (docs/calibration.md#bootstrap).

Voxels within a case are strongly correlated, so the unit of resampling is the case. Resample r draws
n case indices uniformly with replacement, `numpy.random.default_rng(seed).integers(0, n, size=(R, n))`,
and the pooled metric of the resample is computed from the sum of the drawn cases' sufficient statistics.
Since every metric here is a function of per-case sums, a resample is one weighted sum `W @ sums` with
`W[r, c]` the number of times case c was drawn: all R resamples cost one (R, n) x (n, F) product.
Paired comparisons use the same `W` for both models. Intervals are percentile intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "Interval", "case_weights", "percentile_interval"]

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
