"""Equal-width confidence bins on [0, 1].

Convention (the one of `numpy.histogram` and netcal): `n_bins` bins of width 1 / n_bins, bin k covers
[k / n_bins, (k + 1) / n_bins) and the last bin is closed, [(n_bins - 1) / n_bins, 1]. So p = 0 falls in
bin 0 and p = 1 in bin n_bins - 1. torchmetrics agrees everywhere except that it puts p = 1.0 into an
extra bin of its own; MONAI and ACE-DLIRIS use (lo, hi] instead.

The index is computed as floor(p * n_bins) in float64. For float32 probabilities (nnU-Net's dtype) that
product is exact, so the edges are the real numbers k / n_bins, with no rounding at any edge.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_BINS", "bin_edges", "bin_indices", "check_n_bins"]

# floor(p * n_bins) is exact for float32 p as long as n_bins needs at most 53 - 24 = 29 bits.
MAX_BINS = 2**20


def check_n_bins(n_bins: int) -> int:
    """Return `n_bins` if it is an integer in [1, MAX_BINS], else raise ValueError."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 1 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins must be an integer in [1, {MAX_BINS}], but got {n_bins!r}")
    return int(n_bins)


def bin_edges(n_bins: int) -> np.ndarray:
    """The n_bins + 1 bin edges 0, 1 / n_bins, ..., 1 (float64)."""
    return np.linspace(0.0, 1.0, check_n_bins(n_bins) + 1)


def bin_indices(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: floor(p * n_bins), with p = 1 in the last bin.

    Args:
        confidence: probabilities in [0, 1], any shape (validate them first; values outside are clipped
            into the first or last bin).
        n_bins: number of equal-width bins.

    Returns:
        Integer array (`np.intp`) of the same shape with values in [0, n_bins - 1].
    """
    n_bins = check_n_bins(n_bins)
    scaled = np.asarray(confidence, dtype=np.float64) * n_bins
    index = np.floor(scaled, out=scaled).astype(np.intp)
    np.clip(index, 0, n_bins - 1, out=index)
    return index
