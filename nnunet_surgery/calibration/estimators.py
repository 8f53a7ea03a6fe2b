"""Bias-aware binned calibration errors from per-bin sums (docs/calibration.md#bias-of-the-plug-in-errors).

Notation (one set of equal-width or equal-mass bins): n_b samples in bin b, N = sum_b n_b, w_b = n_b / N,
ybar_b and pbar_b the bin means of the targets (0/1 outcomes) and of the confidences, and the gap
g_b = ybar_b - pbar_b. The population counterpart of g_b is Delta_b = E[y - p | p in bin b].

Given the confidences, ybar_b averages n_b independent Bernoulli outcomes, so g_b = Delta_b + noise with
variance Var(ybar_b) = sum_i q_i (1 - q_i) / n_b**2 (q_i the true frequency of sample i), estimated without
bias (for a constant q) by

    s2_b = ybar_b (1 - ybar_b) / (n_b - 1)                                    (n_b >= 2)

The plug-in errors sum |g_b| or g_b**2; the noise never cancels inside |.| or (.)**2, so they are biased
upwards: E[g_b**2] = Delta_b**2 + Var(g_b), and E|g_b| ~ s_b M(Delta_b / s_b) >= |Delta_b| with
M(mu) = E|mu + Z| = 2 phi(mu) + mu (2 Phi(mu) - 1) for a standard normal Z (0.80 s_b at Delta_b = 0).

- Debiased squared L2 error (Kumar, Liang, Ma, NeurIPS 2019, Sec. 5, the per-bin variance correction):

      L2sq_debiased = sum_b w_b (g_b**2 - s2_b)                    (unbiased for sum_b w_b Delta_b**2)

  Its square root is undefined when the estimate is negative (a calibrated model, half the time): the
  squared value is what is estimated, and what its interval is about. Bins with n_b < 2 keep their
  plug-in term (no variance estimate from one sample).

- Bias-corrected ECE (the per-bin correction carried to L1, with the normal approximation of g_b):

      ECE_debiased = sum_b w_b (|g_b| - c s_b exp(-g_b**2 / (2 s2_b))),     c = 2 / sqrt(pi)

  Under g_b ~ N(Delta_b, s_b**2), E[exp(-g_b**2 / (2 s_b**2))] = exp(-mu**2 / 4) / sqrt(2) with
  mu = Delta_b / s_b, so c makes the term exactly unbiased at Delta_b = 0 (c / sqrt(2) = sqrt(2 / pi) =
  M(0)), and the correction vanishes where |Delta_b| >> s_b, where |g_b| is already unbiased. In between,
  the bias per bin is s_b [sqrt(2/pi) (exp(-mu**2/2) - exp(-mu**2/4)) - 2 |mu| Phi(-|mu|)], in
  [-0.46 s_b, 0] (largest near mu = 1); that of the plug-in |g_b| is in [0, 0.80 s_b]. No estimator of
  |Delta_b| is unbiased for every Delta_b (|.| is not smooth at 0); this one is exact at both ends.
  Bins with n_b < 2 or s_b = 0 keep their plug-in term.

All functions work element-wise over any leading shape (resamples, cases), the bins on the last axis, and
return NaN where no bin holds a sample.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "L1_CORRECTION",
    "bin_gaps",
    "case_variance",
    "debiased_ece",
    "debiased_squared_error",
    "squared_error",
]

#: c of the bias-corrected ECE: 2 / sqrt(pi), so that c E[exp(-Z**2 / 2)] = sqrt(2 / pi) = E|Z|.
L1_CORRECTION = 2.0 / math.sqrt(math.pi)


def case_variance(
    count: np.ndarray,
    sum_residual_sq: np.ndarray,
    sum_residual_count: np.ndarray,
    sum_count_sq: np.ndarray,
    cases: np.ndarray,
    sum_confidence: np.ndarray,
    sum_target: np.ndarray,
) -> np.ndarray:
    """Case-level (cluster) estimate of Var(g_b), from sums over cases of per-case products.

    With G_cb = sum of y - p over the samples of case c in bin b and n_cb their number, g_b = sum_c G_cb /
    n_b is a ratio of case sums, and (linearised) Var(g_b) = sum_c Var(G_cb - n_cb Delta_b) / n_b**2:

        V_b = k / (k - 1) * sum_c (G_cb - n_cb g_b)**2 / n_b**2
            = k / (k - 1) * (sum G**2 - 2 g_b sum G n + g_b**2 sum n**2) / n_b**2

    with k the number of cases. It needs no independence of the samples within a case, and a case drawn
    twice by the bootstrap counts twice, so it stays right on resamples
    (docs/calibration.md#bias-of-the-plug-in-errors).

    Args:
        count, sum_confidence, sum_target: (..., B) per-bin sums over the cases.
        sum_residual_sq, sum_residual_count, sum_count_sq: (..., B) sums over the cases of G_cb**2,
            G_cb n_cb and n_cb**2.
        cases: (...) number of cases k (of draws, in a resample).

    Returns:
        (..., B) V_b; 0 in empty bins, NaN where k < 2.
    """
    count = np.asarray(count, dtype=np.float64)
    filled = count > 0
    safe = np.where(filled, count, 1.0)
    gap = (np.asarray(sum_target, dtype=np.float64) - np.asarray(sum_confidence, dtype=np.float64)) / safe
    spread = (
        np.asarray(sum_residual_sq)
        - 2.0 * gap * np.asarray(sum_residual_count)
        + gap * gap * np.asarray(sum_count_sq)
    )
    k = np.asarray(cases, dtype=np.float64)[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(k >= 2, k / (k - 1.0), np.nan)
    return np.where(filled, factor * np.maximum(spread, 0.0) / (safe * safe), 0.0)


def bin_gaps(
    count: np.ndarray, sum_confidence: np.ndarray, sum_target: np.ndarray, variance: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin weight, gap, gap variance estimate and a mask of the bins that have one.

    Args:
        count, sum_confidence, sum_target: (..., B) per-bin sums.
        variance: (..., B) an estimate of Var(g_b) to use instead of s2_b (`case_variance`), or None.

    Returns:
        (weight w_b = n_b / N, gap g_b = ybar_b - pbar_b (0 in empty bins), the variance estimate (s2_b =
        ybar_b (1 - ybar_b) / (n_b - 1), or `variance`; 0 where it has none), has_variance (n_b >= 2, or
        `variance` defined in a filled bin)), all (..., B); the weights are NaN where N = 0.
    """
    count = np.asarray(count, dtype=np.float64)
    filled = count > 0
    safe = np.where(filled, count, 1.0)
    target_mean = np.asarray(sum_target, dtype=np.float64) / safe
    gap = target_mean - np.asarray(sum_confidence, dtype=np.float64) / safe
    if variance is None:
        has_variance = count >= 2
        s2 = np.where(
            has_variance, target_mean * (1.0 - target_mean) / np.where(has_variance, count - 1.0, 1.0), 0.0
        )
    else:
        s2 = np.asarray(variance, dtype=np.float64)
        has_variance = filled & ~np.isnan(s2)
        s2 = np.where(has_variance, s2, 0.0)
    total = count.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = count / total
    return weight, np.where(filled, gap, 0.0), np.maximum(s2, 0.0), has_variance


def squared_error(count: np.ndarray, sum_confidence: np.ndarray, sum_target: np.ndarray) -> np.ndarray:
    """Plug-in squared L2 error sum_b w_b g_b**2 (the square of the report's `ce_rms`), shape (...)."""
    weight, gap, _, _ = bin_gaps(count, sum_confidence, sum_target)
    return (weight * gap * gap).sum(axis=-1)


def debiased_squared_error(
    count: np.ndarray, sum_confidence: np.ndarray, sum_target: np.ndarray, variance: np.ndarray | None = None
) -> np.ndarray:
    """Debiased squared L2 error sum_b w_b (g_b**2 - s2_b) (Kumar et al. 2019), shape (...); may be < 0."""
    weight, gap, s2, _ = bin_gaps(count, sum_confidence, sum_target, variance)
    return (weight * (gap * gap - s2)).sum(axis=-1)


def debiased_ece(
    count: np.ndarray, sum_confidence: np.ndarray, sum_target: np.ndarray, variance: np.ndarray | None = None
) -> np.ndarray:
    """Bias-corrected ECE sum_b w_b (|g_b| - c s_b exp(-g_b**2 / (2 s2_b))), shape (...); may be < 0."""
    weight, gap, s2, has_variance = bin_gaps(count, sum_confidence, sum_target, variance)
    corrected = has_variance & (s2 > 0)
    safe_s2 = np.where(corrected, s2, 1.0)
    correction = np.where(
        corrected, L1_CORRECTION * np.sqrt(safe_s2) * np.exp(-(gap * gap) / (2.0 * safe_s2)), 0.0
    )
    return (weight * (np.abs(gap) - correction)).sum(axis=-1)
