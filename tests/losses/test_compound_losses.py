"""`WeightedSumLoss` and `IgnoreLabelLoss` (nnU-Net's ignore-label semantics, zero gradient where ignored)."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import (
    DicePlusPlusLoss,
    IgnoreLabelLoss,
    MarginalL1ACELoss,
    SoftTverskyLoss,
    WeightedSumLoss,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _loss_and_grad(loss_fn, logits, *args, **kwargs):
    leaf = logits.detach().clone().requires_grad_()
    loss = loss_fn(leaf, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), grad


def _softmax_case(channels: int, seed: int, dtype=torch.float32, ignore_fraction: float = 0.3):
    logits = (torch.randn(2, channels, 5, 6, generator=_gen(seed), dtype=torch.float64) * 2).to(dtype)
    labels = torch.randint(0, channels, (2, 1, 5, 6), generator=_gen(seed + 1))
    ignored = torch.rand(labels.shape, generator=_gen(seed + 2)) < ignore_fraction
    return logits, labels, ignored


def _region_case(regions: int, seed: int, dtype=torch.float32):
    logits = (torch.randn(2, regions, 5, 6, generator=_gen(seed), dtype=torch.float64) * 2).to(dtype)
    target = torch.rand(2, regions, 5, 6, generator=_gen(seed + 1)) < 0.4
    ignored = torch.rand(2, 1, 5, 6, generator=_gen(seed + 2)) < 0.3
    return logits, target, ignored


# ------------------------------------------------------------------------------------ WeightedSumLoss


@pytest.mark.parametrize("use_mask", [False, True])
def test_weighted_sum_is_weighted_sum_of_terms(use_mask):
    logits, labels, ignored = _softmax_case(3, seed=1, dtype=torch.float64)
    mask = ~ignored if use_mask else None
    ace = MarginalL1ACELoss(softmax_helper_dim1, num_bins=20)
    dice = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, ddp=False)
    dpp = DicePlusPlusLoss(softmax_helper_dim1, ddp=False)
    combined = WeightedSumLoss([(0.5, ace), (0.5, dice), (2.0, dpp)])
    total = _loss_and_grad(combined, logits, labels, loss_mask=mask)
    parts = [_loss_and_grad(term, logits, labels, loss_mask=mask) for term in (ace, dice, dpp)]
    torch.testing.assert_close(total[0], 0.5 * parts[0][0] + 0.5 * parts[1][0] + 2.0 * parts[2][0])
    torch.testing.assert_close(total[1], 0.5 * parts[0][1] + 0.5 * parts[1][1] + 2.0 * parts[2][1])
    if use_mask:  # the mask reaches every term: masked voxels get no gradient
        masked = ignored.expand_as(total[1])
        assert torch.equal(total[1][masked], torch.zeros_like(total[1][masked]))


def test_weighted_sum_rejects_empty_terms():
    with pytest.raises(ValueError, match="terms"):
        WeightedSumLoss([])


# ------------------------------------------------------------------------------------ IgnoreLabelLoss


def test_ignore_label_loss_without_ignore_label_is_the_wrapped_loss():
    logits, labels, _ = _softmax_case(3, seed=10)
    dice = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, ddp=False)
    wrapped = _loss_and_grad(IgnoreLabelLoss(dice, ignore_label=None, has_regions=False), logits, labels)
    plain = _loss_and_grad(dice, logits, labels)
    assert torch.equal(wrapped[0], plain[0]) and torch.equal(wrapped[1], plain[1])


@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_ignore_label_loss_matches_nnunet_dc_and_ce_ignore_handling(channels, batch_dice):
    # reference: nnU-Net's DC_and_CE_loss with weight_ce = 0 is its Dice with its own ignore-label mask
    logits, labels, ignored = _softmax_case(channels, seed=20)
    ignore_label = channels
    target = torch.where(ignored, torch.full_like(labels, ignore_label), labels)
    kwargs = {"batch_dice": batch_dice, "do_bg": False, "smooth": 1e-5, "ddp": False}
    ours = _loss_and_grad(
        IgnoreLabelLoss(SoftTverskyLoss(softmax_helper_dim1, **kwargs), ignore_label, has_regions=False),
        logits,
        target,
    )
    stock = _loss_and_grad(
        DC_and_CE_loss(
            kwargs,
            {},
            weight_ce=0,
            weight_dice=1,
            ignore_label=ignore_label,
            dice_class=MemoryEfficientSoftDiceLoss,
        ),
        logits,
        target,
    )
    assert torch.equal(ours[0], stock[0]) and torch.equal(ours[1], stock[1])


@pytest.mark.parametrize("batch_dice", [False, True])
def test_ignore_label_loss_matches_nnunet_dc_and_bce_ignore_handling(batch_dice):
    logits, regions, ignored = _region_case(3, seed=30)
    target = torch.cat([regions, ignored], 1)  # nnU-Net: ignore channel last, 1 = ignore
    kwargs = {"batch_dice": batch_dice, "do_bg": True, "smooth": 1e-5, "ddp": False}
    ours = _loss_and_grad(
        IgnoreLabelLoss(SoftTverskyLoss(torch.sigmoid, **kwargs), ignore_label=1, has_regions=True),
        logits,
        target,
    )
    stock = _loss_and_grad(
        DC_and_BCE_loss(
            {},
            kwargs,
            weight_ce=0,
            weight_dice=1,
            use_ignore_label=True,
            dice_class=MemoryEfficientSoftDiceLoss,
        ),
        logits,
        target,
    )
    assert torch.equal(ours[0], stock[0]) and torch.equal(ours[1], stock[1])


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgical_loss_gives_zero_gradient_at_ignored_voxels_softmax(exponent, channels, batch_dice):
    logits, labels, ignored = _softmax_case(channels, seed=40)
    target = torch.where(ignored, torch.full_like(labels, channels), labels)
    loss = IgnoreLabelLoss(
        SoftTverskyLoss(
            softmax_helper_dim1,
            batch_dice=batch_dice,
            do_bg=False,
            ddp=False,
            surgery=True,
            exponent=exponent,
        ),
        ignore_label=channels,
        has_regions=False,
    )
    _, grad = _loss_and_grad(loss, logits, target)
    at_ignored = ignored.expand_as(grad)
    assert at_ignored.any()
    assert torch.equal(grad[at_ignored], torch.zeros_like(grad[at_ignored]))
    assert torch.isfinite(grad).all() and grad[~at_ignored].abs().max() > 0


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgical_loss_gives_zero_gradient_at_ignored_voxels_regions(exponent, batch_dice):
    logits, regions, ignored = _region_case(3, seed=50)
    loss = IgnoreLabelLoss(
        SoftTverskyLoss(
            torch.sigmoid, batch_dice=batch_dice, do_bg=True, ddp=False, surgery=True, exponent=exponent
        ),
        ignore_label=1,
        has_regions=True,
    )
    _, grad = _loss_and_grad(loss, logits, torch.cat([regions, ignored], 1))
    at_ignored = ignored.expand_as(grad)
    assert at_ignored.any()
    assert torch.equal(grad[at_ignored], torch.zeros_like(grad[at_ignored]))
    assert torch.isfinite(grad).all() and grad[~at_ignored].abs().max() > 0
