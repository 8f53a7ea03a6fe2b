"""Section 3.1 as a test: K sets of indistinguishable voxels, one free logit per set.

Every voxel of set k gets the same two-channel logits (0, d_k), so the optimiser sees the sum of the
per-voxel fields over the set (the network is forced to predict one p_k per set). Set k has n_k voxels,
a fraction r_k of them labelled foreground; one big pure-background set makes the problem imbalanced.

Derivation of the surgery's fixed point (Eq. 5-6, Listing 1), for the loss L = -(2I + s) / D with
D = P + Y + s over the foreground channel (do_bg=False, one image = the whole batch):
    dL/dp_i = -G_fg for y_i = 1, +G_bg for y_i = 0,
    G_fg = (2 D - (2I + s)) / D^2  (Eq. 5),   G_bg = (2I + s) / D^2  (Eq. 6).
The background channel is not in the loss, so g_bg = 0, and Listing 1 gives d_k the update direction
    F_k = sum_{i in S_k} w_i g_i,   w_i = 0.25 e_i c(e_i),   e_i = |y_i - p_k|,
with the decline factor c(e) = (1 - e^n)(1 - (1 - e)^n) (c = 1 for n = None). c is symmetric under
e -> 1 - e, so both labels share c(p_k), and
    F_k = 0.25 n_k c(p_k) [-r_k (1 - p_k) G_fg + (1 - r_k) p_k G_bg].
F_k = 0 with p_k in (0, 1) gives r_k (1 - p_k) G_fg = (1 - r_k) p_k G_bg, i.e.
    odds(p_k) = odds(r_k) * G_fg / G_bg,   for every n.
For r_k = 0 the only zero is the boundary p_k = 0 (F_k > 0 pushes d_k down).
The same derivation in prose: docs/surgery.md#fixed-points-of-indistinguishable-voxels.

Tversky (alpha weighs false positives, beta = 1 - alpha; the package's doubled form, Dice at alpha = 0.5):
L = -(2I + s) / D with D = 2 alpha P + 2 beta Y + s, so dD/dp_i = 2 alpha for either label and
    G_fg = 2 (D - alpha (2I + s)) / D^2,   G_bg = 2 alpha (2I + s) / D^2,   G_fg / G_bg = 1 / (alpha TI) - 1,
the same odds formula with TI = (2I + s) / D in place of the Dice.
"""

from __future__ import annotations

import pytest
import torch
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import SoftTverskyLoss

RATIOS = [0.1, 0.3, 0.5, 0.7, 0.9]
SET_SIZE = 200
BACKGROUND_SIZE = 2000
SMOOTH = 1.0


def _problem():
    ratios = torch.tensor([*RATIOS, 0.0], dtype=torch.float64)
    sizes = torch.tensor([SET_SIZE] * len(RATIOS) + [BACKGROUND_SIZE])
    n_fg = (ratios * sizes).round().long()
    set_index = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    labels = torch.cat([(torch.arange(int(n)) < int(f)).long() for f, n in zip(n_fg, sizes)])
    r = n_fg.to(torch.float64) / sizes  # the exact label ratios of the sets
    return r, set_index, labels


def _logits(d: torch.Tensor, set_index: torch.Tensor) -> torch.Tensor:
    per_voxel = d[set_index]
    return torch.stack([torch.zeros_like(per_voxel), per_voxel]).unsqueeze(0)  # (1, 2, N)


def _optimise(loss_fn, set_index, d0, lr, steps, adam=False):
    """Plain gradient descent, or Adam (written out: torch.optim's first step imports torch._dynamo)."""
    d = d0.clone()
    m = torch.zeros_like(d)
    v = torch.zeros_like(d)
    for t in range(1, steps + 1):
        leaf = d.clone().requires_grad_()
        (grad,) = torch.autograd.grad(loss_fn(_logits(leaf, set_index)), leaf)
        if adam:
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            grad = (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
        d = d - lr * grad
    return torch.sigmoid(d)


def _global_terms(p_sets, set_index, labels, alpha=0.5):
    """(G_fg, G_bg, index) at the given solution, with P, Y, I summed over all voxels: Eq. 5-6 and the Dice at
    alpha = 0.5, their Tversky form (module docstring) otherwise."""
    p = p_sets[set_index]
    y = labels.to(torch.float64)
    big_p, big_y, big_i = p.sum(), y.sum(), (p * y).sum()
    numerator = 2 * big_i + SMOOTH
    d = 2 * alpha * big_p + 2 * (1 - alpha) * big_y + SMOOTH
    return 2 * (d - alpha * numerator) / d**2, 2 * alpha * numerator / d**2, numerator / d


def test_cross_entropy_converges_to_label_ratio():
    r, set_index, labels = _problem()

    def ce(z):
        return torch.nn.functional.cross_entropy(z, labels.unsqueeze(0), reduction="sum")

    # per-set curvature n_k p (1 - p) is in [18, 50] near the solutions: lr 0.03 is stable (< 2 / 50)
    # and shrinks p - r by a factor <= 0.5 per step
    p = _optimise(ce, set_index, torch.zeros(len(r), dtype=torch.float64), lr=0.03, steps=80)
    torch.testing.assert_close(p[:-1], r[:-1], rtol=0, atol=1e-9)
    assert p[-1] < 1e-6  # r = 0: p -> 0


def test_soft_dice_converges_to_zero_or_one():
    r, set_index, labels = _problem()
    dice = SoftTverskyLoss(softmax_helper_dim1, batch_dice=True, do_bg=False, smooth=SMOOTH, ddp=False)
    p = _optimise(
        lambda z: dice(z, labels.view(1, 1, -1)),
        set_index,
        torch.zeros(len(r), dtype=torch.float64),
        lr=1.0,
        steps=200,
        adam=True,
    )
    assert torch.minimum(p, 1 - p).max() < 1e-3
    # Summed over set k, dL/dp_k = n_k (T - 2 r_k) / D with T = (2I + s) / D the Dice, and dp/dd > 0:
    # a set goes to 1 exactly when r_k > T / 2, whatever its label ratio otherwise.
    _, _, dice_value = _global_terms(p.round(), set_index, labels)
    assert torch.equal(p > 0.5, r > dice_value / 2)


@pytest.mark.parametrize("alpha", [0.5, 0.3])
@pytest.mark.parametrize("exponent", [None, 20])
def test_surgery_converges_to_odds_fixed_point_inside_unit_interval(exponent, alpha):
    r, set_index, labels = _problem()
    loss = SoftTverskyLoss(
        softmax_helper_dim1,
        batch_dice=True,
        do_bg=False,
        smooth=SMOOTH,
        ddp=False,
        surgery=True,
        exponent=exponent,
        alpha=alpha,
    )
    # The pure-background set approaches its boundary fixed point p = 0 only like 1/t, dragging P (and
    # so G) along; it starts near there (p ~ 1e-7) so that the mixed sets settle on a steady G.
    d0 = torch.zeros(len(r), dtype=torch.float64)
    d0[-1] = -16.0
    # plain GD with the field as update direction; dF_k/dd_k = 0.25 n_k c p (1 - p)(r G_fg + (1 - r) G_bg)
    # is at most ~0.25 * 200 * 0.25 * 1.2e-3 = 0.015 here, so lr 100 is stable
    # (300 steps: Tversky's r = 0.9 set sits near p = 0.97, where p (1 - p) makes it the slowest to settle)
    p = _optimise(lambda z: loss(z, labels.view(1, 1, -1)), set_index, d0, lr=100.0, steps=300)

    mixed = slice(0, len(RATIOS))
    assert (p[mixed] > 0.01).all() and (p[mixed] < 0.99).all()  # strictly inside (0, 1)
    assert (p[mixed].diff() > 0).all()  # monotone in r
    assert p[-1] <= torch.sigmoid(d0[-1])  # pure background moves towards p = 0

    g_fg, g_bg, index = _global_terms(p, set_index, labels, alpha)
    torch.testing.assert_close(g_fg / g_bg, 1 / (alpha * index) - 1)
    log_odds_expected = torch.logit(r[mixed]) + torch.log(g_fg / g_bg)
    torch.testing.assert_close(torch.logit(p[mixed]), log_odds_expected, rtol=0, atol=1e-9)
    # neither CE's calibration p = r (here G_fg / G_bg != 1) nor Dice's {0, 1}
    assert (g_fg / g_bg - 1).abs() > 0.1
    assert ((p[mixed] - r[mixed]).abs() > 0.01).all()
