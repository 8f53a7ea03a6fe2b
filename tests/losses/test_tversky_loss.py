"""`SoftTverskyLoss`: nnU-Net's Dice at alpha 0.5, the Tversky index otherwise, and the surgery on top.

References: nnU-Net's own `MemoryEfficientSoftDiceLoss`, `DC_and_CE_loss`, `DC_and_BCE_loss` (bitwise),
the Tversky index written here from Appendix D, finite differences (gradcheck), and the surgery's
per-voxel rescale s = w / (p_y e) derived from Eq. 10 / Listing 1.
"""

from __future__ import annotations

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

import nnunet_surgery.losses.tversky as tversky_module
from nnunet_surgery.losses import SoftTverskyLoss
from nnunet_surgery.surgery import P_Y_MIN


def _nonlin(kind: str):
    return softmax_helper_dim1 if kind == "softmax" else torch.sigmoid


# -------------------------------------------------------------------------- alpha 0.5 == nnU-Net Dice


@pytest.mark.parametrize("kind,channels", [("softmax", 2), ("softmax", 4), ("sigmoid", 3)])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("do_bg", [False, True])
def test_half_alpha_equals_nnunet_memory_efficient_dice_bitwise(
    kind, channels, use_mask, batch_dice, do_bg, make_case, loss_and_grad
):
    logits, target, mask = make_case(kind, channels, seed=1)
    kwargs = {"batch_dice": batch_dice, "do_bg": do_bg, "smooth": 1e-5, "ddp": False}
    mask = mask if use_mask else None
    ours = loss_and_grad(SoftTverskyLoss(_nonlin(kind), alpha=0.5, **kwargs), logits, target, loss_mask=mask)
    stock = loss_and_grad(
        MemoryEfficientSoftDiceLoss(_nonlin(kind), **kwargs), logits, target, loss_mask=mask
    )
    assert torch.equal(ours[0], stock[0])
    assert torch.equal(ours[1], stock[1])


@pytest.mark.parametrize("surgery", [False, True])
@pytest.mark.parametrize("kind,channels", [("softmax", 2), ("softmax", 4), ("sigmoid", 3)])
@pytest.mark.parametrize("use_mask", [False, True])
def test_bool_one_hot_of_cuda_gives_the_float_one_hot_loss_and_gradient_bitwise(
    kind, channels, use_mask, surgery, make_case, loss_and_grad, monkeypatch: pytest.MonkeyPatch
):
    """On CUDA the loss builds its one-hot as bool (a quarter of the memory autograd saves): 0/1 either way,
    so the same products and sums, bit for bit; checked here on CPU by choosing the CUDA dtype."""
    logits, target, mask = make_case(kind, channels, seed=4)
    loss = SoftTverskyLoss(
        _nonlin(kind), batch_dice=True, do_bg=kind == "sigmoid", ddp=False, surgery=surgery
    )
    mask = mask if use_mask else None
    assert tversky_module.onehot_dtype(logits, torch.float32) == torch.float32  # CPU: float32
    as_float = loss_and_grad(loss, logits, target, loss_mask=mask)
    monkeypatch.setattr(tversky_module, "onehot_dtype", lambda x, acc: torch.bool)
    as_bool = loss_and_grad(loss, logits, target, loss_mask=mask)
    assert torch.equal(as_bool[0], as_float[0]) and torch.equal(as_bool[1], as_float[1])


# ------------------------------------------------------------------------------ Tversky, alpha != 0.5


def _tversky_reference(probs, target_onehot, mask, alpha, smooth, batch_dice, do_bg):
    """Appendix D: TI = (TP + s/2) / (TP + alpha FP + beta FN + s/2), the docstring's doubled form / 2."""
    if not do_bg:
        probs, target_onehot = probs[:, 1:], target_onehot[:, 1:]
    m = torch.ones_like(probs[:, :1]) if mask is None else mask.to(probs.dtype)
    axes = tuple(range(2, probs.ndim))
    tp = (probs * target_onehot * m).sum(axes)
    fp = (probs * (1 - target_onehot) * m).sum(axes)
    fn = ((1 - probs) * target_onehot * m).sum(axes)
    if batch_dice:
        tp, fp, fn = tp.sum(0), fp.sum(0), fn.sum(0)
    beta = 1 - alpha
    return -((tp + smooth / 2) / (tp + alpha * fp + beta * fn + smooth / 2)).mean()


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.7, 1.0])
@pytest.mark.parametrize("kind,channels", [("softmax", 3), ("sigmoid", 2)])
@pytest.mark.parametrize("use_mask", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("do_bg", [False, True])
def test_tversky_matches_tversky_index_formula(
    alpha, kind, channels, use_mask, batch_dice, do_bg, make_case, onehot
):
    logits, target, mask = make_case(kind, channels, seed=10, dtype=torch.float64)
    mask = mask if use_mask else None
    smooth = 1.0
    loss = SoftTverskyLoss(
        _nonlin(kind), batch_dice=batch_dice, do_bg=do_bg, smooth=smooth, ddp=False, alpha=alpha
    )(logits, target, loss_mask=mask)
    probs = torch.softmax(logits, 1) if kind == "softmax" else torch.sigmoid(logits)
    expected = _tversky_reference(probs, onehot(target, channels), mask, alpha, smooth, batch_dice, do_bg)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", [0.2, 0.7])
def test_tversky_in_float64_keeps_float64_precision(alpha, make_case, onehot):
    logits, target, _ = make_case("softmax", 3, seed=10, dtype=torch.float64)
    loss = SoftTverskyLoss(softmax_helper_dim1, do_bg=False, smooth=1.0, ddp=False, alpha=alpha)(
        logits, target
    )
    probs = torch.softmax(logits, 1)
    expected = _tversky_reference(probs, onehot(target, 3), None, alpha, 1.0, False, False)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("alpha", [0.3, 0.8])
@pytest.mark.parametrize("kind,channels", [("softmax", 3), ("sigmoid", 2)])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_tversky_gradient_matches_finite_differences(alpha, kind, channels, batch_dice, make_case):
    logits, target, mask = make_case(kind, channels, seed=20, dtype=torch.float64, spatial=(3, 2), batch=2)
    loss = SoftTverskyLoss(
        _nonlin(kind), batch_dice=batch_dice, do_bg=True, smooth=1.0, ddp=False, alpha=alpha
    )
    assert torch.autograd.gradcheck(
        lambda x: loss(x, target, loss_mask=mask), (logits.clone().requires_grad_(),), eps=1e-6, atol=1e-8
    )


def test_tversky_weighs_false_positives_with_alpha():
    # one image, one channel, p = 0.8 on a background voxel (pure FP) and 0.6 on a foreground voxel
    logits = torch.logit(torch.tensor([0.8, 0.6], dtype=torch.float64)).view(1, 1, 2)
    target = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 1, 2)
    tp, fp, fn = 0.6, 0.8, 0.4
    for alpha in (0.1, 0.5, 0.9):
        loss = SoftTverskyLoss(torch.sigmoid, smooth=0.0, ddp=False, alpha=alpha)(logits, target)
        assert loss.item() == pytest.approx(-tp / (tp + alpha * fp + (1 - alpha) * fn), rel=1e-12)


# --------------------------------------------------------------------- surgery off == nnU-Net losses


@pytest.mark.parametrize("channels", [2, 3])
@pytest.mark.parametrize("ignore_label", [None, "last"])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgery_off_in_dc_and_ce_equals_nnunet_bitwise(
    channels, ignore_label, batch_dice, gen, make_case, loss_and_grad
):
    logits, target, _ = make_case("softmax", channels, seed=30)
    if ignore_label is not None:
        ignore_label = channels
        ignored = torch.rand(target.shape, generator=gen(33)) < 0.3
        target = torch.where(ignored, torch.full_like(target, ignore_label), target)

    def make(dice_class, extra):
        dice_kwargs = {"batch_dice": batch_dice, "do_bg": False, "smooth": 1e-5, "ddp": False, **extra}
        return DC_and_CE_loss(dice_kwargs, {}, 1, 1, ignore_label=ignore_label, dice_class=dice_class)

    ours = loss_and_grad(make(SoftTverskyLoss, {"surgery": False}), logits, target)
    stock = loss_and_grad(make(MemoryEfficientSoftDiceLoss, {}), logits, target)
    assert torch.equal(ours[0], stock[0])
    assert torch.equal(ours[1], stock[1])


@pytest.mark.parametrize("use_ignore_label", [False, True])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgery_off_in_dc_and_bce_equals_nnunet_bitwise(
    use_ignore_label, batch_dice, make_case, loss_and_grad
):
    logits, target, ignore = make_case("sigmoid", 3, seed=40)
    if use_ignore_label:  # nnU-Net's region target with the ignore channel last (1 = ignore)
        target = torch.cat([target, ~ignore], 1)

    def make(dice_class, extra):
        dice_kwargs = {"batch_dice": batch_dice, "do_bg": True, "smooth": 1e-5, "ddp": False, **extra}
        return DC_and_BCE_loss({}, dice_kwargs, use_ignore_label=use_ignore_label, dice_class=dice_class)

    ours = loss_and_grad(make(SoftTverskyLoss, {"surgery": False}), logits, target)
    stock = loss_and_grad(make(MemoryEfficientSoftDiceLoss, {}), logits, target)
    assert torch.equal(ours[0], stock[0])
    assert torch.equal(ours[1], stock[1])


# -------------------------------------------------------------------------------- surgery on: how


def _two_channel_rescale(logits, labels, exponent):
    """s = w / (p_y e), e = |y_fg - p_fg|, from Eq. 10 with plain pow (two channels: p_y e = p(1 - p))."""
    p_fg = torch.softmax(logits, 1)[:, 1:2]
    e = (labels.to(logits.dtype) - p_fg).abs()
    w = 0.25 * e if exponent is None else 0.25 * e * (1 - e**exponent) * (1 - (1 - e) ** exponent)
    return w / (p_fg * (1 - p_fg))


@pytest.mark.parametrize("exponent", [None, 5, 20])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgery_in_dc_and_ce_changes_only_the_dice_gradient_by_s_minus_one(
    exponent, batch_dice, make_case, loss_and_grad
):
    logits, target, _ = make_case("softmax", 2, seed=50, dtype=torch.float64)
    dice_kwargs = {"batch_dice": batch_dice, "do_bg": False, "smooth": 1e-5, "ddp": False}

    def compound(surgery):
        kwargs = {**dice_kwargs, "surgery": surgery, "exponent": exponent}
        return DC_and_CE_loss(kwargs, {}, 1, 1, dice_class=SoftTverskyLoss)

    surgical = loss_and_grad(compound(True), logits, target)
    stock = loss_and_grad(compound(False), logits, target)
    plain_dice = loss_and_grad(SoftTverskyLoss(softmax_helper_dim1, **dice_kwargs), logits, target)
    s = _two_channel_rescale(logits, target, exponent)

    torch.testing.assert_close(surgical[0], stock[0], rtol=0, atol=0)  # forward unchanged
    torch.testing.assert_close(surgical[1] - stock[1], (s - 1) * plain_dice[1], rtol=1e-9, atol=1e-15)
    assert ((s - 1).abs() > 1e-3).any()  # the surgery does change something here


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("alpha", [0.5, 0.3])
@pytest.mark.parametrize("kind,channels", [("softmax", 2), ("softmax", 3), ("sigmoid", 3)])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgical_tversky_gradient_is_plain_gradient_rescaled_per_voxel(
    exponent, alpha, kind, channels, batch_dice, make_case, loss_and_grad
):
    logits, target, _ = make_case(kind, channels, seed=60, dtype=torch.float64)
    kwargs = {
        "batch_dice": batch_dice,
        "do_bg": kind == "sigmoid",
        "smooth": 1.0,
        "ddp": False,
        "alpha": alpha,
    }
    surgical = loss_and_grad(
        SoftTverskyLoss(_nonlin(kind), surgery=True, exponent=exponent, **kwargs), logits, target
    )
    plain = loss_and_grad(SoftTverskyLoss(_nonlin(kind), **kwargs), logits, target)
    if kind == "sigmoid":  # per element: w(|y - p|) / (p (1 - p))
        p = torch.sigmoid(logits)
        e = (target.to(torch.float64) - p).abs()
        w = 0.25 * e if exponent is None else 0.25 * e * (1 - e**exponent) * (1 - (1 - e) ** exponent)
        s = w / (p * (1 - p))
    else:  # per voxel: 0.25 (1 - e^n)(1 - p_y^n) / p_y, e = 1 - p_y; n=None: 0.25 / p_y, for K > 2
        # with p_y clamped to P_Y_MIN (two channels follow Listing 1, which has no clamp)
        p_y = torch.softmax(logits, 1).gather(1, target)
        if exponent is None:
            s = 0.25 / (p_y if channels == 2 else p_y.clamp_min(P_Y_MIN))
        else:
            s = 0.25 * (1 - (1 - p_y) ** exponent) * (1 - p_y**exponent) / p_y
    torch.testing.assert_close(surgical[0], plain[0], rtol=0, atol=0)
    torch.testing.assert_close(surgical[1], s * plain[1], rtol=1e-9, atol=1e-15)


# ------------------------------------------------------------------------------------ loss mask


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("kind,channels", [("softmax", 2), ("softmax", 3), ("sigmoid", 2)])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_surgical_tversky_gives_zero_gradient_at_masked_voxels(
    exponent, kind, channels, batch_dice, make_case, loss_and_grad
):
    logits, target, mask = make_case(kind, channels, seed=70)
    # masked voxels also carry saturated logits: the zero must not come from a vanishing p(1 - p) alone
    saturated = torch.where(torch.arange(channels).view(1, -1, 1, 1, 1) == 0, 1e4, -1e4)
    logits = torch.where(mask, logits, saturated.to(logits.dtype))
    loss = SoftTverskyLoss(
        _nonlin(kind), batch_dice=batch_dice, do_bg=False, ddp=False, surgery=True, exponent=exponent
    )
    _, grad = loss_and_grad(loss, logits, target, loss_mask=mask)
    masked = (~mask).expand_as(grad)
    assert masked.any() and (~masked).any()
    assert torch.equal(grad[masked], torch.zeros_like(grad[masked]))
    assert torch.isfinite(grad).all() and grad[~masked].abs().max() > 0


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_rejects_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match="alpha"):
        SoftTverskyLoss(softmax_helper_dim1, alpha=alpha)


@pytest.mark.parametrize(
    "apply_nonlin",
    [None, torch.nn.Softmax(dim=1), lambda x: torch.softmax(x, 1)],
    ids=["none", "module", "lambda"],
)
def test_surgery_rejects_unknown_apply_nonlin(apply_nonlin):
    with pytest.raises(ValueError, match="apply_nonlin"):
        SoftTverskyLoss(apply_nonlin, surgery=True)


@pytest.mark.parametrize("exponent", [0, -3, True, float("nan"), float("inf")], ids=repr)
def test_surgery_rejects_invalid_exponent_at_construction(exponent):
    with pytest.raises(ValueError, match="exponent"):
        SoftTverskyLoss(softmax_helper_dim1, surgery=True, exponent=exponent, ddp=False)


@pytest.mark.parametrize("surgery", [False, True])
@pytest.mark.parametrize("target_shape", [(3, 1, 5, 4, 2), (3, 2, 5, 4, 3), (2, 1, 5, 4, 3)], ids=str)
def test_rejects_target_of_wrong_shape(surgery, target_shape, make_case):
    logits, _, _ = make_case("softmax", 3, seed=90)
    loss = SoftTverskyLoss(softmax_helper_dim1, surgery=surgery, ddp=False)
    with pytest.raises(ValueError, match="target"):
        loss(logits, torch.zeros(target_shape, dtype=torch.long))
