"""Sufficient statistics of the per-case false-negative rate of {p >= t}, exact at every float32 t.

For one label (or region) and case i with R_i reference voxels of probabilities p_iv, the false-negative
rate of the mask {p >= t} is

    FNR_i(t) = #{v : p_iv < t} / R_i,        FNR_i(t) = 0 when R_i = 0 (nothing to miss),

a non-decreasing, left-continuous step function of t that jumps right after each reference probability.
Conformal risk control needs S(t) = sum_i FNR_i(t) at every t, which is a sum over reference voxels of the
weight 1 / R_i of their case. Two passes give it exactly without keeping voxels (docs/conformal.md#exact-search):

- pass 1, `CaseCounts` per case -> `FnrStats` over cases: the reference voxels per coarse key bin
  (`keys`), weighted 1 / R_i; S at the lower edge of every coarse bin is a prefix sum;
- pass 2, `CaseBinCounts` per case -> `BinFnrStats` over cases: within the one coarse bin where the risk
  crosses its bound, the reference voxels per distinct float32 value, weighted likewise.

The per-case types hold exact integer counts (a case's FNR_i at every t is a ratio of them); the types over
cases hold float64 sums of the weights, merged in case order. Sizes: O(N_COARSE) and, for pass 2, at most
2^16 entries, whatever the number of voxels or cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_surgery.conformal._merge import sum_fields
from nnunet_surgery.conformal.keys import N_COARSE, float32_at_least, order_keys

__all__ = [
    "GRID_KEYS",
    "RISK_GRID",
    "BinFnrStats",
    "CaseBinCounts",
    "CaseCounts",
    "FnrStats",
]

#: Thresholds of the risk curve CONFORMAL.json reports: 0, 0.01, ..., 1 (as real numbers).
RISK_GRID = np.arange(101, dtype=np.float64) / 100
#: Their keys: {p >= RISK_GRID[k]} = {key(p) >= GRID_KEYS[k]} for float32 p (`float32_at_least`).
GRID_KEYS = order_keys(float32_at_least(RISK_GRID))


def _int_array(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


@dataclass(frozen=True)
class CaseCounts:
    """Pass 1 for one case (or part of one): exact counts of its reference voxels.

    Attributes:
        n_reference: R, the number of reference voxels.
        coarse: (N_COARSE,) int64, reference voxels per coarse key bin.
        below_grid: (G,) int64, reference voxels with p < RISK_GRID[k], i.e. FNR(RISK_GRID[k]) * R.
    """

    n_reference: int
    coarse: np.ndarray
    below_grid: np.ndarray

    @classmethod
    def zeros(cls) -> CaseCounts:
        """No voxel (the identity of `merge`)."""
        return cls(0, np.zeros(N_COARSE, dtype=np.int64), np.zeros(GRID_KEYS.size, dtype=np.int64))

    def merge(self, other: CaseCounts) -> CaseCounts:
        """Counts of both voxel sets (chunks of one case)."""
        return sum_fields(self, other)


@dataclass(frozen=True)
class FnrStats:
    """Pass 1 over cases: S(t) = sum_i FNR_i(t) at every coarse bin edge and grid threshold.

    Attributes:
        n_cases: cases merged, those with an empty reference included.
        n_empty: cases with no reference voxel (FNR_i = 0 at every t).
        n_reference: sum_i R_i (checks that pass 2 read the same voxels).
        coarse_counts: (N_COARSE,) int64, sum_i of the case's `CaseCounts.coarse` (likewise a check).
        coarse_weights: (N_COARSE,) float64, sum_i coarse_i / R_i: S at the lower edge of bin b is the sum
            of the entries below b.
        grid_weights: (G,) float64, sum_i FNR_i(RISK_GRID[k]).
    """

    n_cases: int
    n_empty: int
    n_reference: int
    coarse_counts: np.ndarray
    coarse_weights: np.ndarray
    grid_weights: np.ndarray

    @classmethod
    def zeros(cls) -> FnrStats:
        """No case (the identity of `merge`)."""
        return cls(
            0,
            0,
            0,
            np.zeros(N_COARSE, dtype=np.int64),
            np.zeros(N_COARSE),
            np.zeros(GRID_KEYS.size),
        )

    @classmethod
    def of_case(cls, counts: CaseCounts) -> FnrStats:
        """One whole case: its counts weighted by 1 / R (an empty reference adds n_cases and n_empty only)."""
        coarse, below = _int_array(counts.coarse), _int_array(counts.below_grid)
        denominator = max(counts.n_reference, 1)  # an empty reference has all-zero counts
        return cls(
            1,
            int(counts.n_reference == 0),
            int(counts.n_reference),
            coarse,
            coarse / denominator,
            below / denominator,
        )

    def merge(self, other: FnrStats) -> FnrStats:
        """Statistics of both case sets (merge in case order for reproducible float sums)."""
        return sum_fields(self, other)


def _merge_sparse(
    fine: tuple[np.ndarray, np.ndarray], *values: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """Union of two sorted sparse histograms over fine indices: (fine, *summed values), values summed per
    index (the first histogram's entry first, so float sums follow merge order)."""
    keys, inverse = np.unique(np.concatenate(fine), return_inverse=True)
    summed = (np.bincount(inverse, weights=np.concatenate(pair), minlength=keys.size) for pair in values)
    return (keys, *summed)


@dataclass(frozen=True)
class CaseBinCounts:
    """Pass 2 for one case (or part of one): its reference voxels inside one coarse bin, by exact value.

    Attributes:
        bin: the coarse bin (`FnrStats` / `locate_crossing`).
        n_reference: R, all reference voxels of the case (inside the bin or not): the weight's denominator.
        fine: (K,) int64, sorted distinct fine indices (low 16 key bits) present in the bin.
        counts: (K,) int64, reference voxels at each.
    """

    bin: int
    n_reference: int
    fine: np.ndarray
    counts: np.ndarray

    @classmethod
    def zeros(cls, bin: int) -> CaseBinCounts:
        empty = np.zeros(0, dtype=np.int64)
        return cls(int(bin), 0, empty, empty)

    def merge(self, other: CaseBinCounts) -> CaseBinCounts:
        """Counts of both voxel sets (chunks of one case), in one bin."""
        _check_same_bin(self.bin, other.bin)
        fine, counts = _merge_sparse((self.fine, other.fine), (self.counts, other.counts))
        return CaseBinCounts(self.bin, self.n_reference + other.n_reference, fine, _int_array(counts))


@dataclass(frozen=True)
class BinFnrStats:
    """Pass 2 over cases: within coarse bin `bin`, sum_i (reference voxels at each value) / R_i.

    Attributes:
        bin: the coarse bin.
        n_cases, n_reference: as in `FnrStats` (checked against it).
        fine: (K,) int64, sorted distinct fine indices present in the bin over all cases.
        counts: (K,) int64, reference voxels at each (their sum is `FnrStats.coarse_counts[bin]`).
        weights: (K,) float64, sum_i counts_i / R_i at each.
    """

    bin: int
    n_cases: int
    n_reference: int
    fine: np.ndarray
    counts: np.ndarray
    weights: np.ndarray

    @classmethod
    def zeros(cls, bin: int) -> BinFnrStats:
        empty = np.zeros(0, dtype=np.int64)
        return cls(int(bin), 0, 0, empty, empty, np.zeros(0))

    @classmethod
    def of_case(cls, counts: CaseBinCounts) -> BinFnrStats:
        """One whole case: its counts in the bin weighted by 1 / R."""
        case_counts = _int_array(counts.counts)
        weights = case_counts / max(counts.n_reference, 1)  # an empty reference has no counts
        return cls(counts.bin, 1, int(counts.n_reference), _int_array(counts.fine), case_counts, weights)

    def merge(self, other: BinFnrStats) -> BinFnrStats:
        """Statistics of both case sets, in one bin."""
        _check_same_bin(self.bin, other.bin)
        fine, counts, weights = _merge_sparse(
            (self.fine, other.fine), (self.counts, other.counts), (self.weights, other.weights)
        )
        return BinFnrStats(
            self.bin,
            self.n_cases + other.n_cases,
            self.n_reference + other.n_reference,
            fine,
            _int_array(counts),
            weights,
        )


def _check_same_bin(mine: int, theirs: int) -> None:
    if mine != theirs:
        raise ValueError(f"cannot merge counts of coarse bins {mine} and {theirs}")
