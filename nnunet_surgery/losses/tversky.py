"""Soft Tversky / Dice loss with optional gradient vector field surgery, in nnU-Net's conventions."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnunet_surgery.losses._prepare import SURGICAL_COUNTERPARTS, RegionLoss
from nnunet_surgery.surgery import surgical_sigmoid, surgical_sigmoid_sums, validate_exponent
from nnunet_surgery.targets import as_channel_target, is_onehot

__all__ = ["SURGICAL_COUNTERPARTS", "SoftTverskyLoss", "onehot_dtype"]


def onehot_dtype(logits: torch.Tensor, accumulate: torch.dtype) -> torch.dtype:
    """The dtype of the loss's one-hot target: `accumulate` (float32) on CPU, where ATen's products `p * y` are
    faster without a bool operand; bool elsewhere (CUDA), where each kernel converts it in registers and the
    copy autograd saves for `p * y` is a quarter of the size (docs/losses.md#calling-convention)."""
    return accumulate if logits.device.type == "cpu" else torch.bool


class SoftTverskyLoss(RegionLoss):
    """Soft Tversky loss (Salehi et al. 2017), Dice at `alpha = 0.5`, with optional surgery (Eq. 10).

    Per image (or per batch with `batch_dice`) and channel,

        TI = (2 TP + smooth) / (2 TP + 2 alpha FP + 2 beta FN + smooth),     beta = 1 - alpha,
           = (2 TP + smooth) / (2 alpha sum(p) + 2 beta sum(y) + smooth),

    the Tversky index with numerator and denominator doubled, so that `alpha = 0.5` is exactly nnU-Net's
    `MemoryEfficientSoftDiceLoss` (Eq. 1), value and gradient, bit for bit. The loss is `-mean(TI)`, as in
    nnU-Net. With `surgery=True` the activation is replaced by its surgical twin (`surgical_softmax` for
    nnU-Net's softmax, `surgical_sigmoid` for sigmoid): same forward, error-linear backward (Eq. 9-10).

    Drop-in `dice_class` for nnU-Net's `DC_and_CE_loss` / `DC_and_BCE_loss`: pass the extra arguments in
    `soft_dice_kwargs`.

    Args:
        apply_nonlin: activation applied to the logits (nnU-Net's `softmax_helper_dim1` or `torch.sigmoid`);
            with `surgery=True` it must be one of `SURGICAL_COUNTERPARTS`.
        batch_dice: pool TP/FP/FN over the batch (and DDP ranks) instead of per image.
        do_bg: include channel 0 (set False for softmax outputs, as nnU-Net does).
        smooth: added to numerator and denominator.
        ddp: all-gather the pooled sums across ranks when `batch_dice` is set.
        alpha: weight of false positives; `beta = 1 - alpha` weighs false negatives.
        surgery: replace the activation's backward by the paper's vector field.
        exponent: the surgery's decline exponent `n` (None drops the decline terms).

    Shapes:
        logits `(b, c, *spatial)`; target a label map `(b, 1, *spatial)` or one-hot/regions `(b, c, *spatial)`;
        loss_mask `(b, 1, *spatial)`, 1 for voxels that count.
    """

    repr_args = ("alpha", "surgery", "exponent")

    def __init__(
        self,
        apply_nonlin: Callable | None = None,
        batch_dice: bool = False,
        do_bg: bool = True,
        smooth: float = 1.0,
        ddp: bool = True,
        alpha: float = 0.5,
        surgery: bool = False,
        exponent: float | None = 20,
    ) -> None:
        super().__init__(apply_nonlin, batch_dice, do_bg, smooth, ddp)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], but got {alpha}")
        if surgery and apply_nonlin not in SURGICAL_COUNTERPARTS:
            raise ValueError(
                f"surgery needs apply_nonlin to be nnU-Net's softmax_helper_dim1 or torch.sigmoid, "
                f"but got {apply_nonlin!r}"
            )
        self.alpha = alpha
        self.surgery = surgery
        self.exponent = validate_exponent(exponent)

    def _fuses_region_sums(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None) -> bool:
        """Whether `forward` takes `sum(p y)` and `sum(p)` from `surgical_sigmoid_sums` (same values and
        gradients, fewer passes: bench/loss.py): surgical sigmoid over all channels, no mask, eager."""
        return (
            self.surgery
            and SURGICAL_COUNTERPARTS[self.apply_nonlin] is surgical_sigmoid
            and self.do_bg
            and loss_mask is None
            and is_onehot(x, as_channel_target(x, y))
            and not torch.compiler.is_compiling()
        )

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        # nnU-Net accumulates in float32 whatever the input dtype (fp16 under autocast); float64 stays float64
        acc = torch.promote_types(x.dtype, torch.float32)
        axes = tuple(range(2, x.ndim))
        if self._fuses_region_sums(x, y, loss_mask):
            intersect, sum_pred, sum_gt = surgical_sigmoid_sums(x, y, self.exponent)
        else:
            x, y_onehot = self.prepare(
                x, y, onehot_dtype(x, acc), surgery=self.surgery, exponent=self.exponent
            )
            with torch.no_grad():
                sum_gt = (y_onehot if loss_mask is None else y_onehot * loss_mask).sum(axes, dtype=acc)
            intersect = (x * y_onehot if loss_mask is None else x * y_onehot * loss_mask).sum(axes, dtype=acc)
            sum_pred = (x if loss_mask is None else x * loss_mask).sum(axes, dtype=acc)

        intersect, sum_pred, sum_gt = self.reduce(intersect, sum_pred, sum_gt)
        beta = 1.0 - self.alpha
        # at alpha = 0.5 both factors are exactly 1.0: nnU-Net's `sum_gt + sum_pred + smooth`, bit for bit
        denominator = (2 * beta) * sum_gt + (2 * self.alpha) * sum_pred + float(self.smooth)
        tversky = (2 * intersect + self.smooth) / denominator.clamp_min(1e-8)
        return -tversky.mean()
