"""Estimator variants readers compare with: adaptive (equal-mass) ECE, RMS calibration error, MONAI's bins.

Every variant is computed from mergeable per-bin sums (`BinnedStats`), as the rest of the report: voxels are
streamed chunk by chunk and case by case, and nothing grows with their number.

Adaptive (equal-mass) ECE
-------------------------
The caller accumulates a fine equal-width histogram, `binned_stats(p, y, FINE_BINS)` with
FINE_BINS = 2**16 (mergeable like any `BinnedStats`; 3 x 65536 float64 = 1.5 MiB), and `equal_mass_stats`
groups consecutive fine bins into `n_bins` bins of about N / n_bins samples each. Fine bins are never split.
With c_i samples in fine bin i, C_i = c_0 + ... + c_{i-1} samples before it and N in all, fine bin i goes
to adaptive bin

    b(i) = floor(n_bins * (C_i + c_i / 2) / N)        (integer arithmetic, exact)

i.e. to the adaptive bin of its middle sample. Why this rule: the exact equal-mass split of the sorted
samples puts the sample of 0-based rank r into bin floor(n_bins * (r + 1/2) / N) (the midpoint of its
share [r / N, (r + 1) / N) of the empirical distribution; bins of floor(N / n_bins) or ceil(N / n_bins)
samples, placed symmetrically). A fine bin holds the ranks C_i .. C_i + c_i - 1, and its middle position
C_i + c_i / 2 lies between the first and the last of their midpoints, so b(i) is one of the exact bins of
its own samples: the two partitions agree on every fine bin whose samples all fall into one exact bin, in
particular whenever each fine bin holds at most one sample (then C_i + c_i / 2 = r + 1/2). Splitting at
the middle also moves at most half of a straddling fine bin across a boundary, and the rule is
deterministic and independent of how the sums were merged. When N is a multiple of n_bins every bin of the
exact split holds N / n_bins consecutive samples, so it equals netcal's equal-frequency bins
(`ECE(equal_intervals=False)`, np.quantile edges) and torch-uncertainty's `AdaptiveCalibrationError`
(torch.tensor_split of the sorted confidences) on data without ties at the boundaries.

Approximation: the partitions differ only inside the at most n_bins - 1 fine bins that straddle an exact
boundary, so every boundary lies at most one fine bin, 1 / 65536 in p, from the exact quantile. Moving one
sample between bins changes sum_b |sum_{i in b} (y_i - p_i)| by at most 2 |y_i - p_i|, hence

    |adaptive ECE - exact equal-mass ECE| <= 2 m / N,

m the number of samples in the straddling fine bins (at most n_bins - 1 bins of width 2**-16). A fine bin
with more than N / n_bins samples (a point mass, e.g. many voxels at p = 0 exactly) covers whole adaptive
bins, which then stay empty; an exact split would cut the tie at an arbitrary place in sorted order, so
there no split is better defined than this one. Empty adaptive bins add nothing.

    adaptive ECE = sum_b (n_b / N) |mean y_b - mean p_b|     over the equal-mass bins

RMS calibration error
---------------------
    RMS = sqrt( sum_b (n_b / N) (mean y_b - mean p_b)**2 )

the L2 calibration error of Kumar et al. (2019, without their debiasing term), what torchmetrics'
`binary_calibration_error(norm="l2")` returns: torchmetrics takes the square root (`torch.sqrt(ce)`). With
the same bins, RMS >= ECE (Jensen). Any `BinnedStats` will do: equal-width or `equal_mass_stats`.

MONAI's CalibrationErrorMetric (monai 1.6.1, monai/metrics/calibration.py)
-------------------------------------------------------------------------
MONAI works per image and per channel: `y_pred` (batch, C, *spatial) probabilities, `y` the same shape,
one-hot; for each image and channel c it bins all voxels of that channel (B = num_bins bins) and
reduces the bins.

- Edges: `torch.linspace(0, 1 + 2**-23, num_bins + 1)` in float32 (2**-23 = torch.finfo(float32).eps), so
  e_k is about k (1 + 2**-23) / B: at or above k / B by at most 3.5 float32 ulps for every B < 5000, and
  the last edge is above 1.
  `monai_bin_edges` reproduces torch's linspace bit for bit: step = fl32((1 + 2**-23) / B), e_k =
  fl32(k step) for k < (B + 1) // 2 and fl32((1 + 2**-23) - (B - k) step) above, each with one rounding
  (as torch's AVX2 / AVX512 CPU kernels, compiled with FMA, compute it: checked bit for bit for B = 1 .. 4999
  and 65536; its CUDA kernel evaluates the same expressions, which nvcc contracts to FMA by default, not
  checked here). A build without FMA rounds the upper-half products separately, which can move an
  edge by one float32 ulp and so only the bin of a p within one ulp of it.
- Bins: `torch.bucketize(p, edges[1:], right=False)` clamped to B - 1. torch.bucketize's `right=False`
  means e_{i} < p <= e_{i+1}: the bins are (lo, hi], left-open (MONAI's docstring says [left, right),
  but bucketize's convention decides). p = 0 goes to bin 0 and p = 1 to bin B - 1 (below the last
  edge). With B = 20 every float32 p = fl32(k / 20), k = 1 .. 19, lies at or below e_k and goes to bin
  k - 1 (ours: bin k). `right=True` gives [lo, hi) with the same edges; then fl32(k / 20) still goes to
  bin k - 1 except for k = 3 and 6, where it equals e_k. p is cast to float32 first (`.float()`).
- Sums in float32 (`scatter_add_`), means per bin, empty bins NaN. Reductions per image and channel:
  "expected" = nansum(|gap| n_b) / N = our ECE, "average" = nanmean over non-empty bins = our ACE,
  "maximum" = max over non-empty bins = our MCE; NaN when the image has no voxels (`MONAI_REDUCTIONS`).
- `include_background=False` drops channel 0 (only when there is more than one channel).
- `metric_reduction="mean"`: per image the mean over channels ignoring NaN, then the mean over the images
  that have at least one non-NaN channel; 0.0 when every value is NaN. "mean_batch": per channel, the mean
  over images ignoring NaN.

What our sums reproduce, and what `--preset monai` is: per case (= image) and foreground label, one-vs-rest
on the label's channel (MONAI's one-hot channel c is `reference == c`), `monai_binned_stats(p, y, 20)` with
MONAI's float32 edges and (lo, hi] bins; ECE of each case = `calibration_errors(stats)["ece"]`, i.e.
`CalibrationErrorMetric(num_bins=20, include_background=False, calibration_reduction="expected",
right=False)` per image and channel; the per-label case mean (NaN-ignoring) is its `metric_reduction=
"mean_batch"`, and `monai_mean` of the (cases, labels) matrix its default `metric_reduction="mean"`.
Differences that remain: our sums are float64, MONAI's float32 (agreement to float32 rounding, about 1e-6;
MONAI's float32 counts are exact only up to 2**24 voxels per bin and image); `monai_mean` returns NaN, not
MONAI's 0.0, when no value is defined; background is not a label of the report, so MONAI's default
`include_background=True` (channel 0 scored as one more channel) is not reproduced; voxels of nnU-Net's
ignore label and outside the report's ROI are left out (MONAI scores every voxel: compare with `--roi all`
on datasets without an ignore label). For region-based datasets every channel is a region (there is no
background channel), which corresponds to MONAI with `include_background=True` on the region channels.
"""

from __future__ import annotations

import math

import numpy as np

from nnunet_surgery.calibration.binning import bin_indices, check_n_bins
from nnunet_surgery.calibration.metrics import calibration_errors, nan_mean
from nnunet_surgery.calibration.stats import BinnedStats

__all__ = [
    "FINE_BINS",
    "MONAI_BINS",
    "MONAI_REDUCTIONS",
    "adaptive_calibration_error",
    "equal_mass_ece",
    "equal_mass_stats",
    "fine_factor",
    "monai_bin_edges",
    "monai_bin_indices",
    "monai_binned_stats",
    "monai_mean",
    "rms_calibration_error",
]

#: Fine equal-width bins from which `equal_mass_stats` forms equal-mass bins (width 2**-16 in p).
FINE_BINS = 2**16


def fine_factor(n_bins: int) -> int:
    """How many fine bins make one of `n_bins` equal-width bins, so that at least FINE_BINS fine bins
    cover [0, 1] and each coarse bin is an exact sum of fine ones (`BinnedStats.coarsen`)."""
    return max(1, -(-FINE_BINS // check_n_bins(n_bins)))


#: MONAI's default `num_bins` of `CalibrationErrorMetric`.
MONAI_BINS = 20

#: MONAI's `calibration_reduction` names -> the keys of `calibration_errors`.
MONAI_REDUCTIONS = {"expected": "ece", "average": "ace", "maximum": "mce"}

# MONAI's last edge: 1 + torch.finfo(torch.float32).eps, exactly a float32.
_MONAI_END = 1.0 + 2.0**-23
_INT64_MAX = int(np.iinfo(np.int64).max)


def _integer_counts(count: np.ndarray) -> np.ndarray:
    """The counts of a `BinnedStats` as int64; ValueError unless they are non-negative integers."""
    count = np.asarray(count, dtype=np.float64)
    if not (np.all(count >= 0) and np.all(count <= 2.0**53) and np.array_equal(count, np.floor(count))):
        raise ValueError(f"counts must be non-negative integers, but got {count[:8]}...")
    return count.astype(np.int64)


def equal_mass_stats(fine: BinnedStats, n_bins: int) -> BinnedStats:
    """Group consecutive fine bins into `n_bins` equal-mass bins (see the module docstring).

    Fine bin i, with c_i samples and C_i before it, goes whole to bin floor(n_bins (C_i + c_i / 2) / N).

    Args:
        fine: statistics over many equal-width bins, normally `binned_stats(p, y, FINE_BINS)` merged over
            chunks and cases (counts must be integers).
        n_bins: number of equal-mass bins.

    Returns:
        Statistics of the `n_bins` equal-mass bins, in order of confidence; bins can be empty (no samples
        at all, or a fine bin heavier than N / n_bins).
    """
    n_bins = check_n_bins(n_bins)
    count = _integer_counts(fine.count)
    total = int(count.sum())
    if total == 0:
        return BinnedStats.zeros(n_bins)
    if 2 * total > _INT64_MAX // n_bins:
        raise ValueError(f"too many samples for exact int64 bin assignment, but got {total}")
    before = np.cumsum(count) - count
    index = (n_bins * (2 * before + count)) // (2 * total)
    np.minimum(index, n_bins - 1, out=index)  # trailing empty fine bins (C_i = N) carry no weight anyway
    return BinnedStats(
        np.bincount(index, weights=fine.count, minlength=n_bins),
        np.bincount(index, weights=fine.sum_confidence, minlength=n_bins),
        np.bincount(index, weights=fine.sum_target, minlength=n_bins),
    )


def equal_mass_ece(fine: BinnedStats, n_bins: int) -> float:
    """Equal-mass (adaptive) ECE: sum_b (n_b / N) |mean y_b - mean p_b| over `equal_mass_stats` bins (the
    report's `ece_equal_mass`; torch-uncertainty calls it ACE, which the report's `ace` is not).

    Args:
        fine: fine equal-width statistics, normally `binned_stats(p, y, FINE_BINS)` (mergeable).
        n_bins: number of equal-mass bins.

    Returns:
        The equal-mass ECE; NaN without samples.
    """
    return calibration_errors(equal_mass_stats(fine, n_bins))["ece"]


#: The earlier name of `equal_mass_ece` (kept for scripts; "ACE" is the average calibration error here).
adaptive_calibration_error = equal_mass_ece


def rms_calibration_error(stats: BinnedStats) -> float:
    """RMS (L2) calibration error sqrt(sum_b (n_b / N) (mean y_b - mean p_b)**2); NaN without samples.

    torchmetrics' `binary_calibration_error(norm="l2")` with the same bins (it takes the square root too).
    """
    filled = stats.count > 0
    if not filled.any():
        return math.nan
    count = stats.count[filled]
    gap = (stats.sum_target[filled] - stats.sum_confidence[filled]) / count
    return float(np.sqrt(np.dot(count, gap * gap) / count.sum()))


def monai_bin_edges(n_bins: int = MONAI_BINS) -> np.ndarray:
    """MONAI's float32 bin edges, torch.linspace(0, 1 + 2**-23, n_bins + 1) bit for bit.

    torch computes step = fl32((1 + 2**-23) / n_bins) and, with h = (n_bins + 1) // 2, edge k as
    fl32(k step) for k < h and fl32((1 + 2**-23) - (n_bins - k) step) for k >= h, one rounding each (FMA).
    Both products and the difference are exact in float64 (at most 24 + 21 significant bits), so rounding
    the float64 value to float32 once gives the same number.
    """
    n_bins = check_n_bins(n_bins)
    end = float(np.float32(_MONAI_END))
    # float64 division then float32 rounding = float32 division (53 >= 2 * 24 + 2: no double rounding)
    step = float(np.float32(end / n_bins))
    k = np.arange(n_bins + 1, dtype=np.float64)
    exact = np.where(k < (n_bins + 1) // 2, step * k, end - step * (n_bins - k))
    return exact.astype(np.float32)


def monai_bin_indices(confidence: np.ndarray, n_bins: int = MONAI_BINS, *, right: bool = False) -> np.ndarray:
    """MONAI's bin of each confidence: torch.bucketize(p.float(), edges[1:], right).clamp(max=n_bins - 1).

    Args:
        confidence: probabilities, any shape (cast to float32 first, as MONAI does).
        n_bins: MONAI's `num_bins`.
        right: MONAI's `right`: False (its default) gives bins (lo, hi], True gives [lo, hi); p = 0 is in
            bin 0 and p = 1 in bin n_bins - 1 either way.

    Returns:
        int32 array of the same shape with values in [0, n_bins - 1].
    """
    n_bins = check_n_bins(n_bins)
    values = np.asarray(confidence, dtype=np.float32)
    edges = monai_bin_edges(n_bins)
    # Every edge e_k is within a few float32 ulps of k / n_bins, so MONAI's bin is j - 1, j or j + 1 for
    # j = floor(p n_bins) (exact, `bin_indices`): one step down when p is at or below e_j, one up when it is
    # above e_{j+1}. This equals torch.bucketize (count of upper edges < p, or <= p for right=True) and
    # costs two gathers instead of a binary search.
    j = bin_indices(values, n_bins).astype(np.int32)
    if right:
        index = j - (values < edges[j]) + (values >= edges[j + 1])
    else:
        index = j - (values <= edges[j]) + (values > edges[j + 1])
    np.clip(index, 0, n_bins - 1, out=index)
    return index


def monai_binned_stats(
    confidence: np.ndarray, target: np.ndarray, n_bins: int = MONAI_BINS, *, right: bool = False
) -> BinnedStats:
    """Per-bin sums with MONAI's bins (`monai_bin_indices`), float64 sums of the float32-cast confidences.

    Args:
        confidence: (N,) probabilities of one channel of one image (or a chunk of it; merge the results).
        target: (N,) the one-hot channel: 0/1 or boolean.
        n_bins: MONAI's `num_bins`.
        right: MONAI's `right` (see `monai_bin_indices`).
    """
    confidence, target = np.asarray(confidence), np.asarray(target)
    if confidence.ndim != 1 or confidence.shape != target.shape:
        raise ValueError(
            f"confidence and target must be 1-D of one shape, but got {confidence.shape} and {target.shape}"
        )
    n_bins = check_n_bins(n_bins)
    values = confidence.astype(np.float32, copy=False)
    index = monai_bin_indices(values, n_bins, right=right)
    return BinnedStats(
        np.bincount(index, minlength=n_bins).astype(np.float64),
        np.bincount(index, weights=values, minlength=n_bins),
        np.bincount(index, weights=target.astype(np.float64, copy=False), minlength=n_bins),
    )


def monai_mean(errors: np.ndarray) -> float:
    """MONAI's `metric_reduction="mean"` of a (images, channels) array of per-image errors.

    Per image the mean over its non-NaN channels, then the mean over the images that have one. MONAI
    returns 0.0 when every value is NaN; this returns NaN (the report's convention for undefined metrics).
    """
    errors = np.asarray(errors, dtype=np.float64)
    if errors.ndim != 2:
        raise ValueError(f"errors must be a 2-D (images, channels) array, but got shape {errors.shape}")
    per_image = [nan_mean(row) for row in errors]
    return nan_mean(per_image)
