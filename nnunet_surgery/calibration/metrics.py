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

__all__ = ["calibration_errors", "dice", "label_metrics", "nan_mean", "reliability_curve", "truth_metrics"]


def reliability_curve(stats: BinnedStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean confidence and mean target, NaN for empty bins."""
    with np.errstate(invalid="ignore", divide="ignore"):
        filled = stats.count > 0
        mean_confidence = np.where(filled, stats.sum_confidence / np.where(filled, stats.count, 1), np.nan)
        mean_target = np.where(filled, stats.sum_target / np.where(filled, stats.count, 1), np.nan)
    return mean_confidence, mean_target


def calibration_errors(stats: BinnedStats) -> dict[str, float]:
    """ECE, MCE and ACE (see the module docstring) of one set of binned statistics."""
    filled = stats.count > 0
    if not filled.any():
        return {"ece": math.nan, "mce": math.nan, "ace": math.nan}
    gap = np.abs(stats.sum_target[filled] - stats.sum_confidence[filled]) / stats.count[filled]
    return {
        "ece": float(np.dot(stats.count[filled], gap) / stats.count[filled].sum()),
        "mce": float(gap.max()),
        "ace": float(gap.mean()),
    }


def dice(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); NaN when reference and prediction are both empty (nnU-Net's convention)."""
    denominator = 2 * tp + fp + fn
    return math.nan if denominator == 0 else float(2 * tp / denominator)


def truth_metrics(stats: TruthStats) -> dict[str, float]:
    """Distance of p to the true probabilities p*.

    Returns:
        mae: mean |p - p*|; ece: sum_b (n_b / N) |mean p_b - mean p*_b| with bins of p;
        ece_truth_self: ECE of p* against the labels (the value a perfect model would get; sampling floor).
    """
    n = stats.versus_truth.total
    return {
        "mae": math.nan if n == 0 else stats.abs_error_sum / n,
        "ece": calibration_errors(stats.versus_truth)["ece"],
        "ece_truth_self": calibration_errors(stats.truth_reliability)["ece"],
    }


def label_metrics(stats: LabelStats) -> dict[str, float]:
    """NLL, ECE, MCE, ACE, Brier and Dice of one label's statistics (truth metrics: see `truth_metrics`)."""
    n = stats.n
    return {
        "nll": math.nan if n == 0 else stats.nll_sum / n,
        "brier": math.nan if n == 0 else stats.brier_sum / n,
        **calibration_errors(stats.reliability),
        "dice": dice(stats.tp, stats.fp, stats.fn),
    }


def nan_mean(values: list[float] | np.ndarray) -> float:
    """Mean of the non-NaN values; NaN if there are none (no warning)."""
    values = np.asarray(values, dtype=np.float64)
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else math.nan
