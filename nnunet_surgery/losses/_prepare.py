"""What every loss here shares: nnU-Net's constructor arguments and the preamble of `forward`.

The preamble applies the activation (plain or surgical), one-hot encodes the target and drops the background
channel unless `do_bg` (docs/losses.md, "Calling convention"). `ChannelLoss` holds it for any per-channel
loss; `RegionLoss` adds the arguments nnU-Net passes to a `dice_class` and the pooling of region sums.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn

from nnunet_surgery.losses._reduce import reduce_region_sums
from nnunet_surgery.surgery import surgical_sigmoid, surgical_softmax
from nnunet_surgery.targets import as_channel_target, as_float, is_onehot, onehot

__all__ = ["SURGICAL_COUNTERPARTS", "ChannelLoss", "RegionLoss"]

#: nnU-Net's activations and their surgical twins (which also take the target and the exponent).
SURGICAL_COUNTERPARTS: dict[Callable, Callable] = {
    softmax_helper_dim1: surgical_softmax,
    torch.softmax: surgical_softmax,
    torch.sigmoid: surgical_sigmoid,
}


class ChannelLoss(nn.Module):
    """Base of a loss scored per channel: stores `apply_nonlin` and `do_bg`, and runs the shared preamble.

    Subclasses keep their own signature and defaults, pass these arguments on, and list their own arguments
    in `repr_args` for `extra_repr` (the shared ones follow them).

    Args:
        apply_nonlin: activation applied to the logits (None: the input already holds probabilities).
        do_bg: score channel 0 too.
    """

    #: the subclass's own attributes shown by `extra_repr`, before the shared ones
    repr_args: ClassVar[tuple[str, ...]] = ()
    #: the shared attributes shown by `extra_repr`
    shared_repr_args: ClassVar[tuple[str, ...]] = ("do_bg",)

    def __init__(self, apply_nonlin: Callable | None, do_bg: bool) -> None:
        super().__init__()
        self.apply_nonlin = apply_nonlin
        self.do_bg = do_bg

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in self.repr_args + self.shared_repr_args)

    def prepare(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        onehot_dtype: torch.dtype = torch.bool,
        surgery: bool = False,
        exponent: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and one-hot target of the channels the loss scores (all, or all but channel 0).

        Args:
            x: logits `(b, c, *spatial)`.
            y: label map `(b, 1, *spatial)` / `(b, *spatial)`, or one-hot / region target `(b, c, *spatial)`.
            onehot_dtype: dtype of the encoding built from a label map; one-hot / region targets are
                converted to it if it is a floating dtype (`as_float`), else keep theirs.
            surgery: use the surgical twin of `apply_nonlin` (one of `SURGICAL_COUNTERPARTS`), Eq. 10.
            exponent: the surgery's decline exponent.

        Returns:
            `(p, y_onehot)`, both `(b, c or c - 1, *spatial)`; `y_onehot` carries no gradient.
        """
        y = as_channel_target(x, y)
        with torch.no_grad():
            if onehot_dtype.is_floating_point and is_onehot(x, y):
                y = as_float(y, onehot_dtype)  # once, for the surgery and the loss
            y_onehot = onehot(x, y, dtype=onehot_dtype, first_channel=0 if self.do_bg else 1)
        if surgery:
            p = SURGICAL_COUNTERPARTS[self.apply_nonlin](x, y, exponent)
        else:
            p = x if self.apply_nonlin is None else self.apply_nonlin(x)
        return (p if self.do_bg else p[:, 1:]), y_onehot


class RegionLoss(ChannelLoss):
    """Base of a loss built from per-(image, channel) region sums, with nnU-Net's `dice_class` arguments.

    nnU-Net's `DC_and_CE_loss` / `DC_and_BCE_loss` construct their `dice_class` with the keywords
    `apply_nonlin, batch_dice, do_bg, smooth, ddp`; subclasses take them (with their own defaults) and pass
    them on.

    Args:
        apply_nonlin: activation applied to the logits (nnU-Net's `softmax_helper_dim1` or `torch.sigmoid`).
        batch_dice: pool the sums over the batch (and DDP ranks) instead of per image.
        do_bg: score channel 0 too.
        smooth: the smoothing term of the loss's ratio.
        ddp: all-gather the pooled sums across ranks when `batch_dice` is set.
    """

    shared_repr_args: ClassVar[tuple[str, ...]] = ("batch_dice", "do_bg", "smooth")

    def __init__(
        self, apply_nonlin: Callable | None, batch_dice: bool, do_bg: bool, smooth: float, ddp: bool
    ) -> None:
        super().__init__(apply_nonlin, do_bg)
        self.batch_dice = batch_dice
        self.smooth = smooth
        self.ddp = ddp

    def reduce(self, *sums: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Pool `(b, c)` sums to `(c,)` over the batch and DDP ranks with `batch_dice` (`reduce_region_sums`).

        Args:
            *sums: `(b, c)` tensors.

        Returns:
            The sums, `(b, c)` each, or `(c,)` each with `batch_dice`.
        """
        return reduce_region_sums(sums, self.batch_dice, self.ddp)
