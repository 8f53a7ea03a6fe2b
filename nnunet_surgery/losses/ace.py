"""Marginal L1 average calibration error (mL1-ACE) loss of Barfoot et al. 2024, a baseline of the paper."""

from __future__ import annotations

from collections.abc import Callable

import torch

from nnunet_surgery.losses._prepare import ChannelLoss

__all__ = ["ACE_EDGE_STRETCH", "MarginalL1ACELoss", "hard_bin_index"]

#: The reference's bin edges are `k (1 + ACE_EDGE_STRETCH) / num_bins`, so that p = 1 falls inside the last bin.
ACE_EDGE_STRETCH = 1.19e-7


def hard_bin_index(probs: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin of each probability for equal-width bins `(lo, hi]`, `p = 0` in bin 0 (docs/losses.md, mL1-ACE).

    Edges are `k (1 + ACE_EDGE_STRETCH) / num_bins`, `k = 0..num_bins`. Returns int64 of `probs`' shape.
    """
    inner = torch.arange(1, num_bins, device=probs.device, dtype=probs.dtype) * (
        (1 + ACE_EDGE_STRETCH) / num_bins
    )
    return torch.bucketize(probs.detach().contiguous(), inner, right=False)


class MarginalL1ACELoss(ChannelLoss):
    """mL1-ACE: per image and class, the unweighted mean over non-empty bins of |mean p - mean y|.

    One-vs-rest on each softmax (or sigmoid) channel, background included by default. Probabilities are
    hard-binned with `hard_bin_index`; the gradient flows through the bins' mean probability only. The loss
    is the mean over all (image, class) pairs that have at least one voxel inside the loss mask. The paper
    uses it as `0.5 * mL1-ACE + 0.5 * Dice` with 20 bins (Appendix D).

    Args:
        apply_nonlin: activation applied to the logits.
        num_bins: number of equal-width bins on [0, 1].
        do_bg: include channel 0.

    Shapes:
        logits `(b, c, *spatial)`; target label map `(b, 1, *spatial)` or one-hot `(b, c, *spatial)`;
        loss_mask `(b, 1, *spatial)`.
    """

    repr_args = ("num_bins",)

    def __init__(self, apply_nonlin: Callable | None = None, num_bins: int = 20, do_bg: bool = True) -> None:
        super().__init__(apply_nonlin, do_bg)
        if num_bins < 1:
            raise ValueError(f"num_bins must be >= 1, but got {num_bins}")
        self.num_bins = num_bins

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        p, y_onehot = self.prepare(x, y)
        b, c = p.shape[:2]
        p = p.reshape(b, c, -1)
        with torch.no_grad():
            bins = hard_bin_index(p, self.num_bins)
            y_flat = y_onehot.reshape(b, c, -1).to(p.dtype)
            weight = (
                torch.ones_like(p)
                if loss_mask is None
                else loss_mask.reshape(b, 1, -1).to(p.dtype).expand_as(p)
            )
            zeros = p.new_zeros(b, c, self.num_bins)
            counts = zeros.scatter_add(2, bins, weight)
            label_sums = zeros.scatter_add(2, bins, y_flat * weight)
        prob_sums = p.new_zeros(b, c, self.num_bins).scatter_add(2, bins, p * weight)
        filled = counts > 0
        safe_counts = counts.clamp_min(1)
        gaps = (prob_sums / safe_counts - label_sums / safe_counts).abs() * filled
        filled_bins = filled.sum(2)
        ace = gaps.sum(2) / filled_bins.clamp_min(1)
        # pairs without any voxel in the mask have ace = 0 and are left out of the mean
        return ace.sum() / (filled_bins > 0).sum().clamp_min(1)
