"""Checks on probability maps before any statistic is taken (stage 1 of validate -> update -> compute)."""

from __future__ import annotations

import numpy as np

__all__ = ["RANGE_ATOL", "SUM_ATOL", "ProbabilityError", "check_probabilities"]

# float32 rounding lets a probability sit a hair outside [0, 1]; such values are clipped, larger ones refused.
RANGE_ATOL = 1e-6
# softmax channels must sum to 1 within this (float32 softmax, resampling and ensembling stay far inside it).
SUM_ATOL = 1e-3


class ProbabilityError(ValueError):
    """Probabilities that cannot be scored: non-finite, outside [0, 1], or softmax sums != 1."""


def check_probabilities(probabilities: np.ndarray, *, softmax: bool) -> tuple[float, float]:
    """Raise ProbabilityError unless `probabilities` are finite, in [0, 1] and (if softmax) sum to 1.

    One min / max pass decides range and finiteness (NaN and inf fail the range test; only then are they
    counted), and the softmax sum is taken in the array's own dtype (float32: rounding ~1e-7, far below
    SUM_ATOL); a sum near the tolerance is recomputed in float64, so the verdict is the float64 one.

    Args:
        probabilities: (C, ...) channel-first floating array.
        softmax: whether the channels are a softmax (must sum to 1 over axis 0, within SUM_ATOL); region
            (sigmoid) channels are checked only for range.

    Returns:
        (min, max) of the values ((0.0, 1.0) for an empty array): callers clip only when outside [0, 1].

    Raises:
        ProbabilityError: with a one-line message that states the problem and the offending values.
    """
    if not np.issubdtype(probabilities.dtype, np.floating):
        raise ProbabilityError(
            f"probabilities must be a floating-point array, but got dtype {probabilities.dtype}"
        )
    if probabilities.size == 0:
        return 0.0, 1.0
    low, high = float(probabilities.min()), float(probabilities.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        n_nan = int(np.isnan(probabilities).sum())
        n_inf = int(np.isinf(probabilities).sum())
        raise ProbabilityError(f"probabilities contain NaN or inf ({n_nan} NaN, {n_inf} inf values)")
    if low < -RANGE_ATOL or high > 1 + RANGE_ATOL:
        raise ProbabilityError(f"probabilities must lie in [0, 1], but range from {low:.6g} to {high:.6g}")
    if softmax:
        _check_softmax_sum(probabilities)
    return low, high


def _check_softmax_sum(probabilities: np.ndarray) -> None:
    """Raise unless the channels sum to 1 within SUM_ATOL (decided in float64)."""
    dtype = np.promote_types(probabilities.dtype, np.float32)
    total = probabilities.sum(axis=0, dtype=dtype)
    # summation rounding in `dtype`: at most C ulps of values <= 1 + RANGE_ATOL
    slack = 4 * probabilities.shape[0] * float(np.finfo(dtype).eps)
    if max(abs(float(total.max()) - 1.0), abs(float(total.min()) - 1.0)) <= SUM_ATOL - slack:
        return
    deviation = float(np.abs(probabilities.sum(axis=0, dtype=np.float64) - 1.0).max())
    if deviation > SUM_ATOL:
        raise ProbabilityError(
            f"softmax channels must sum to 1 (within {SUM_ATOL:g}), but deviate by up to {deviation:.6g}"
        )
