"""Streaming calibration metrics for segmentation (numpy only, no nnU-Net imports).

Three stages, as torchmetrics' calibration_error but over a stream of chunks: `check_probabilities`
(validate) -> `label_stats` / `binned_stats` (update: float64 sufficient statistics, merged with
`.merge`) -> `label_metrics` / `calibration_errors` (compute). Bin convention: `binning` (docs/calibration.md#bins).
Beside the plug-in errors: `estimators` (debiased squared L2 error, bias-corrected ECE) and `smooth` (smooth
ECE); `pooled`, `resampling` and `bootstrap` turn per-case sums into estimates with BCa intervals in bounded
memory (docs/calibration.md#bca).
"""

from __future__ import annotations

from nnunet_surgery.calibration.binning import BIN_CONVENTION, MAX_BINS, bin_edges, bin_indices, check_n_bins
from nnunet_surgery.calibration.estimators import debiased_ece, debiased_squared_error, squared_error
from nnunet_surgery.calibration.metrics import (
    calibration_errors,
    dice,
    label_metrics,
    nan_mean,
    reliability_curve,
    truth_metrics,
)
from nnunet_surgery.calibration.smooth import SmoothECE, smooth_ece
from nnunet_surgery.calibration.stats import BinnedStats, LabelStats, TruthStats
from nnunet_surgery.calibration.update import (
    NLL_EPS,
    binned_stats,
    confusion_counts,
    label_stats,
    top_label_inputs,
)
from nnunet_surgery.calibration.validate import ProbabilityError, check_probabilities
from nnunet_surgery.calibration.variants import (
    FINE_BINS,
    MONAI_BINS,
    MONAI_REDUCTIONS,
    adaptive_calibration_error,
    equal_mass_ece,
    equal_mass_stats,
    fine_factor,
    monai_bin_edges,
    monai_bin_indices,
    monai_binned_stats,
    monai_mean,
    rms_calibration_error,
)

__all__ = [
    "BIN_CONVENTION",
    "FINE_BINS",
    "MAX_BINS",
    "MONAI_BINS",
    "MONAI_REDUCTIONS",
    "NLL_EPS",
    "BinnedStats",
    "LabelStats",
    "ProbabilityError",
    "SmoothECE",
    "TruthStats",
    "adaptive_calibration_error",
    "bin_edges",
    "bin_indices",
    "binned_stats",
    "calibration_errors",
    "check_n_bins",
    "check_probabilities",
    "confusion_counts",
    "debiased_ece",
    "debiased_squared_error",
    "dice",
    "equal_mass_ece",
    "equal_mass_stats",
    "fine_factor",
    "label_metrics",
    "label_stats",
    "monai_bin_edges",
    "monai_bin_indices",
    "monai_binned_stats",
    "monai_mean",
    "nan_mean",
    "reliability_curve",
    "rms_calibration_error",
    "smooth_ece",
    "squared_error",
    "top_label_inputs",
    "truth_metrics",
]
