"""Dice++ (DSC++) loss of Yeung et al. 2023, a baseline of the paper (Appendix D and E)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnunet_surgery.losses._prepare import RegionLoss

__all__ = ["DicePlusPlusLoss"]


class DicePlusPlusLoss(RegionLoss):
    """Dice++ loss: false positives and false negatives raised to the focal power `gamma`.

    Per image (or per batch with `batch_dice`) and channel, with `p` and `y` clipped to `[eps, 1 - eps]`
    (docs/losses.md, Dice++, after Yeung et al. 2023 and the paper's Appendix E),

        TP = sum y p,   FN = sum (y (1 - p))**gamma,   FP = sum ((1 - y) p)**gamma,
        DSC++ = (2 TP + smooth) / (2 TP + FN + FP + smooth),     loss = mean(1 - DSC++).

    `gamma = 1` is the soft Dice loss (up to the clipping); the paper uses `gamma = 2` with the background
    channel included.

    Args:
        apply_nonlin: activation applied to the logits (nnU-Net's `softmax_helper_dim1` or `torch.sigmoid`).
        batch_dice: pool the sums over the batch (and DDP ranks) instead of per image.
        do_bg: include channel 0 (the reference includes it).
        smooth: added to numerator and denominator (the reference's epsilon, 1e-7).
        ddp: all-gather the pooled sums across ranks when `batch_dice` is set.
        gamma: focal exponent on FP and FN.
        clip_eps: `p` and `y` are clipped to `[clip_eps, 1 - clip_eps]`; 0 disables the clipping.

    Shapes:
        logits `(b, c, *spatial)`; target label map `(b, 1, *spatial)` or one-hot `(b, c, *spatial)`;
        loss_mask `(b, 1, *spatial)`.
    """

    repr_args = ("gamma", "clip_eps")

    def __init__(
        self,
        apply_nonlin: Callable | None = None,
        batch_dice: bool = False,
        do_bg: bool = True,
        smooth: float = 1e-7,
        ddp: bool = True,
        gamma: float = 2.0,
        clip_eps: float = 1e-7,
    ) -> None:
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        if gamma <= 0:
            raise ValueError(f"gamma must be positive, but got {gamma}")
        if not 0.0 <= clip_eps < 0.5:
            raise ValueError(f"clip_eps must be in [0, 0.5), but got {clip_eps}")
        self.gamma = gamma
        self.clip_eps = clip_eps

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        p, y_onehot = self.prepare(x, y)
        eps = self.clip_eps
        p = p.clamp(eps, 1 - eps)
        with torch.no_grad():
            y_onehot = y_onehot.to(p.dtype).clamp(eps, 1 - eps)
        mask = torch.ones_like(p[:, :1]) if loss_mask is None else loss_mask.to(p.dtype)
        axes = tuple(range(2, p.ndim))
        tp = (y_onehot * p * mask).sum(axes)
        fn = ((y_onehot * (1 - p)) ** self.gamma * mask).sum(axes)
        fp = (((1 - y_onehot) * p) ** self.gamma * mask).sum(axes)
        tp, fn, fp = self.reduce(tp, fn, fp)
        dsc = (2 * tp + self.smooth) / (2 * tp + fn + fp + self.smooth)
        return (1 - dsc).mean()
