"""Counting one chunk of one case (the update stage): (probabilities, reference mask) -> exact counts.

A case is streamed as chunks of flat arrays; the counts of its chunks merge (`CaseCounts.merge`), and the
whole case becomes one term of the sums over cases (`FnrStats.of_case`). `case_fnr_stats` and
`case_bin_stats` do both for a case given as an iterable of chunks. Only reference voxels are read.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from nnunet_surgery.conformal.keys import COARSE_SHIFT, FINE_MASK, N_COARSE, as_probabilities, order_keys
from nnunet_surgery.conformal.stats import GRID_KEYS, BinFnrStats, CaseBinCounts, CaseCounts, FnrStats

__all__ = ["Chunk", "case_bin_counts", "case_bin_stats", "case_counts", "case_fnr_stats", "reference_keys"]

#: (probability (N,), reference (N,) bool) of one label or region over N voxels of a case.
Chunk = tuple[np.ndarray, np.ndarray]


def reference_keys(probability: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """(R,) uint32 order keys (`keys.order_keys`) of the probabilities at the reference voxels.

    Args:
        probability: (N,) floating probabilities of the label (compared as float32, `as_probabilities`).
        reference: (N,) bool, the label's reference mask.

    Raises:
        ValueError: shapes differ, a non-bool reference, or reference probabilities outside [0, 1] / NaN.
    """
    probability, reference = np.asarray(probability), np.asarray(reference)
    if probability.ndim != 1 or probability.shape != reference.shape:
        raise ValueError(
            f"probability and reference must be 1-D of one shape, but got {probability.shape} and {reference.shape}"
        )
    if reference.dtype != bool:
        raise ValueError(f"reference must be a boolean mask, but got dtype {reference.dtype}")
    return order_keys(as_probabilities("probability", probability[reference]))


def case_counts(probability: np.ndarray, reference: np.ndarray) -> CaseCounts:
    """Pass 1 counts of one chunk: reference voxels per coarse key bin and below each grid threshold.

    Args: as `reference_keys`.
    """
    keys = reference_keys(probability, reference)
    coarse = np.bincount(keys >> COARSE_SHIFT, minlength=N_COARSE)
    # at[v] = #{k : GRID_KEYS[k] <= key_v}; voxel v lies below grid threshold k exactly when k >= at[v]
    at = np.searchsorted(GRID_KEYS, keys, side="right")
    below = np.cumsum(np.bincount(at, minlength=GRID_KEYS.size + 1))[: GRID_KEYS.size]
    return CaseCounts(int(keys.size), coarse.astype(np.int64), below.astype(np.int64))


def case_bin_counts(probability: np.ndarray, reference: np.ndarray, bin: int) -> CaseBinCounts:
    """Pass 2 counts of one chunk: its reference voxels inside coarse bin `bin`, per distinct value.

    Args:
        probability, reference: as `reference_keys`.
        bin: the coarse bin to resolve, in [0, N_COARSE).
    """
    if isinstance(bin, bool) or not isinstance(bin, (int, np.integer)) or not 0 <= bin < N_COARSE:
        raise ValueError(f"bin must be an integer in [0, {N_COARSE}), but got {bin!r}")
    keys = reference_keys(probability, reference)
    inside = keys[(keys >> COARSE_SHIFT) == bin]
    fine, counts = np.unique(inside & np.uint32(FINE_MASK), return_counts=True)
    return CaseBinCounts(int(bin), int(keys.size), fine.astype(np.int64), counts.astype(np.int64))


def case_fnr_stats(chunks: Iterable[Chunk]) -> FnrStats:
    """Pass 1 statistics of one whole case, from its chunks (`case_counts`, merged, then weighted)."""
    total = CaseCounts.zeros()
    for probability, reference in chunks:
        total = total.merge(case_counts(probability, reference))
    return FnrStats.of_case(total)


def case_bin_stats(chunks: Iterable[Chunk], bin: int) -> BinFnrStats:
    """Pass 2 statistics of one whole case in coarse bin `bin`, from its chunks (`case_bin_counts`)."""
    total = CaseBinCounts.zeros(bin)
    for probability, reference in chunks:
        total = total.merge(case_bin_counts(probability, reference, bin))
    return BinFnrStats.of_case(total)
