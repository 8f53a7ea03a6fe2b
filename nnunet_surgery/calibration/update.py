"""Statistics of one batch of voxels (stage 2 of validate -> update -> compute).

Each function maps flat arrays of one chunk to the sums of `nnunet_surgery.calibration.stats`; a stream
of chunks and cases is scored by merging the results.
"""

from __future__ import annotations

import numpy as np

from nnunet_surgery.calibration.binning import bin_indices, check_n_bins
from nnunet_surgery.calibration.stats import BinnedStats, LabelStats, TruthStats

__all__ = ["NLL_EPS", "binned_stats", "confusion_counts", "label_stats", "top_label_inputs"]

# NLL clips p_y to [NLL_EPS, 1 - NLL_EPS] (in float64), NLL_EPS = 2**-23 ~= 1.19e-7, the float32 machine
# epsilon: the clipping sklearn's log_loss applies to float32 probabilities, and 1 - NLL_EPS is exact in
# float32. A confidently wrong voxel (p_y = 0) costs -log(2**-23) ~= 15.9 nats instead of inf.
NLL_EPS = float(np.finfo(np.float32).eps)


def _flat(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, but got shape {values.shape}")
    return values


def binned_stats(
    confidence: np.ndarray, target: np.ndarray, n_bins: int, *, confidence64: np.ndarray | None = None
) -> BinnedStats:
    """Per-bin count, confidence sum and target sum (see `binning` for the bin convention).

    Args:
        confidence: (N,) probabilities in [0, 1] that choose the bin.
        target: (N,) what each confidence is compared with: 0/1 outcomes or true probabilities.
        n_bins: number of equal-width bins.
        confidence64: `confidence` already converted to float64, if the caller has it: the sums are the
            same (bincount adds float64 weights either way) without converting again.
    """
    confidence, target = _flat("confidence", confidence), _flat("target", target)
    if confidence.shape != target.shape:
        raise ValueError(
            f"confidence and target must have one shape, but got {confidence.shape} and {target.shape}"
        )
    n_bins = check_n_bins(n_bins)
    index = bin_indices(confidence, n_bins)
    weights = confidence if confidence64 is None else confidence64
    sum_confidence = np.bincount(index, weights=weights, minlength=n_bins)  # float64 sums
    if target.dtype == bool:
        count, sum_target = _outcome_counts(index, target, n_bins)
    else:
        count = np.bincount(index, minlength=n_bins).astype(np.float64)
        sum_target = np.bincount(index, weights=target, minlength=n_bins)
    return BinnedStats(count, sum_confidence, sum_target)


def _outcome_counts(index: np.ndarray, outcome: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin count and number of true outcomes, from one unweighted bincount of 2 * bin + outcome."""
    code_type = np.promote_types(index.dtype, np.min_scalar_type(2 * n_bins - 1))
    code = np.multiply(index, 2, dtype=code_type)
    code += outcome
    joint = np.bincount(code, minlength=2 * n_bins).reshape(n_bins, 2)
    return joint.sum(axis=1).astype(np.float64), joint[:, 1].astype(np.float64)


def confusion_counts(prediction: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(TP, FP, FN) of two boolean masks of one shape."""
    prediction, reference = np.asarray(prediction, dtype=bool), np.asarray(reference, dtype=bool)
    if prediction.shape != reference.shape:
        raise ValueError(
            f"prediction and reference must have one shape, but got {prediction.shape} and {reference.shape}"
        )
    tp = int(np.count_nonzero(prediction & reference))
    return float(tp), float(np.count_nonzero(prediction) - tp), float(np.count_nonzero(reference) - tp)


def label_stats(
    probability: np.ndarray,
    outcome: np.ndarray,
    n_bins: int,
    *,
    truth: np.ndarray | None = None,
    counts: tuple[float, float, float] = (0.0, 0.0, 0.0),
    eps: float = NLL_EPS,
    fine_factor: int = 1,
) -> LabelStats:
    """One-vs-rest statistics of one label's channel over a set of voxels.

    Args:
        probability: (N,) predicted probability p of the label (its softmax or sigmoid channel).
        outcome: (N,) boolean, whether the reference is that label (or inside that region).
        n_bins: number of confidence bins.
        truth: (N,) true probabilities p* of the label, or None.
        counts: (TP, FP, FN) of the hard prediction, taken as given (see `confusion_counts`).
        eps: NLL clipping, p -> clip(p, eps, 1 - eps).
        fine_factor: > 1 also keeps the statistics over `n_bins * fine_factor` bins (`LabelStats.fine`),
            from which the `n_bins` bins are summed exactly: one binning pass for both.
    """
    probability, outcome = (
        _flat("probability", probability),
        _flat("outcome", outcome).astype(bool, copy=False),
    )
    p = probability.astype(np.float64)
    residual = p - outcome
    # p_y = 1 - |p - y| (p where y, 1 - p elsewhere): from the residual, with no select pass. Both
    # subtractions are exact in float64 for float32 p >= 2**-30; a smaller p, where y, becomes a value
    # below eps or 0, which the clip takes to eps as it does p itself
    p_true = np.abs(residual)
    # numpy's pairwise sum of the squares, not np.dot: BLAS's threads spin beside the read-ahead thread
    # (`cases.pool.read_ahead`) and cost a 2 x 160^3 case 80 ms (docs/benchmarks.md)
    brier_sum = float(np.square(residual, out=residual).sum())
    np.subtract(1.0, p_true, out=p_true)
    nll_sum = -float(np.log(np.clip(p_true, eps, 1.0 - eps, out=p_true), out=p_true).sum())
    truth_stats = None
    if truth is not None:
        truth = _flat("truth", truth)
        if truth.shape != p.shape:
            raise ValueError(
                f"truth and probability must have one shape, but got {truth.shape} and {p.shape}"
            )
        truth_stats = TruthStats(
            binned_stats(p, truth, n_bins),
            float(np.abs(p - truth).sum()),
            binned_stats(truth, outcome, n_bins),
        )
    tp, fp, fn = counts
    # binned on the input values: the bins and float64 sums equal those of p, and float32 bins faster
    fine = None
    if fine_factor > 1:
        fine = binned_stats(probability, outcome, n_bins * fine_factor, confidence64=p)
        reliability = fine.coarsen(fine_factor)
    else:
        reliability = binned_stats(probability, outcome, n_bins, confidence64=p)
    return LabelStats(reliability, nll_sum, brier_sum, tp, fp, fn, truth_stats, fine)


def top_label_inputs(
    probabilities: np.ndarray, reference_channel: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-label confidence and correctness of a softmax: (max_c p_c, argmax == reference, argmax).

    Args:
        probabilities: (C, N) softmax probabilities (two channels: compared directly, no argmax pass).
        reference_channel: (N,) channel index of the reference class of each voxel.
    """
    if probabilities.ndim != 2 or probabilities.shape[1:] != np.shape(reference_channel):
        raise ValueError(
            f"probabilities must be (C, N) and reference_channel (N,), but got {probabilities.shape} "
            f"and {np.shape(reference_channel)}"
        )
    if probabilities.shape[0] == 2:
        winner, confidence = _two_channel_top_label(probabilities)
    else:
        winner = probabilities.argmax(axis=0)
        confidence = np.take_along_axis(probabilities, winner[None], axis=0)[0]
    return confidence, winner == reference_channel, winner


def _two_channel_top_label(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmax and max over two channels: p1 > p0 (ties go to channel 0, as argmax) and max(p0, p1)."""
    p0, p1 = probabilities
    winner = np.greater(p1, p0).view(np.uint8)  # channel index 0 / 1, without a copy
    return winner, np.maximum(p0, p1)
