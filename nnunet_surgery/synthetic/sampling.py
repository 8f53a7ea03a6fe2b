"""Label sampling with exact voxel-wise marginals and spatially coherent noise.

One uniform field U per case is thresholded against the nested cumulative maps q_1 >= ... >= q_K:

    label(x) = #{k : U(x) < q_k(x)}

so label(x) >= k exactly when U(x) < q_k(x). If U(x) is uniform on (0, 1) at every voxel then
P(label(x) >= k) = q_k(x) and P(label(x) = k) = q_k(x) - q_{k+1}(x) exactly, whatever the
correlation between voxels. U is made spatially coherent, so that label borders look like ragged
annotations rather than salt and pepper: Z = white Gaussian noise smoothed with a Gaussian kernel
(periodic boundary, so every voxel sees the same kernel), divided by its exact standard deviation
sqrt(sum of the squared kernel weights), is N(0, 1) at every voxel, and U = Phi(Z) is uniform.

Pooled label counts are then sums of correlated indicators. By Gebelein's theorem the correlation of
any functions of two jointly Gaussian values is at most |corr(Z(x), Z(y))|, so the variance of a sum
of indicators is at most `variance_inflation` times the sum of their binomial variances q(1 - q); the
tests use that bound.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtr

__all__ = [
    "LABEL_NOISE_SIGMA",
    "coherent_uniform",
    "sample_labels",
    "smoothing_kernel",
    "variance_inflation",
]

# Correlation length (Gaussian sigma, voxels) of the label noise.
LABEL_NOISE_SIGMA = 1.2

_MODE = "grid-wrap"


def smoothing_kernel(shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """The periodic smoothing kernel on `shape`: the filter's response to a unit impulse at the origin."""
    impulse = np.zeros(shape, dtype=np.float64)
    impulse[(0,) * len(shape)] = 1.0
    return gaussian_filter(impulse, sigma, mode=_MODE)


@functools.lru_cache(maxsize=16)
def _field_sd(shape: tuple[int, ...], sigma: float) -> float:
    """Standard deviation of the smoothed unit white noise at every voxel: sqrt(sum k^2)."""
    return float(np.sqrt(np.sum(smoothing_kernel(shape, sigma) ** 2)))


def variance_inflation(shape: tuple[int, ...], sigma: float = LABEL_NOISE_SIGMA) -> float:
    """Sum over all voxels y of corr(Z(x), Z(y)) = (sum k)^2 / sum k^2 for the smoothing kernel k.

    It bounds the factor by which spatial coherence inflates the variance of a pooled label count
    over the independent (binomial) value.
    """
    kernel = smoothing_kernel(shape, sigma)
    return float(kernel.sum() ** 2 / np.sum(kernel**2))


def coherent_uniform(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float = LABEL_NOISE_SIGMA
) -> np.ndarray:
    """A spatially smooth random field, exactly uniform on (0, 1) at every voxel.

    Args:
        rng: random generator (consumed).
        shape: spatial shape.
        sigma: correlation length in voxels (Gaussian sigma); 0 gives independent voxels.

    Returns:
        float64 array of `shape`.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, but got {sigma}")
    white = rng.standard_normal(shape)
    if sigma == 0:
        return ndtr(white)
    smooth = gaussian_filter(white, sigma, mode=_MODE)
    return ndtr(smooth / _field_sd(tuple(int(n) for n in shape), float(sigma)))


def sample_labels(cumulative: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """label = #{k : U < q_k}; P(label >= k) = q_k where U is uniform.

    Args:
        cumulative: nested maps q of shape (K, *shape).
        uniform: U of shape `cumulative.shape[1:]`.

    Returns:
        uint8 label map of shape `uniform.shape`, values 0..K.
    """
    if cumulative.shape[1:] != uniform.shape:
        raise ValueError(
            f"uniform must have shape {cumulative.shape[1:]} (cumulative without its class axis), "
            f"but got {uniform.shape}"
        )
    return np.sum(uniform[None] < cumulative, axis=0, dtype=np.uint8)
