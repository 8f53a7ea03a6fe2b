"""The paper's baseline losses as nnU-Net trainers (nnU-Net's own `nnUNetTrainer` is CE + Dice)."""

from __future__ import annotations

from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from torch import nn

from nnunet_surgery.losses import DicePlusPlusLoss, MarginalL1ACELoss, SoftTverskyLoss, WeightedSumLoss
from nnunet_surgery.trainers.base import LossRecipeTrainer
from nnunet_surgery.trainers.registry import REGISTRY, register


@register("baseline")
class BaselineTrainerDice(LossRecipeTrainer):
    """Soft Dice loss alone (nnU-Net's Dice settings), no surgery."""

    def build_output_loss(self) -> nn.Module:
        return self.tversky(alpha=0.5, surgery=False)


@register("baseline")
class BaselineTrainerTversky(LossRecipeTrainer):
    """Tversky loss, alpha 0.3 (false positives), beta 0.7, no surgery: the twin of `SurgeryTrainerTversky`."""

    tversky_alpha = 0.3

    def build_output_loss(self) -> nn.Module:
        return self.tversky(alpha=self.tversky_alpha, surgery=False)


@register("baseline")
class BaselineTrainerDicePlusPlus(LossRecipeTrainer):
    """Dice++ (Yeung et al. 2023), gamma 2, per image, background included (definition: docs/losses.md)."""

    dice_plus_plus_gamma: float = 2.0

    def build_output_loss(self) -> nn.Module:
        return self.with_ignore_label(
            self.compiled(
                DicePlusPlusLoss(
                    apply_nonlin=self.activation,
                    batch_dice=False,
                    do_bg=True,
                    ddp=self.is_ddp,
                    gamma=self.dice_plus_plus_gamma,
                )
            )
        )


@register("baseline")
class BaselineTrainerDiceML1ACE(LossRecipeTrainer):
    """0.5 * soft Dice + 0.5 * mL1-ACE with 20 bins (Barfoot et al. 2024; the paper's Appendix D; docs/losses.md).

    Both terms are compiled: mL1-ACE's hard binning (`torch.bucketize`) and bin sums (`scatter_add`) trace
    into one graph and compile with inductor, with eager's loss and gradient.
    """

    ace_bins: int = 20
    ace_weight: float = 0.5

    def build_output_loss(self) -> nn.Module:
        dice = self.compiled(
            SoftTverskyLoss(apply_nonlin=self.activation, alpha=0.5, **self.region_loss_kwargs())
        )
        ace = self.compiled(
            MarginalL1ACELoss(apply_nonlin=self.activation, num_bins=self.ace_bins, do_bg=True)
        )
        return self.with_ignore_label(WeightedSumLoss([(1 - self.ace_weight, dice), (self.ace_weight, ace)]))


@register("baseline")
class BaselineTrainerCE(LossRecipeTrainer):
    """Cross-entropy alone (BCE for region-based datasets): nnU-Net's compound loss with the Dice weight 0.

    The Dice term is compiled as nnU-Net compiles it: `DC_and_BCE_loss` still evaluates it (times 0);
    `DC_and_CE_loss` skips it, so its compiled wrapper never compiles anything.
    """

    def build_output_loss(self) -> nn.Module:
        if self.label_manager.has_regions:
            loss = DC_and_BCE_loss(
                {},
                {**self.region_loss_kwargs()},
                weight_ce=1,
                weight_dice=0,
                use_ignore_label=self.label_manager.ignore_label is not None,
            )
        else:
            loss = DC_and_CE_loss(
                {**self.region_loss_kwargs()},
                {},
                weight_ce=1,
                weight_dice=0,
                ignore_label=self.label_manager.ignore_label,
            )
        loss.dc = self.compiled(loss.dc)
        return loss


# the trainers registered above (their class statements are the one place their names are written)
__all__ = list(REGISTRY.names("baseline"))
