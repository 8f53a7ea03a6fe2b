"""Chunks of voxels: a `(C, N)` probability array is scored, fitted or transformed a slice of voxels at a
time, so that temporaries stay small whatever the case's size."""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["CHUNK_ELEMENTS", "voxel_chunks"]

# values (channels x voxels) scored at once: float64 temporaries of a few MB stay near the cache, which
# scores a 2 x 160^3 case in 0.70x the time of 2^22-value chunks; smaller chunks lose more to the fixed
# cost of each chunk's 2^16-bin fine histogram (2^18: 1.1x, 2^16: 1.9x)
CHUNK_ELEMENTS = 1 << 20


def voxel_chunks(n_voxels: int, n_channels: int, elements: int = CHUNK_ELEMENTS) -> Iterator[slice]:
    """Consecutive slices covering `n_voxels` voxel positions of a `(n_channels, n_voxels)` array, each of
    about `elements` values (at least 4096 voxels), so that per-chunk temporaries stay small."""
    step = max(4096, elements // max(n_channels, 1))
    for start in range(0, n_voxels, step):
        yield slice(start, min(start + step, n_voxels))
