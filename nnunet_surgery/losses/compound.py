"""Compound losses: weighted sums and nnU-Net's ignore-label handling for `(x, y, loss_mask)` losses."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["IgnoreLabelLoss", "WeightedSumLoss"]


class WeightedSumLoss(nn.Module):
    """`sum_k w_k * loss_k(x, y, loss_mask)`, e.g. the paper's `0.5 * mL1-ACE + 0.5 * Dice`.

    Args:
        terms: `(weight, loss)` pairs; each loss takes `(logits, target, loss_mask=None)`.
    """

    def __init__(self, terms: list[tuple[float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("terms must hold at least one (weight, loss) pair, but got none")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList([loss for _, loss in terms])

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return sum(w * loss(x, y, loss_mask=loss_mask) for w, loss in zip(self.weights, self.losses))


class IgnoreLabelLoss(nn.Module):
    """Apply nnU-Net's ignore-label semantics to a `(logits, target, loss_mask)` loss.

    As `DC_and_CE_loss` / `DC_and_BCE_loss` do: for label maps, voxels equal to `ignore_label` get
    `loss_mask = 0` and label 0; for region targets (`has_regions`), the last target channel is the ignore
    channel, removed from the target and turned into the mask. Without an ignore label the target passes
    through and `loss_mask` is None.

    Args:
        loss: the wrapped loss.
        ignore_label: nnU-Net's `label_manager.ignore_label` (None if the dataset has none).
        has_regions: whether targets are region tensors (`label_manager.has_regions`).

    Shapes:
        logits `(b, c, *spatial)`; target `(b, 1, *spatial)`, or `(b, c + 1, *spatial)` for regions with ignore.
    """

    def __init__(self, loss: nn.Module, ignore_label: int | None, has_regions: bool) -> None:
        super().__init__()
        self.loss = loss
        self.ignore_label = ignore_label
        self.has_regions = has_regions

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.ignore_label is None:
            return self.loss(x, target)
        with torch.no_grad():
            if self.has_regions:
                mask = ~target[:, -1:].bool()
                target = target[:, :-1]
            else:
                mask = target != self.ignore_label
                target = torch.where(mask, target, torch.zeros_like(target))
        return self.loss(x, target, loss_mask=mask)
