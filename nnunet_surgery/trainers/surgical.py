"""Trainers with gradient vector field surgery (the paper's Eq. 10) on their region loss."""

from __future__ import annotations

from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from torch import nn

from nnunet_surgery.losses import SoftTverskyLoss
from nnunet_surgery.trainers.base import LossRecipeTrainer
from nnunet_surgery.trainers.registry import REGISTRY, register


@register("surgical")
class SurgeryTrainer(LossRecipeTrainer):
    """nnU-Net's default recipe, CE + Dice (BCE + Dice for regions), with surgery on the Dice term.

    Identical to `nnUNetTrainer` (same weights 1/1, smooth 1e-5, batch dice from the plans, ignore label,
    deep supervision) except that the softmax/sigmoid feeding the Dice term has the surgical backward
    with decline exponent `surgery_exponent` (20, the paper's Table 3). The CE term keeps its own,
    already error-linear, logit gradient.
    """

    def build_output_loss(self) -> nn.Module:
        dice_kwargs = {
            **self.region_loss_kwargs(),
            "alpha": self.tversky_alpha,
            "surgery": True,
            "exponent": self.surgery_exponent,
        }
        if self.label_manager.has_regions:
            loss = DC_and_BCE_loss(
                {},
                dice_kwargs,
                use_ignore_label=self.label_manager.ignore_label is not None,
                dice_class=SoftTverskyLoss,
            )
        else:
            loss = DC_and_CE_loss(
                dice_kwargs,
                {},
                weight_ce=1,
                weight_dice=1,
                ignore_label=self.label_manager.ignore_label,
                dice_class=SoftTverskyLoss,
            )
        loss.dc = self.compiled(loss.dc)  # the region term, as nnU-Net compiles its own
        return loss


@register("surgical")
class SurgeryTrainerDice(LossRecipeTrainer):
    """Soft Dice loss alone with surgery (the paper's "Dice - Surgery")."""

    def build_output_loss(self) -> nn.Module:
        return self.tversky(alpha=0.5, surgery=True)


@register("surgical")
class SurgeryTrainerTversky(LossRecipeTrainer):
    """Tversky loss with surgery (the paper's "Tversky - Surgery"), alpha 0.3 (false positives), beta 0.7."""

    tversky_alpha = 0.3

    def build_output_loss(self) -> nn.Module:
        return self.tversky(alpha=self.tversky_alpha, surgery=True)


# the trainers registered above (their class statements are the one place their names are written)
__all__ = list(REGISTRY.names("surgical"))
