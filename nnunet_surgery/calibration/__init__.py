"""Streaming calibration metrics for segmentation (numpy only, no nnU-Net imports).

Three stages, as torchmetrics' calibration_error but over a stream of chunks: `check_probabilities`
(validate) -> `label_stats` / `binned_stats` (update: float64 sufficient statistics, merged with
`.merge`) -> `label_metrics` / `calibration_errors` (compute). Bin convention: `binning` (docs/calibration.md#bins).
"""

from __future__ import annotations

from nnunet_surgery.calibration.binning import BIN_CONVENTION, MAX_BINS, bin_edges, bin_indices, check_n_bins
from nnunet_surgery.calibration.metrics import (
    calibration_errors,
    dice,
    label_metrics,
    nan_mean,
    reliability_curve,
    truth_metrics,
)
from nnunet_surgery.calibration.stats import BinnedStats, LabelStats, TruthStats
from nnunet_surgery.calibration.update import (
    NLL_EPS,
    binned_stats,
    confusion_counts,
    label_stats,
    top_label_inputs,
)
from nnunet_surgery.calibration.validate import ProbabilityError, check_probabilities

__all__ = [
    "BIN_CONVENTION",
    "MAX_BINS",
    "NLL_EPS",
    "BinnedStats",
    "LabelStats",
    "ProbabilityError",
    "TruthStats",
    "bin_edges",
    "bin_indices",
    "binned_stats",
    "calibration_errors",
    "check_n_bins",
    "check_probabilities",
    "confusion_counts",
    "dice",
    "label_metrics",
    "label_stats",
    "nan_mean",
    "reliability_curve",
    "top_label_inputs",
    "truth_metrics",
]
