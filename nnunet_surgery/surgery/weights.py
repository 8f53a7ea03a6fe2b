"""The surgery's factors, each formula once: the error weight of Eq. 10 and the softmax rescale.

    w(e) = 0.25 * e * (1 - e**n) * (1 - (1 - e)**n),        e = |y - p|,                      (Eq. 10)

replaces the activation's derivative `p(1 - p)`; `n` is the decline exponent (`exponent=None` drops both
decline factors: `w = 0.25 * e`). For K softmax channels the plain softmax gradient is rescaled per voxel
by `s = w(e) / (p_y e)`, `e = 1 - p_y` (docs/surgery.md#multi-class-rescale).

Powers are computed in place as `exp(n log x)` on `x` clamped just above where `x**n` underflows (no
result changes), so the factors are finite for probabilities of exactly 0 or 1 and cost a few multiplies
per voxel (docs/surgery.md#numerics). These are the eager ATen forms; `fused.py` evaluates the same
formulas inside its CUDA kernels.
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "P_Y_MIN",
    "decline_floor",
    "decline_sum_is_exact",
    "error_weight",
    "error_weight_",
    "softmax_rescale",
    "validate_exponent",
]

#: Clamp of the true-class probability in `softmax_rescale` for K > 2 channels and `exponent=None`.
P_Y_MIN = 1e-2


def validate_exponent(exponent: float | None) -> float | None:
    """Check a decline exponent: None or a finite positive number (returned as float).

    Raises:
        ValueError: naming `exponent` and the value it got.
    """
    if exponent is None:
        return None
    if (
        isinstance(exponent, bool)
        or not isinstance(exponent, numbers.Real)
        or not math.isfinite(exponent)
        or not exponent > 0
    ):
        raise ValueError(f"exponent must be None or a finite positive number, but got {exponent!r}")
    return float(exponent)


def decline_floor(exponent: float, dtype: torch.dtype) -> float:
    """`(eps / 8)**(1/n)` of `dtype`: below it `x**n - 1` rounds to -1 exactly, so clamping `x` there changes
    no result and keeps subnormal intermediates away (subnormal arithmetic is about 5x slower on x86)."""
    return (torch.finfo(dtype).eps / 8) ** (1.0 / exponent)


def decline_sum_is_exact(exponent: float | None, dtype: torch.dtype) -> bool:
    """Whether `(1 - a)(1 - b)` may be evaluated as `1 - a - b` (`a = e**n`, `b = (1 - e)**n`, `e` in [0, 1]).

    The two differ by `ab`, at most `4**(1 - n) / (1 - 2**-n)` times the product for `n >= 1`
    (docs/surgery.md#numerics): True where that is below `eps / 128` of `dtype`, far below the rounding
    of the product itself. float32: from `n = 17` on (the paper's 20); float64: from `n = 31` on.
    """
    if exponent is None or exponent < 1:
        return False
    return 4.0 ** (1 - exponent) / (1 - 2.0**-exponent) <= torch.finfo(dtype).eps / 128


def pow_minus_one_(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """`x**n - 1` for `x` in [0, 1], in place, as `exp(n log x) - 1` on `x` clamped at `decline_floor`.

    `log`/`exp` cost about one multiply each on CPU; `pow`, `expm1` and `log1p` three to eight.
    """
    return x.clamp_min_(decline_floor(exponent, x.dtype)).log_().mul_(exponent).exp_().sub_(1)


def error_weight_(error: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """`error_weight`, computed in the buffer of `error` (consumed) plus one more of its size."""
    if exponent is None:
        return error.mul_(0.25)
    head = pow_minus_one_(error.clone(), exponent).mul_(error)  # (e**n - 1) e
    tail = pow_minus_one_(error.neg_().add_(1), exponent)  # (1 - e)**n - 1, in error's buffer
    return head.mul_(tail).mul_(0.25)  # the two factors are <= 0: their product is (1 - e**n)(1 - (1-e)**n)


def error_weight(error: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """The error-linear factor that replaces `p(1 - p)` (Eq. 10, Appendix C's `error_weight`).

    Args:
        error: `e = |y - p|` in `[0, 1]`, any shape (not modified).
        exponent: decline exponent `n`; `None` drops the decline factors.

    Returns:
        `0.25 * e * (1 - e**n) * (1 - (1 - e)**n)`, or `0.25 * e` for `exponent=None`; same shape.
    """
    return error_weight_(error.clone(), exponent)


def softmax_rescale(p_y: torch.Tensor, exponent: float | None) -> torch.Tensor:
    """Per-voxel rescale `s` of the plain softmax gradient for K >= 2 channels.

    `s = error_weight(e) / (p_y * e)` with `e = 1 - p_y`, i.e. `0.25 (1 - e**n)(1 - p_y**n) / p_y`,
    evaluated without dividing by `e`. `(1 - e**n) / p_y = -expm1(n log1p(-p_y)) / p_y` is exact for
    small `p_y`; clamping `p_y` at the smallest normal number gives its limit `n` at `p_y = 0`.
    Derivation and properties: docs/surgery.md#multi-class-rescale.

    Args:
        p_y: probability of the true class, `(b, 1, *spatial)` (not modified).
        exponent: decline exponent `n`; `None` gives `0.25 / max(p_y, P_Y_MIN)`.

    Returns:
        `s`, same shape as `p_y`, finite and in `[0, 0.25 n]` (or `[0, 0.25 / P_Y_MIN]`).
    """
    if exponent is None:
        return p_y.clamp_min(P_Y_MIN).reciprocal_().mul_(0.25)
    p = p_y.clamp_min(torch.finfo(p_y.dtype).tiny)
    head = torch.log1p(p.neg()).mul_(exponent).expm1_().div_(p)  # (e**n - 1) / p_y
    return head.mul_(pow_minus_one_(p, exponent)).mul_(0.25)  # times (p_y**n - 1), both <= 0
