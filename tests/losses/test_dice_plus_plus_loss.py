"""`DicePlusPlusLoss`: soft Dice at gamma 1 (against nnU-Net's loss), DSC++ (docs/losses.md) at gamma 2."""

from __future__ import annotations

import functools

import pytest
import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import DicePlusPlusLoss, SoftTverskyLoss


@pytest.fixture
def case(make_case):
    """`case(channels, seed, ...)`: float64 softmax logits, label map and mask of 3 images of 4 x 5."""
    return functools.partial(make_case, "softmax", dtype=torch.float64, spatial=(4, 5))


def _dice_plus_plus_reference(probs, target_onehot, mask, gamma, eps, smooth):
    """docs/losses.md (Dice++): clip p, y to [eps, 1 - eps]; per image and class TP = sum y p,
    FN = sum (y (1 - p))^gamma, FP = sum ((1 - y) p)^gamma; DSC++ = (2 TP + smooth) / (2 TP + FN + FP + smooth);
    loss = mean over images and classes of 1 - DSC++ (background included)."""
    p = probs.clamp(eps, 1 - eps)
    y = target_onehot.clamp(eps, 1 - eps)
    m = torch.ones_like(p[:, :1]) if mask is None else mask.to(p.dtype)
    axes = tuple(range(2, p.ndim))
    tp = (m * y * p).sum(axes)
    fn = (m * (y * (1 - p)) ** gamma).sum(axes)
    fp = (m * ((1 - y) * p) ** gamma).sum(axes)
    return (1 - (2 * tp + smooth) / (2 * tp + fn + fp + smooth)).mean()


@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_gamma_one_without_clipping_is_one_plus_nnunet_soft_dice(
    channels, use_mask, batch_dice, case, loss_and_grad
):
    # gamma = 1: 2 TP + FN + FP = 2 TP + (Y - TP) + (P - TP) = P + Y, so DSC++ is nnU-Net's Dice and
    # mean(1 - DSC++) = 1 + nnU-Net's loss (which is -mean Dice); nnU-Net sums in float32
    logits, target, mask = case(channels, seed=1, dtype=torch.float32)
    mask = mask if use_mask else None
    kwargs = {"batch_dice": batch_dice, "do_bg": True, "smooth": 1e-5, "ddp": False}
    ours = loss_and_grad(
        DicePlusPlusLoss(softmax_helper_dim1, gamma=1.0, clip_eps=0.0, **kwargs),
        logits,
        target,
        loss_mask=mask,
    )
    stock = loss_and_grad(
        MemoryEfficientSoftDiceLoss(softmax_helper_dim1, **kwargs), logits, target, loss_mask=mask
    )
    torch.testing.assert_close(ours[0], 1 + stock[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours[1], stock[1], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("use_mask", [False, True])
def test_gamma_one_equals_soft_dice_in_float64_without_clipping(channels, use_mask, case, loss_and_grad):
    logits, target, mask = case(channels, seed=2)
    mask = mask if use_mask else None
    kwargs = {"batch_dice": False, "do_bg": True, "smooth": 1e-5, "ddp": False}
    ours = loss_and_grad(
        DicePlusPlusLoss(softmax_helper_dim1, gamma=1.0, clip_eps=0.0, **kwargs),
        logits,
        target,
        loss_mask=mask,
    )
    dice = loss_and_grad(SoftTverskyLoss(softmax_helper_dim1, **kwargs), logits, target, loss_mask=mask)
    torch.testing.assert_close(ours[0], 1 + dice[0], rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(ours[1], dice[1], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("clip_eps", [1e-7, 1e-3])
def test_gamma_one_clipping_moves_loss_by_at_most_its_bound(clip_eps, case):
    # Clipping moves each p and y by <= eps, so each of y p, y (1 - p), (1 - y) p moves by <= 2 eps and
    # TP, FN, FP by <= 2 eps N (N voxels per image). With A = 2 TP + s, B = 2 TP + FN + FP + s:
    # |dA| <= 4 eps N, |dB| <= 8 eps N and |A'/B' - A/B| <= (|dA| + (A/B)|dB|) / B' <= 12 eps N / s.
    logits, target, _ = case(3, seed=3, scale=8.0)  # many probabilities within clip_eps of 0 or 1
    smooth = 1.0
    n_voxels = target[0].numel()
    kwargs = {"batch_dice": False, "do_bg": True, "smooth": smooth, "ddp": False, "gamma": 1.0}
    clipped = DicePlusPlusLoss(softmax_helper_dim1, clip_eps=clip_eps, **kwargs)(logits, target)
    unclipped = DicePlusPlusLoss(softmax_helper_dim1, clip_eps=0.0, **kwargs)(logits, target)
    difference = (clipped - unclipped).abs().item()
    assert 0 < difference <= 12 * clip_eps * n_voxels / smooth


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("scale", [2.0, 30.0])  # 30: many probabilities are clipped
def test_gamma_two_matches_reference_formula(channels, use_mask, scale, case, onehot):
    logits, target, mask = case(channels, seed=4, scale=scale)
    mask = mask if use_mask else None
    loss = DicePlusPlusLoss(softmax_helper_dim1, ddp=False)(
        logits, target, loss_mask=mask
    )  # defaults: paper's
    expected = _dice_plus_plus_reference(
        torch.softmax(logits, 1), onehot(target, channels), mask, 2.0, 1e-7, 1e-7
    )
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [2.0, 3.0])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_gamma_two_gradient_matches_finite_differences(gamma, batch_dice, case):
    logits, target, mask = case(3, seed=5, spatial=(3, 2), batch=2)
    loss = DicePlusPlusLoss(softmax_helper_dim1, batch_dice=batch_dice, gamma=gamma, ddp=False)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, target, loss_mask=mask), (logits.clone().requires_grad_(),), eps=1e-6, atol=1e-8
    )


def test_gamma_two_background_gradient_matches_analytic_derivative():
    # Appendix E: for gamma = 2, dL/dp of a background voxel grows with p (MSE-like), unlike Dice's constant.
    # One image, one channel (sigmoid), fixed foreground voxel at p = 0.9, background voxel at p1 or p2.
    def grad_on_background(p_bg, gamma):
        z = torch.logit(torch.tensor([0.9, p_bg], dtype=torch.float64)).view(1, 1, 2).requires_grad_()
        probs = torch.sigmoid(z)
        y = torch.tensor([1.0, 0.0], dtype=torch.float64).view(1, 1, 2)
        loss = DicePlusPlusLoss(None, gamma=gamma, clip_eps=0.0, smooth=0.0, ddp=False)
        (g,) = torch.autograd.grad(loss(probs, y), probs)
        return g[0, 0, 1].item()

    # analytic, gamma = 2, smooth = 0: L = 1 - 2 TP / (2 TP + FN + FP), FP = p^2 -> dL/dp = 2 TP * 2 p / B^2
    tp, fn = 0.9, 0.1**2
    for p in (0.2, 0.6):
        b = 2 * tp + fn + p**2
        assert grad_on_background(p, 2.0) == pytest.approx(2 * tp * 2 * p / b**2, rel=1e-12)


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": -1.0}, "gamma"),
        ({"clip_eps": -1e-3}, "clip_eps"),
        ({"clip_eps": 0.5}, "clip_eps"),
    ],
)
def test_rejects_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        DicePlusPlusLoss(softmax_helper_dim1, **kwargs)
