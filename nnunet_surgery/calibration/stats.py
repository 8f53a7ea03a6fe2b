"""Sufficient statistics for streaming calibration metrics, and their merge.

Every metric of the report is a function of a few float64 sums, so a dataset is scored one case (and one
chunk of voxels) at a time and the sums are merged: merge(stats(A), stats(B)) == stats(A u B), up to
float64 summation order. Nothing here grows with the number of voxels; the size is O(bins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_surgery.calibration.binning import check_n_bins

__all__ = ["BinnedStats", "LabelStats", "TruthStats"]


@dataclass(frozen=True)
class BinnedStats:
    """Per-bin sums of a reliability diagram: bin by `confidence`, compare with the mean `target`.

    Attributes:
        count: (B,) number of samples per bin.
        sum_confidence: (B,) sum of the confidences in each bin.
        sum_target: (B,) sum of the targets in each bin (0/1 outcomes, or true probabilities).
    """

    count: np.ndarray
    sum_confidence: np.ndarray
    sum_target: np.ndarray

    def __post_init__(self) -> None:
        shapes = {np.shape(self.count), np.shape(self.sum_confidence), np.shape(self.sum_target)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"BinnedStats arrays must be 1-D of one length, but got shapes {sorted(shapes)}")

    @classmethod
    def zeros(cls, n_bins: int) -> BinnedStats:
        """Empty statistics (the identity of `merge`)."""
        n_bins = check_n_bins(n_bins)
        return cls(np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins))

    @property
    def n_bins(self) -> int:
        return int(self.count.shape[0])

    @property
    def total(self) -> float:
        """Number of samples over all bins."""
        return float(self.count.sum())

    def coarsen(self, factor: int) -> BinnedStats:
        """Statistics of bins `factor` times wider: bin k sums bins k * factor .. (k + 1) * factor - 1.

        With equal-width bins this is exact: floor(floor(p B f) / f) = floor(p B) for an integer f.
        """
        if factor < 1 or self.n_bins % factor:
            raise ValueError(f"factor must be >= 1 and divide the {self.n_bins} bins, but got {factor}")
        return BinnedStats(
            *(
                values.reshape(-1, factor).sum(axis=1)
                for values in (self.count, self.sum_confidence, self.sum_target)
            )
        )

    def merge(self, other: BinnedStats) -> BinnedStats:
        """Statistics of the union of both sample sets."""
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot merge BinnedStats with {self.n_bins} and {other.n_bins} bins")
        return BinnedStats(
            self.count + other.count,
            self.sum_confidence + other.sum_confidence,
            self.sum_target + other.sum_target,
        )


@dataclass(frozen=True)
class TruthStats:
    """Distance of predicted probabilities p to known true probabilities p* (synthetic data).

    Attributes:
        versus_truth: p binned, target p*: ECE of p against p*.
        abs_error_sum: sum of |p - p*|.
        truth_reliability: p* binned, target the 0/1 label: the calibration of p* itself (sampling floor).
    """

    versus_truth: BinnedStats
    abs_error_sum: float
    truth_reliability: BinnedStats

    @classmethod
    def zeros(cls, n_bins: int) -> TruthStats:
        return cls(BinnedStats.zeros(n_bins), 0.0, BinnedStats.zeros(n_bins))

    def merge(self, other: TruthStats) -> TruthStats:
        return TruthStats(
            self.versus_truth.merge(other.versus_truth),
            self.abs_error_sum + other.abs_error_sum,
            self.truth_reliability.merge(other.truth_reliability),
        )


@dataclass(frozen=True)
class LabelStats:
    """All sums for one foreground label or region, one-vs-rest on its channel.

    Attributes:
        reliability: p binned, target y in {0, 1}; its total is the number of scored voxels.
        nll_sum: sum of -log p_y with p clipped to [eps, 1 - eps].
        brier_sum: sum of (p - y)**2.
        tp, fp, fn: hard confusion counts for Dice (may come from a different voxel set than the
            calibration sums, e.g. all voxels while the calibration uses a region of interest).
        truth: distances to true probabilities, or None when none were given.
        fine: the reliability statistics over bins `fine.n_bins / reliability.n_bins` times narrower (for
            the equal-mass ECE, `variants`), or None.
    """

    reliability: BinnedStats
    nll_sum: float = 0.0
    brier_sum: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    truth: TruthStats | None = None
    fine: BinnedStats | None = None

    @classmethod
    def zeros(cls, n_bins: int, *, with_truth: bool = False, fine_factor: int = 1) -> LabelStats:
        """Empty statistics (the identity of `merge`); `fine_factor > 1` adds fine statistics."""
        return cls(
            BinnedStats.zeros(n_bins),
            truth=TruthStats.zeros(n_bins) if with_truth else None,
            fine=BinnedStats.zeros(n_bins * fine_factor) if fine_factor > 1 else None,
        )

    @property
    def n(self) -> float:
        """Number of voxels in the calibration sums."""
        return self.reliability.total

    def merge(self, other: LabelStats) -> LabelStats:
        """Statistics of the union of both voxel sets."""
        if (self.truth is None) != (other.truth is None):
            raise ValueError("cannot merge LabelStats with and without truth statistics")
        if (self.fine is None) != (other.fine is None):
            raise ValueError("cannot merge LabelStats with and without fine statistics")
        return LabelStats(
            self.reliability.merge(other.reliability),
            self.nll_sum + other.nll_sum,
            self.brier_sum + other.brier_sum,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            None if self.truth is None else self.truth.merge(other.truth),
            None if self.fine is None else self.fine.merge(other.fine),
        )
