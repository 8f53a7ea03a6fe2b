"""The preamble every region loss shares: activation (plain or surgical), one-hot target, background."""

from __future__ import annotations

from collections.abc import Callable

import torch
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.surgery import surgical_sigmoid, surgical_softmax
from nnunet_surgery.targets import as_channel_target, onehot

__all__ = ["SURGICAL_COUNTERPARTS", "scored_probabilities_and_target"]

#: nnU-Net's activations and their surgical twins (which also take the target and the exponent).
SURGICAL_COUNTERPARTS: dict[Callable, Callable] = {
    softmax_helper_dim1: surgical_softmax,
    torch.softmax: surgical_softmax,
    torch.sigmoid: surgical_sigmoid,
}


def scored_probabilities_and_target(
    x: torch.Tensor,
    y: torch.Tensor,
    apply_nonlin: Callable | None,
    do_bg: bool,
    onehot_dtype: torch.dtype,
    surgery: bool = False,
    exponent: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities and one-hot target of the channels a loss scores (all, or all but channel 0).

    Args:
        x: logits `(b, c, *spatial)`.
        y: label map `(b, 1, *spatial)` / `(b, *spatial)`, or one-hot / region target `(b, c, *spatial)`.
        apply_nonlin: activation (None: `x` already holds probabilities).
        do_bg: score channel 0 too.
        onehot_dtype: dtype of the encoding built from a label map (one-hot targets keep theirs).
        surgery: use the surgical twin of `apply_nonlin` (one of `SURGICAL_COUNTERPARTS`), Eq. 10.
        exponent: the surgery's decline exponent.

    Returns:
        `(p, y_onehot)`, both `(b, c or c - 1, *spatial)`; `y_onehot` carries no gradient.
    """
    y = as_channel_target(x, y)
    with torch.no_grad():
        y_onehot = onehot(x, y, dtype=onehot_dtype, first_channel=0 if do_bg else 1)
    if surgery:
        p = SURGICAL_COUNTERPARTS[apply_nonlin](x, y, exponent)
    else:
        p = x if apply_nonlin is None else apply_nonlin(x)
    return (p if do_bg else p[:, 1:]), y_onehot
