"""Reduction of per-(image, channel) region sums as nnU-Net's Dice losses do it."""

from __future__ import annotations

import torch
from nnunetv2.utilities.ddp_allgather import AllGatherGrad

__all__ = ["reduce_region_sums"]


def reduce_region_sums(
    sums: tuple[torch.Tensor, ...], batch_dice: bool, ddp: bool
) -> tuple[torch.Tensor, ...]:
    """Pool `(b, c)` sums over the batch, and over DDP ranks, as `MemoryEfficientSoftDiceLoss` does.

    With `batch_dice`, every sum becomes `(c,)`: summed over the local batch and, if `ddp`, over all ranks
    through nnU-Net's `AllGatherGrad` (whose backward all-reduces, so that DDP's gradient averaging
    restores the single-process gradient). Without `batch_dice` the sums stay per image.
    """
    if not batch_dice:
        return sums
    if ddp:
        sums = tuple(AllGatherGrad.apply(s).sum(0) for s in sums)
    return tuple(s.sum(0) for s in sums)
