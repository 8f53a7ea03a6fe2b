"""The one place where the trainers build their loss: deep supervision, logging; `compiled` for the terms."""

from __future__ import annotations

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn

from nnunet_surgery.losses import IgnoreLabelLoss, SoftTverskyLoss
from nnunet_surgery.trainers.schedule import ScheduleMixin

__all__ = ["LossRecipeTrainer"]


class LossRecipeTrainer(ScheduleMixin, nnUNetTrainer):
    """nnU-Net trainer whose subclasses only say which loss to use on one output.

    `build_output_loss` says what is compiled, at the construction site: it wraps each term to compile
    (the region term, as nnU-Net compiles its Dice term) in `compiled`, which follows nnU-Net's own decision
    (`_do_i_compile`: CUDA, and `nnUNet_compile` not off). `_build_loss` wraps the loss for deep supervision
    with nnU-Net's weights (1/2^i, lowest output off, or 1e-6 under uncompiled DDP: nnU-Net's fix for DDP's
    unused-parameter error) and logs the recipe to the training log; `debug.json` holds the class attributes
    and the loss's repr. Hyperparameters are class attributes (see `ScheduleMixin`).
    """

    #: surgery's decline exponent n (Table 3 of the paper: 20), for the surgical variants.
    surgery_exponent: float | None = 20
    #: Tversky alpha (weight of false positives; beta = 1 - alpha), for the Tversky variants.
    tversky_alpha: float = 0.5

    def build_output_loss(self) -> nn.Module:
        """The loss for one network output, `(logits, target) -> scalar`; subclasses define it.

        Wrap each term that should be compiled in `compiled` here: nothing else is compiled.
        """
        raise NotImplementedError(f"{type(self).__name__} must define build_output_loss()")

    # helpers for subclasses -------------------------------------------------------------------------------
    def compiled(self, module: nn.Module) -> nn.Module:
        """`torch.compile(module)` if nnU-Net compiles this run (`_do_i_compile`), else `module` itself.

        nnU-Net's rule: compile on CUDA unless `nnUNet_compile` is off; never on CPU, MPS or Windows.
        """
        return torch.compile(module) if self._do_i_compile() else module

    @property
    def activation(self):
        """nnU-Net's activation for this dataset: sigmoid for region-based training, else softmax."""
        return torch.sigmoid if self.label_manager.has_regions else softmax_helper_dim1

    def region_loss_kwargs(self) -> dict:
        """nnU-Net's Dice settings: batch dice from the plans, background only for regions, smooth 1e-5."""
        return {
            "batch_dice": self.configuration_manager.batch_dice,
            "do_bg": self.label_manager.has_regions,
            "smooth": 1e-5,
            "ddp": self.is_ddp,
        }

    def with_ignore_label(self, loss: nn.Module) -> IgnoreLabelLoss:
        """Wrap a `(logits, target, loss_mask)` loss with nnU-Net's ignore-label semantics."""
        return IgnoreLabelLoss(loss, self.label_manager.ignore_label, self.label_manager.has_regions)

    def tversky(self, alpha: float, surgery: bool) -> IgnoreLabelLoss:
        """Region-only Tversky/Dice loss (compiled) with this dataset's activation and nnU-Net's Dice settings."""
        return self.with_ignore_label(
            self.compiled(
                SoftTverskyLoss(
                    apply_nonlin=self.activation,
                    alpha=alpha,
                    surgery=surgery,
                    exponent=self.surgery_exponent,
                    **self.region_loss_kwargs(),
                )
            )
        )

    # nnU-Net hook -------------------------------------------------------------------------------------------
    def _build_loss(self) -> nn.Module:
        loss = self.build_output_loss()
        self.print_to_log_file(f"nnunet-surgery: {type(self).__name__} trains with {loss}")

        if self.enable_deep_supervision:
            weights = np.array([1 / (2**i) for i in range(len(self._get_deep_supervision_scales()))])
            # nnU-Net's fix: uncompiled DDP complains about unused parameters if the lowest output gets weight 0
            weights[-1] = 1e-6 if self.is_ddp and not self._do_i_compile() else 0
            loss = DeepSupervisionWrapper(loss, weights / weights.sum())
        return loss
