"""Equal-width confidence bins on [0, 1].

Convention (the one of `numpy.histogram` and netcal): `n_bins` bins of width 1 / n_bins, bin k covers
[k / n_bins, (k + 1) / n_bins) and the last bin is closed, [(n_bins - 1) / n_bins, 1]. So p = 0 falls in
bin 0 and p = 1 in bin n_bins - 1. torchmetrics agrees everywhere except that it puts p = 1.0 into an
extra bin of its own; MONAI and ACE-DLIRIS use (lo, hi] instead.

The index is floor(p * n_bins) in exact arithmetic, so the edges are the real numbers k / n_bins, with no
rounding at any edge. For float64 input the product is taken in float64 (exact for float32-valued p). For
float32 input (nnU-Net's dtype) it is taken in float32, which is cheaper: rounding is monotone and every
k <= n_bins is a float32, so fl(p * n_bins) >= k whenever p * n_bins >= k, and the float32 floor is
either exact or one too high; it is one too high only when fl(p * n_bins) is an integer k with p < k / n_bins.
Those products are corrected by comparing p with the exact lower edge of bin k (`lower_edges`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["BIN_CONVENTION", "MAX_BINS", "bin_edges", "bin_indices", "check_n_bins", "lower_edges"]

#: The convention above in one line, as calibration.json records it.
BIN_CONVENTION = (
    "equal-width bins [k/B, (k+1)/B), the last one closed [(B-1)/B, 1]: p = 0 in bin 0, p = 1 in bin B-1 "
    "(numpy.histogram / netcal); bin index floor(p*B), exact at every edge for float32 p (nnU-Net's dtype), "
    "the floor of the float64 product for float64 p"
)

# floor(p * n_bins) is exact for float32 p as long as n_bins needs at most 53 - 24 = 29 bits, and every
# k <= n_bins is a float32 (24 bits) for the float32 path.
MAX_BINS = 2**20


def check_n_bins(n_bins: int) -> int:
    """Return `n_bins` if it is an integer in [1, MAX_BINS], else raise ValueError."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or not 1 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins must be an integer in [1, {MAX_BINS}], but got {n_bins!r}")
    return int(n_bins)


def bin_edges(n_bins: int) -> np.ndarray:
    """The n_bins + 1 bin edges 0, 1 / n_bins, ..., 1 (float64)."""
    return np.linspace(0.0, 1.0, check_n_bins(n_bins) + 1)


def lower_edges(n_bins: int) -> np.ndarray:
    """Exact float32 lower edges: entry k is the smallest float32 >= k / n_bins, for k = 0 .. n_bins.

    A float32 p lies in bin k or above iff p >= entry k. Entry 0 is -inf and entry n_bins is +inf, so that
    p <= 0 stays in bin 0 and p >= 1 moves down into bin n_bins - 1 (see `bin_indices`).
    The array is computed once per `n_bins` and shared, read-only (every chunk of a case asks for it).
    """
    return _lower_edges(check_n_bins(n_bins))


@lru_cache(maxsize=8)
def _lower_edges(n_bins: int) -> np.ndarray:
    k = np.arange(n_bins + 1, dtype=np.float64)
    edges = (k / n_bins).astype(np.float32)
    # f * n_bins is exact in float64 (24 + 20 bits), so f >= k / n_bins is decided exactly.
    too_low = edges.astype(np.float64) * n_bins < k
    edges[too_low] = np.nextafter(edges[too_low], np.float32(np.inf))
    below = np.nextafter(edges, np.float32(-np.inf))
    too_high = below.astype(np.float64) * n_bins >= k
    edges[too_high] = below[too_high]
    edges[0], edges[-1] = -np.inf, np.inf
    edges.flags.writeable = False
    return edges


def _float64_indices(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    scaled = np.asarray(confidence, dtype=np.float64) * n_bins
    index = np.floor(scaled, out=scaled).astype(np.intp)
    np.clip(index, 0, n_bins - 1, out=index)
    return index


def _float32_indices(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    scaled = np.multiply(confidence, np.float32(n_bins), dtype=np.float32)
    np.clip(scaled, 0, n_bins, out=scaled)  # also puts p outside [0, 1] into the first / last bin
    index = scaled.astype(np.min_scalar_type(n_bins))
    suspects = np.flatnonzero(scaled == index)  # products on an integer: maybe one too high (rare)
    if suspects.size:
        upper = index[suspects]
        upper -= (confidence.ravel()[suspects] < lower_edges(n_bins)[upper]).astype(upper.dtype)
        index[suspects] = upper
    np.minimum(index, n_bins - 1, out=index)
    return index


def bin_indices(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence: floor(p * n_bins), with p = 1 in the last bin.

    Args:
        confidence: probabilities in [0, 1], any shape (validate them first; values outside are clipped
            into the first or last bin).
        n_bins: number of equal-width bins.

    Returns:
        Unsigned or `np.intp` integer array of the same shape with values in [0, n_bins - 1] (float32
        input: the smallest unsigned dtype that holds n_bins).
    """
    n_bins = check_n_bins(n_bins)
    confidence = np.asarray(confidence)
    if confidence.dtype == np.float32:
        return _float32_indices(confidence, n_bins)
    return _float64_indices(confidence, n_bins)
