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


def check_probabilities(probabilities: np.ndarray, *, softmax: bool) -> None:
    """Raise ProbabilityError unless `probabilities` are finite, in [0, 1] and (if softmax) sum to 1.

    Args:
        probabilities: (C, ...) channel-first floating array.
        softmax: whether the channels are a softmax (must sum to 1 over axis 0, within SUM_ATOL); region
            (sigmoid) channels are checked only for range.

    Raises:
        ProbabilityError: with a one-line message that states the problem and the offending values.
    """
    if not np.issubdtype(probabilities.dtype, np.floating):
        raise ProbabilityError(
            f"probabilities must be a floating-point array, but got dtype {probabilities.dtype}"
        )
    if probabilities.size == 0:
        return
    if not np.isfinite(probabilities).all():
        n_nan = int(np.isnan(probabilities).sum())
        n_inf = int(np.isinf(probabilities).sum())
        raise ProbabilityError(f"probabilities contain NaN or inf ({n_nan} NaN, {n_inf} inf values)")
    low, high = float(probabilities.min()), float(probabilities.max())
    if low < -RANGE_ATOL or high > 1 + RANGE_ATOL:
        raise ProbabilityError(f"probabilities must lie in [0, 1], but range from {low:.6g} to {high:.6g}")
    if softmax:
        deviation = float(np.abs(probabilities.sum(axis=0, dtype=np.float64) - 1.0).max())
        if deviation > SUM_ATOL:
            raise ProbabilityError(
                f"softmax channels must sum to 1 (within {SUM_ATOL:g}), but deviate by up to {deviation:.6g}"
            )
