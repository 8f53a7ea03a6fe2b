"""Losses in nnU-Net's calling convention `(logits, target, loss_mask=None)`.

Surgical: `SoftTverskyLoss(surgery=True)` (Dice at alpha = 0.5), also as `dice_class` of nnU-Net's
`DC_and_CE_loss` / `DC_and_BCE_loss`. Baselines of the paper: `SoftTverskyLoss` (surgery off),
`DicePlusPlusLoss`, `MarginalL1ACELoss` (with Dice through `WeightedSumLoss`).
"""

from nnunet_surgery.losses._prepare import SURGICAL_COUNTERPARTS
from nnunet_surgery.losses.ace import MarginalL1ACELoss
from nnunet_surgery.losses.compound import IgnoreLabelLoss, WeightedSumLoss
from nnunet_surgery.losses.dice_plus_plus import DicePlusPlusLoss
from nnunet_surgery.losses.tversky import SoftTverskyLoss

__all__ = [
    "SURGICAL_COUNTERPARTS",
    "DicePlusPlusLoss",
    "IgnoreLabelLoss",
    "MarginalL1ACELoss",
    "SoftTverskyLoss",
    "WeightedSumLoss",
]
