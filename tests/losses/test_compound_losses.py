"""`WeightedSumLoss` and `IgnoreLabelLoss` (nnU-Net's ignore-label semantics, zero gradient where ignored)."""

from __future__ import annotations

import functools

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


@pytest.fixture
def softmax_case(make_case):
    """`softmax_case(channels, seed, dtype=)`: logits, label map, ~30 % ignored voxels; 2 images, 5 x 6."""
    return functools.partial(make_case, "softmax", spatial=(5, 6), batch=2, fraction=0.3)


@pytest.fixture
def region_case(make_case):
    """`region_case(regions, seed, dtype=)`: logits, regions, ~30 % ignored voxels; 2 images, 5 x 6."""
    return functools.partial(make_case, "sigmoid", spatial=(5, 6), batch=2, fraction=0.3)


# ------------------------------------------------------------------------------------ WeightedSumLoss


@pytest.mark.parametrize("use_mask", [False, True])
def test_weighted_sum_is_weighted_sum_of_terms(use_mask, softmax_case, loss_and_grad):
    logits, labels, ignored = softmax_case(3, seed=1, dtype=torch.float64)
    mask = ~ignored if use_mask else None
    ace = MarginalL1ACELoss(softmax_helper_dim1, num_bins=20)
    dice = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, ddp=False)
    dpp = DicePlusPlusLoss(softmax_helper_dim1, ddp=False)
    combined = WeightedSumLoss([(0.5, ace), (0.5, dice), (2.0, dpp)])
    total = loss_and_grad(combined, logits, labels, loss_mask=mask)
    parts = [loss_and_grad(term, logits, labels, loss_mask=mask) for term in (ace, dice, dpp)]
    torch.testing.assert_close(total[0], 0.5 * parts[0][0] + 0.5 * parts[1][0] + 2.0 * parts[2][0])
    torch.testing.assert_close(total[1], 0.5 * parts[0][1] + 0.5 * parts[1][1] + 2.0 * parts[2][1])
    if use_mask:  # the mask reaches every term: masked voxels get no gradient
        masked = ignored.expand_as(total[1])
        assert torch.equal(total[1][masked], torch.zeros_like(total[1][masked]))


def test_weighted_sum_rejects_empty_terms():
    with pytest.raises(ValueError, match="terms"):
        WeightedSumLoss([])


# ------------------------------------------------------------------------------------ IgnoreLabelLoss


def test_ignore_label_loss_without_ignore_label_is_the_wrapped_loss(softmax_case, loss_and_grad):
    logits, labels, _ = softmax_case(3, seed=10)
    dice = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, ddp=False)
    wrapped = loss_and_grad(IgnoreLabelLoss(dice, ignore_label=None, has_regions=False), logits, labels)
    plain = loss_and_grad(dice, logits, labels)
    assert torch.equal(wrapped[0], plain[0]) and torch.equal(wrapped[1], plain[1])


@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_ignore_label_loss_matches_nnunet_dc_and_ce_ignore_handling(
    channels, batch_dice, softmax_case, loss_and_grad
):
    # reference: nnU-Net's DC_and_CE_loss with weight_ce = 0 is its Dice with its own ignore-label mask
    logits, labels, ignored = softmax_case(channels, seed=20)
    ignore_label = channels
    target = torch.where(ignored, torch.full_like(labels, ignore_label), labels)
    kwargs = {"batch_dice": batch_dice, "do_bg": False, "smooth": 1e-5, "ddp": False}
    ours = loss_and_grad(
        IgnoreLabelLoss(SoftTverskyLoss(softmax_helper_dim1, **kwargs), ignore_label, has_regions=False),
        logits,
        target,
    )
    stock = loss_and_grad(
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
def test_ignore_label_loss_matches_nnunet_dc_and_bce_ignore_handling(batch_dice, region_case, loss_and_grad):
    logits, regions, ignored = region_case(3, seed=30)
    target = torch.cat([regions, ignored], 1)  # nnU-Net: ignore channel last, 1 = ignore
    kwargs = {"batch_dice": batch_dice, "do_bg": True, "smooth": 1e-5, "ddp": False}
    ours = loss_and_grad(
        IgnoreLabelLoss(SoftTverskyLoss(torch.sigmoid, **kwargs), ignore_label=1, has_regions=True),
        logits,
        target,
    )
    stock = loss_and_grad(
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
def test_surgical_loss_gives_zero_gradient_at_ignored_voxels_softmax(
    exponent, channels, batch_dice, softmax_case, loss_and_grad
):
    logits, labels, ignored = softmax_case(channels, seed=40)
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
    _, grad = loss_and_grad(loss, logits, target)
    at_ignored = ignored.expand_as(grad)
    assert at_ignored.any()
    assert torch.equal(grad[at_ignored], torch.zeros_like(grad[at_ignored]))
    assert torch.isfinite(grad).all() and grad[~at_ignored].abs().max() > 0


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgical_loss_gives_zero_gradient_at_ignored_voxels_regions(
    exponent, batch_dice, region_case, loss_and_grad
):
    logits, regions, ignored = region_case(3, seed=50)
    loss = IgnoreLabelLoss(
        SoftTverskyLoss(
            torch.sigmoid, batch_dice=batch_dice, do_bg=True, ddp=False, surgery=True, exponent=exponent
        ),
        ignore_label=1,
        has_regions=True,
    )
    _, grad = loss_and_grad(loss, logits, torch.cat([regions, ignored], 1))
    at_ignored = ignored.expand_as(grad)
    assert at_ignored.any()
    assert torch.equal(grad[at_ignored], torch.zeros_like(grad[at_ignored]))
    assert torch.isfinite(grad).all() and grad[~at_ignored].abs().max() > 0
