"""Logits recovered from saved probabilities, and probabilities from scaled logits.

nnU-Net saves probabilities, not logits. A softmax is unchanged by adding a constant to every logit of a
voxel, so its log-probabilities `log p` are logits (the ones whose log-sum-exp is 0); a sigmoid channel's
logit is `logit(p) = log p - log(1 - p)`. Both are exact while `p` is representable; where it is not, the
value is saturated and clamped (docs/recalibration.md#saturated-probabilities):

* `p == 0` means the true probability was below the smallest normal number of the array's dtype
  (float32: 1.2e-38), so `log p` is clamped to `log(tiny)` (float32: -87.3), an upper bound of the truth;
* `p == 1` in a sigmoid channel means `1 - p` was below half an ulp of 1, so `p` is clamped to the largest
  number below 1 (float32: `1 - 2**-24`, logit 16.6).

A clamped voxel keeps its sign and its rank, so argmax and the 0.5 threshold do not change; its recovered
logit is the least extreme value consistent with what was saved.
"""

from __future__ import annotations

import numpy as np

__all__ = ["logits_from_probabilities", "probabilities_from_logits", "saturation_bounds"]


def saturation_bounds(dtype: np.dtype) -> tuple[float, float]:
    """Smallest and largest probability that is taken at face value for arrays of `dtype`.

    Returns:
        `(tiny, 1 - eps / 2)` of the dtype: its smallest normal number and the largest number below 1.
    """
    info = np.finfo(dtype)
    return float(info.tiny), 1.0 - float(info.eps) / 2


def logits_from_probabilities(probabilities: np.ndarray, *, softmax: bool) -> np.ndarray:
    """Float64 logits of `(C, N)` probabilities: `log p` (softmax) or `logit(p)` (sigmoid), clamped.

    Args:
        probabilities: `(C, N)` probabilities in [0, 1], float16/32/64.
        softmax: whether the channels are a softmax (else independent sigmoid regions).

    Returns:
        `(C, N)` float64 logits, all finite.
    """
    low, high = saturation_bounds(probabilities.dtype)
    if softmax:
        return np.log(np.clip(probabilities, low, 1.0, dtype=np.float64))
    p = np.clip(probabilities, low, high, dtype=np.float64)
    return np.log(p) - np.log1p(-p)


def probabilities_from_logits(logits: np.ndarray, *, softmax: bool) -> np.ndarray:
    """Softmax over axis 0 (stable: the maximum is subtracted) or element-wise sigmoid of `(C, N)` logits.

    Returns:
        `(C, N)` float64 probabilities.
    """
    if softmax:
        shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
        return shifted / shifted.sum(axis=0, keepdims=True)
    return np.exp(-np.logaddexp(0.0, -logits))
