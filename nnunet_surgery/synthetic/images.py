"""Image model: the image carries p* (through the lesion contrast), never the sampled label.

    image(x) = SCALE * (B(x) * (T(x) + sum_k CONTRAST[k] * q_k(x)) + NOISE_SD * eps(x))

T is the tissue: BACKGROUND outside the organ, ORGAN inside (soft organ border) plus a faint smooth
texture; q_k are the case's cumulative true probabilities (`probability.cumulative_probabilities`);
B = exp(a random polynomial of degree 2) is an MR-like multiplicative bias field (typically ranging
0.85-1.2 over the image); eps is white Gaussian noise. The image is drawn from its own random stream, independent of the
label noise, so given p* it says nothing more about the label. A faint lesion (p* about 0.5) adds half
the contrast of a certain one (CONTRAST[k] * q_k): its intensity range is where the label is uncertain.
When the organ is itself a label (`CaseParameters.labelled_organ`) its p* is the soft organ O(x) that
T is built from, so the tissue term carries it, and q_k are the lesion levels (labels 2, 3, ...).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.ndimage import gaussian_filter

from nnunet_surgery.synthetic.probability import CaseParameters, voxel_coordinates

__all__ = [
    "BACKGROUND",
    "BIAS_SD",
    "CONTRAST",
    "NOISE_SD",
    "ORGAN",
    "SCALE",
    "TEXTURE_SD",
    "render_image",
]

BACKGROUND = 0.1
ORGAN = 1.0
# Added intensity at q_k = 1 for level k = 1, 2, ... (the last value repeats for deeper levels).
CONTRAST = (1.0, 0.7)
NOISE_SD = 0.25
TEXTURE_SD = 0.08
TEXTURE_SIGMA = 4.0
BIAS_SD = 0.08
SCALE = 100.0


def _bias_field(
    rng: np.random.Generator, coords: tuple[np.ndarray, ...], shape: tuple[int, ...]
) -> np.ndarray:
    d = len(shape)
    centred = [(coords[i] - (shape[i] - 1) / 2) / (shape[i] / 2) for i in range(d)]
    log_bias = np.zeros(shape, dtype=np.float64)
    for degree in (1, 2):
        for axes in itertools.combinations_with_replacement(range(d), degree):
            term = np.ones(shape, dtype=np.float64)
            for axis in axes:
                term = term * centred[axis]
            log_bias += rng.normal(0.0, BIAS_SD) * term
    return np.exp(log_bias)


def render_image(
    params: CaseParameters,
    cumulative: np.ndarray,
    rng: np.random.Generator,
    coords: tuple[np.ndarray, ...] | None = None,
) -> np.ndarray:
    """Render the case's image from its parameters and its cumulative true probabilities.

    Args:
        params: the case.
        cumulative: the lesion levels' q, shape (levels, *params.shape).
        rng: the image's random generator (consumed), independent of the label noise.
        coords: `voxel_coordinates(params.shape, params.spacing)`, if already at hand.

    Returns:
        float32 image of shape `params.shape`.
    """
    shape = params.shape
    if coords is None:
        coords = voxel_coordinates(shape, params.spacing)
    organ = params.organ.evaluate(coords)
    texture = gaussian_filter(rng.standard_normal(shape), TEXTURE_SIGMA, mode="reflect")
    texture *= TEXTURE_SD / max(float(texture.std()), 1e-12)
    tissue = BACKGROUND + (ORGAN - BACKGROUND + texture) * organ
    signal = tissue.copy()
    for k in range(cumulative.shape[0]):
        signal += CONTRAST[min(k, len(CONTRAST) - 1)] * cumulative[k]
    bias = _bias_field(rng, voxel_coordinates(shape), shape)  # over the image's index extent
    noise = NOISE_SD * rng.standard_normal(shape)
    return (SCALE * (bias * signal + noise)).astype(np.float32)
