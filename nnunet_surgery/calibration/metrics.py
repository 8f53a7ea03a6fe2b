"""Metrics from sufficient statistics (stage 3 of validate -> update -> compute).

With n_b samples in bin b, N = sum_b n_b, and the bin means conf_b and target_b:

- ECE = sum_b (n_b / N) |target_b - conf_b|  (expected calibration error, L1)
- MCE = max_b |target_b - conf_b|            (maximum calibration error)
- ACE = mean_b |target_b - conf_b|           (average calibration error: unweighted mean)

where max and mean run over the non-empty bins only. NLL = -mean log p_y with p clipped to
[eps, 1 - eps]; Brier = mean (p - y)**2; Dice = 2 TP / (2 TP + FP + FN). Every metric of an empty set
(no voxels; for Dice: empty reference and prediction, nnU-Net's convention) is NaN.
"""

from __future__ import annotations

import math

import numpy as np

from nnunet_surgery.calibration.stats import BinnedStats, LabelStats, TruthStats

__all__ = [
    "binned_errors",
    "calibration_errors",
    "dice",
    "dice_from_counts",
    "label_metric_arrays",
    "label_metrics",
    "mean_per_sample",
    "nan_mean",
    "reliability_curve",
    "truth_metrics",
]


def reliability_curve(stats: BinnedStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean confidence and mean target, NaN for empty bins."""
    with np.errstate(invalid="ignore", divide="ignore"):
        filled = stats.count > 0
        mean_confidence = np.where(filled, stats.sum_confidence / np.where(filled, stats.count, 1), np.nan)
        mean_target = np.where(filled, stats.sum_target / np.where(filled, stats.count, 1), np.nan)
    return mean_confidence, mean_target


def binned_errors(
    count: np.ndarray, sum_confidence: np.ndarray, sum_target: np.ndarray
) -> dict[str, np.ndarray]:
    """ECE, MCE and ACE (see the module docstring) of per-bin sums, over the last (bin) axis.

    Args:
        count, sum_confidence, sum_target: (..., B) per-bin sums (any leading shape, e.g. bootstrap
            resamples).

    Returns:
        "ece", "mce", "ace": arrays of the leading shape; NaN where no bin holds a sample.
    """
    count = np.asarray(count, dtype=np.float64)
    filled = count > 0
    gap = np.abs(np.asarray(sum_target) - np.asarray(sum_confidence)) / np.where(filled, count, 1.0)
    n_filled = filled.sum(axis=-1)
    total = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ece = (count * gap).sum(axis=-1) / total
        ace = np.where(filled, gap, 0.0).sum(axis=-1) / n_filled
    mce = np.where(n_filled > 0, np.where(filled, gap, -np.inf).max(axis=-1, initial=-np.inf), np.nan)
    empty = n_filled == 0
    return {"ece": np.where(empty, np.nan, ece), "mce": mce, "ace": np.where(empty, np.nan, ace)}


def calibration_errors(stats: BinnedStats) -> dict[str, float]:
    """ECE, MCE and ACE (see the module docstring) of one set of binned statistics."""
    errors = binned_errors(stats.count, stats.sum_confidence, stats.sum_target)
    return {name: float(value) for name, value in errors.items()}


def dice(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); NaN when reference and prediction are both empty (nnU-Net's convention)."""
    return float(dice_from_counts(np.float64(tp), np.float64(fp), np.float64(fn)))


def dice_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """`dice` element-wise over arrays of counts."""
    denominator = 2 * np.asarray(tp, dtype=np.float64) + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator == 0, np.nan, 2 * np.asarray(tp, dtype=np.float64) / denominator)


def mean_per_sample(total: np.ndarray, n: np.ndarray) -> np.ndarray:
    """`total / n` element-wise (e.g. NLL and Brier from their sums); NaN where `n` is 0."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n == 0, np.nan, np.asarray(total, dtype=np.float64) / n)


def truth_metrics(stats: TruthStats) -> dict[str, float]:
    """Distance of p to the true probabilities p*.

    Returns:
        mae: mean |p - p*|; ece: sum_b (n_b / N) |mean p_b - mean p*_b| with bins of p;
        ece_truth_self: ECE of p* against the labels (the value a perfect model would get; sampling floor).
    """
    return {
        "mae": float(mean_per_sample(stats.abs_error_sum, stats.versus_truth.total)),
        "ece": calibration_errors(stats.versus_truth)["ece"],
        "ece_truth_self": calibration_errors(stats.truth_reliability)["ece"],
    }


def label_metric_arrays(
    count: np.ndarray,
    sum_confidence: np.ndarray,
    sum_target: np.ndarray,
    nll_sum: np.ndarray,
    brier_sum: np.ndarray,
    tp: np.ndarray,
    fp: np.ndarray,
    fn: np.ndarray,
) -> dict[str, np.ndarray]:
    """NLL, ECE, MCE, ACE, Brier and Dice from a label's sums, element-wise over any leading shape.

    Args:
        count, sum_confidence, sum_target: (..., B) per-bin sums of the reliability statistics.
        nll_sum, brier_sum, tp, fp, fn: (...) sums and confusion counts.
    """
    n = np.asarray(count, dtype=np.float64).sum(axis=-1)
    return {
        "nll": mean_per_sample(nll_sum, n),
        "brier": mean_per_sample(brier_sum, n),
        **binned_errors(count, sum_confidence, sum_target),
        "dice": dice_from_counts(tp, fp, fn),
    }


def label_metrics(stats: LabelStats) -> dict[str, float]:
    """NLL, ECE, MCE, ACE, Brier and Dice of one label's statistics (truth metrics: see `truth_metrics`)."""
    r = stats.reliability
    arrays = label_metric_arrays(
        r.count, r.sum_confidence, r.sum_target, stats.nll_sum, stats.brier_sum, stats.tp, stats.fp, stats.fn
    )
    return {name: float(value) for name, value in arrays.items()}


def nan_mean(values: list[float] | np.ndarray) -> float:
    """Mean of the non-NaN values; NaN if there are none (no warning)."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan
