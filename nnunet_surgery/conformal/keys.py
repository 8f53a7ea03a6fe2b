"""Float32 probabilities as ordered integer keys, and the two-level split of the key range.

For float32 values x, y >= 0 (no NaN, +0 for zero), x < y exactly when the uint32 bit patterns satisfy
bits(x) < bits(y): the sign bit is 0, the exponent field sits above the mantissa field, and subnormals
(exponent field 0) come below the normal numbers. So every float32 in [0, 1] has a key in
[0, ONE_KEY] = [0, 0x3F800000], ordered like the values, and each key is one float32 value. The one other
float32 zero, -0.0 (bits 0x80000000), equals +0.0 as a probability; clearing the sign bit maps it to key 0.

The conformal threshold is searched over these keys in two levels (docs/conformal.md#exact-search): the
coarse bin of a key is its top 16 bits, `key >> COARSE_SHIFT` (sign, exponent and the first 7 mantissa
bits, so 128 bins per binade, N_COARSE bins for [0, 1]); the fine index is its low 16 bits. A histogram
over coarse bins locates the bin where the risk crosses its bound; a second pass counts the fine indices of
that one bin, which resolves every float32 value in it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "COARSE_SHIFT",
    "FINE_MASK",
    "N_COARSE",
    "ONE_KEY",
    "as_probabilities",
    "float32_at_least",
    "key_value",
    "order_keys",
]

#: Bits of float32 1.0: the largest key of a probability.
ONE_KEY = 0x3F800000
#: A key's coarse bin is `key >> COARSE_SHIFT`; its fine index the low COARSE_SHIFT bits.
COARSE_SHIFT = 16
FINE_MASK = (1 << COARSE_SHIFT) - 1
#: Coarse bins 0 .. ONE_KEY >> COARSE_SHIFT (the last one holds 1.0 only, among probabilities).
N_COARSE = (ONE_KEY >> COARSE_SHIFT) + 1
_SIGN_CLEAR = np.uint32(0x7FFFFFFF)


def as_probabilities(name: str, values: np.ndarray) -> np.ndarray:
    """`values` as float32 in [0, 1], checked: the form every comparison with a threshold uses.

    float32 input is returned as is (no copy); float16 converts exactly; float64 is rounded to the nearest
    float32, in fitting and in applying alike, so both see the same values.

    Args:
        name: how an error names the array.
        values: floating array of any shape.

    Raises:
        ValueError: a non-floating dtype, NaN, or a value outside [0, 1] (callers clip float rounding first).
    """
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"{name} must be a floating-point array, but got dtype {values.dtype}")
    values = values.astype(np.float32, copy=False)
    if values.size:
        low, high = float(values.min()), float(values.max())
        if not (low >= 0.0 and high <= 1.0):  # NaN fails both
            raise ValueError(f"{name} must lie in [0, 1] without NaN, but range from {low!r} to {high!r}")
    return values


def order_keys(probabilities: np.ndarray) -> np.ndarray:
    """(N,) uint32 keys of float32 probabilities in [0, 1] (from `as_probabilities`), ordered like them."""
    return probabilities.view(np.uint32) & _SIGN_CLEAR


def key_value(key: int) -> float:
    """The float32 value of a key in [0, ONE_KEY], as a (lossless) Python float."""
    if not 0 <= int(key) <= ONE_KEY:
        raise ValueError(f"key must lie in [0, {ONE_KEY:#x}], but got {key!r}")
    return float(np.array(int(key), dtype=np.uint32).view(np.float32))


def float32_at_least(values: float | np.ndarray) -> np.ndarray:
    """The smallest float32 >= each value (values in [0, 1]): {p >= t} = {p >= float32_at_least(t)} for
    float32 p, for any real t, so that a threshold given in decimal (0.3) keeps its exact meaning."""
    exact = np.asarray(values, dtype=np.float64)
    rounded = exact.astype(np.float32)
    low = rounded.astype(np.float64) < exact
    return np.where(low, np.nextafter(rounded, np.float32(np.inf)), rounded)
