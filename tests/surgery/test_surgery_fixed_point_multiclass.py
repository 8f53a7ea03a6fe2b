"""Section 3.1 as a test with three softmax classes and with two nested sigmoid regions.

As in test_surgery_fixed_point.py, set k holds n_k indistinguishable voxels that share one prediction, so
the optimiser sees the field summed over the set; r_ky is the exact fraction of set k with label y in
{0, 1, 2}, and big pure sets make the problem imbalanced. The loss is SoftTverskyLoss at its default
alpha = 0.5 (Dice) with batch_dice, smoothing s and surgery=True. With one image the batch sums run over all
voxels; for a scored channel c, G_fg,c and G_bg,c are Eq. 5-6 from that channel's sums I_c, P_c, Y_c, with
D_c = P_c + Y_c + s and DSC_c = (2 I_c + s) / D_c.

(a) Three softmax classes, do_bg=False. Set k has the logits (0, a_k, b_k) and p_k = their softmax. The
loss is -(T_1 + T_2) / 2 (the mean over the two scored channels), so with [.] the indicator
    dL/dp_ic = (-G_fg,c [y_i = c] + G_bg,c [y_i != c]) / 2   (c = 1, 2),     dL/dp_i0 = 0,
i.e. g(y) = B - H_y e_y with B = (0, G_bg,1, G_bg,2) / 2, H = (0, G_fg,1 + G_bg,1, G_fg,2 + G_bg,2) / 2 and
e_y the unit vector of class y; then g_c(y) - <p, g(y)> = B_c - <p, B> - H_y (delta_cy - p_y). The
multi-class rescale makes a voxel's logit gradient s(p_y) p (g - <p, g>), with
    s(p_y) = 0.25 (1 - (1 - p_y)^n)(1 - p_y^n) / p_y,     n = None: 0.25 / max(p_y, 0.01).
Set k has n_k r_ky voxels of label y, all with p_k; summed, the logit gradient of (a_k, b_k) is
    F_kc = n_k p_kc [A_k (B_c - <p_k, B>) - r_kc s_kc H_c + M_k]     (c = 1, 2),
    A_k = sum_y r_ky s_ky,   M_k = sum_y r_ky s_ky p_ky H_y,   s_ky = s(p_ky).
Inside the simplex F_k = 0 means both brackets vanish. Weighting them by p_kc and adding (with
M_k = sum_c r_kc s_kc p_kc H_c as H_0 = 0, and B_0 = 0) gives p_k0 (A_k <p_k, B> - M_k) = 0, so
M_k = A_k <p_k, B> and each bracket becomes A_k B_c = r_kc s_kc H_c. As B_c / H_c = G_bg,c / (G_fg,c +
G_bg,c) = DSC_c / 2 and A_k - sum_c r_kc s_kc = r_k0 s_k0, the fixed point is, with
    q = (1 - (DSC_1 + DSC_2) / 2, DSC_1 / 2, DSC_2 / 2):     r_ky s(p_ky) / q_y = A_k for y = 0, 1, 2.
For n = None (clamp inactive: p_ky >= 0.01) s = 0.25 / p_y, hence p_ky = (r_ky / q_y) / sum_j (r_kj / q_j),
the label mix reweighted by 1 / q: strictly inside the simplex when every class occurs in the set. For a
finite n, p_ky is proportional to r_ky c(p_ky) / q_y (c the decline factor; implicit in p). It is r_k only
for a uniform q (DSC_1 = DSC_2 = 2/3): with both Dice values below 2/3, q_0 > q_1, q_2 and background is
under-predicted, with both above 2/3 over-predicted. Two channels give back the binary formula
(q_1 / q_0 = G_bg / G_fg). A
pure-background set (r_k = e_0) has F_kc = n_k p_kc s_k0 (B_c - <p_k, B>) > 0 near p_k = e_0: its logits
go down, towards its boundary fixed point p_k = e_0.

(b) Two nested sigmoid regions (region-based training; do_bg=True, as nnU-Net uses there): region 1 =
{label >= 1}, region 2 = {label >= 2}, one logit per set and region, the target the two binary region
channels. Set k lies a fraction rho_k1 = r_k1 + r_k2 inside region 1 and rho_k2 = r_k2 inside region 2.
Each channel is the binary problem of test_surgery_fixed_point.py with dL/dp halved by the mean over the
two channels, F_kc = 0.125 n_k c(p_kc) [-rho_kc (1 - p_kc) G_fg,c + (1 - rho_kc) p_kc G_bg,c], zero at
    odds(p_kc) = odds(rho_kc) * G_fg,c / G_bg,c,     G_fg,c / G_bg,c = 2 / DSC_c - 1,
per region with its own ratio. So rho_k1 >= rho_k2 does not make p_k1 >= p_k2: where rho_k1 = rho_k2,
the region with the larger ratio (the worse Dice) gets the larger probability.
The same derivations in prose: docs/surgery.md#fixed-points-of-indistinguishable-voxels.
"""

from __future__ import annotations

import pytest
import torch
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.losses import SoftTverskyLoss

# every class occurs in every mixed set, so every fixed point lies inside the simplex
MIXES = [(0.6, 0.3, 0.1), (0.5, 0.2, 0.3), (0.7, 0.15, 0.15), (0.4, 0.4, 0.2), (0.35, 0.25, 0.4)]
# with the pure sets of classes 1 and 2 the Dice values exceed 2/3 and q_0 gets small: less background in
# the mixes keeps every class of their fixed points above ~0.09
CONFIDENT_MIXES = [(0.2, 0.4, 0.4), (0.1, 0.5, 0.4), (0.3, 0.3, 0.4), (0.15, 0.6, 0.25), (0.25, 0.15, 0.6)]
# regions: a set with r_k1 = 0 lies as much inside region 1 as inside region 2 (rho_k1 = rho_k2)
REGION_MIXES = [*MIXES, (0.55, 0.0, 0.45)]
SET_SIZE = 200
BACKGROUND_SIZE = 2000
CONFIDENT_SIZE = 1000
SMOOTH = 1.0
P_Y_MIN = 0.01  # the clamp of s for n = None (docs/surgery.md#the-clamp-for-n--none)
PURE_START = 16.0  # pure sets start this far up their class's logit: the other classes at ~1e-7

# name: mixes, pure sets (label, size), whether both Dice values end above 2/3, GD step, steps.
# GD converges while lr times the eigenvalues of the Jacobian of F (real here) stays in (0, 2). For the
# mixed sets, at the start and at the fixed point, they lie in [1.5e-3, 0.032] (poor overlap) and
# [2.9e-4, 8.3e-3] (good overlap, where G ~ 1 / D is smaller): lr 50 and 200 keep lr * eigenvalue below 1.7 and shrink
# the slowest mode by ~0.93 and ~0.94 per step. The pure sets' eigenvalues are ~1e-8 or less: they stay put.
SCENARIOS = {
    "poor_overlap": (MIXES, [(0, BACKGROUND_SIZE)], False, 50.0, 300),
    "good_overlap": (
        CONFIDENT_MIXES,
        [(0, BACKGROUND_SIZE), (1, CONFIDENT_SIZE), (2, CONFIDENT_SIZE)],
        True,
        200.0,
        400,
    ),
}


def _problem(mixes, pure):
    """Label fractions r (sets, 3), sizes, the set of every voxel and the labels (mixed sets first)."""
    mix = torch.tensor(mixes, dtype=torch.float64)
    onehot = torch.eye(3, dtype=torch.float64)[[label for label, _ in pure]]
    sizes = torch.tensor([SET_SIZE] * len(mixes) + [size for _, size in pure])
    counts = (torch.cat([mix, onehot]) * sizes[:, None]).round().long()
    assert torch.equal(counts.sum(1), sizes)
    set_index = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
    labels = torch.cat([torch.repeat_interleave(torch.arange(3), row) for row in counts])
    return counts.to(torch.float64) / sizes[:, None], sizes, set_index, labels


def _start(n_mixed, pure):
    """Mixed sets at logit 0 (uniform), pure sets near their vertex; one row of free logits per set."""
    x = torch.zeros(n_mixed + len(pure), 2, dtype=torch.float64)
    for row, (label, _) in enumerate(pure, start=n_mixed):
        x[row] = -PURE_START if label == 0 else PURE_START * torch.eye(2, dtype=torch.float64)[label - 1]
    return x


def _full_logits(x):
    return torch.cat([torch.zeros_like(x[:, :1]), x], 1)  # (sets, 3): (0, a_k, b_k)


def _softmax_probs(x):
    return torch.softmax(_full_logits(x), 1)


def _gradient(loss_fn, x):
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss_fn(leaf), leaf)
    return grad


def _descend(loss_fn, x0, lr, steps):
    """Plain gradient descent on the per-set logits (written out: torch.optim's first step imports dynamo)."""
    x = x0.clone()
    for _ in range(steps):
        x = x - lr * _gradient(loss_fn, x)
    return x


def _dice_terms(p, fractions, sizes, alpha=0.5):
    """G_fg, G_bg (Eq. 5-6) and DSC per column from the set sums; p and fractions are (sets, channels).
    Tversky for alpha != 0.5: D = 2 alpha P + 2 (1 - alpha) Y + s, G_fg = 2 (D - alpha N) / D^2,
    G_bg = 2 alpha N / D^2 with N = 2 I + s, and the index N / D (test_surgery_fixed_point.py)."""
    n = sizes[:, None].to(torch.float64)
    big_i, big_p, big_y = (n * fractions * p).sum(0), (n * p).sum(0), (n * fractions).sum(0)
    d = 2 * alpha * big_p + 2 * (1 - alpha) * big_y + SMOOTH
    numerator = 2 * big_i + SMOOTH
    return 2 * (d - alpha * numerator) / d**2, 2 * alpha * numerator / d**2, numerator / d


def _rescale(p_y, exponent):
    """s(p_y) of the docstring, with plain powers."""
    if exponent is None:
        return 0.25 / p_y.clamp_min(P_Y_MIN)
    return 0.25 * (1 - (1 - p_y) ** exponent) * (1 - p_y**exponent) / p_y


def _softmax_field(p, r, sizes, exponent):
    """F_k of the docstring at the probabilities p (sets, 3), with the G's of their global sums: (sets, 2)."""
    g_fg, g_bg, _ = _dice_terms(p[:, 1:], r[:, 1:], sizes)
    zero = p.new_zeros(1)
    b = torch.cat([zero, g_bg / 2])
    h = torch.cat([zero, (g_fg + g_bg) / 2])
    rs = r * _rescale(p, exponent)
    a = rs.sum(1, keepdim=True)
    m = (rs * p * h).sum(1, keepdim=True)
    p_b = (p * b).sum(1, keepdim=True)
    return (sizes[:, None] * p * (a * (b - p_b) - rs * h + m))[:, 1:]


def _class_weights(p, r, sizes, alpha=0.5):
    """q = (1 - alpha (TI_1 + TI_2), alpha TI_1, alpha TI_2) at p, and the indices TI; at alpha = 0.5 the
    Dice: q = (1 - (DSC_1 + DSC_2) / 2, DSC_1 / 2, DSC_2 / 2)."""
    _, _, index = _dice_terms(p[:, 1:], r[:, 1:], sizes, alpha)
    return torch.cat([1 - alpha * index.sum(0, keepdim=True), alpha * index]), index


def _softmax_loss(exponent, set_index, labels, alpha=0.5):
    dice = SoftTverskyLoss(
        softmax_helper_dim1,
        batch_dice=True,
        do_bg=False,
        smooth=SMOOTH,
        ddp=False,
        surgery=True,
        exponent=exponent,
        alpha=alpha,
    )
    return lambda x: dice(_full_logits(x)[set_index].T.unsqueeze(0), labels.view(1, 1, -1))


def test_three_class_cross_entropy_converges_to_label_mix():
    mixes, pure, *_ = SCENARIOS["poor_overlap"]
    r, _, set_index, labels = _problem(mixes, pure)

    def ce(x):
        z = _full_logits(x)[set_index].T.unsqueeze(0)
        return torch.nn.functional.cross_entropy(z, labels.unsqueeze(0), reduction="sum")

    # per set the Hessian is n_k (diag(p) - p p^T) on channels 1, 2; at p = r_k its eigenvalues lie in
    # [16.5, 64], so lr 0.015 shrinks the error by <= 0.76 per step (0.76^100 ~ 1e-12); the first step
    # alone lowers the pure-background set's logits by lr n_k / 3 = 10 (p ~ 5e-5), and they keep falling
    x0 = torch.zeros(len(r), 2, dtype=torch.float64)
    p = _softmax_probs(_descend(ce, x0, lr=0.015, steps=100))
    mixed = slice(0, len(mixes))
    torch.testing.assert_close(p[mixed], r[mixed], rtol=0, atol=1e-9)
    assert 1 - p[-1, 0] < 1e-3


@pytest.mark.parametrize("exponent", [None, 20])
def test_three_class_field_matches_autograd_gradient(exponent):
    """The closed form F_k is the loss's surgical gradient summed over the set, at non-converged points."""
    mixes, pure, *_ = SCENARIOS["good_overlap"]
    r, sizes, set_index, labels = _problem(mixes, pure)
    loss = _softmax_loss(exponent, set_index, labels)
    generator = torch.Generator().manual_seed(0)
    clamped = False
    for _ in range(3):
        x = 3 * torch.randn(len(r), 2, generator=generator, dtype=torch.float64)
        p = _softmax_probs(x)
        expected = _softmax_field(p, r, sizes, exponent)
        torch.testing.assert_close(
            _gradient(loss, x), expected, rtol=0, atol=1e-12 * expected.abs().max().item()
        )
        clamped |= bool(((p < P_Y_MIN) & (r > 0)).any())
    assert clamped  # some labelled voxels have p_y < 0.01: for n = None the clamp is part of the check


@pytest.mark.parametrize("exponent", [None, 20])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_three_class_surgery_converges_to_reweighted_label_mix(scenario, exponent):
    mixes, pure, dice_above_two_thirds, lr, steps = SCENARIOS[scenario]
    r, sizes, set_index, labels = _problem(mixes, pure)
    x0 = _start(len(mixes), pure)
    x = _descend(_softmax_loss(exponent, set_index, labels), x0, lr, steps)
    p = _softmax_probs(x)

    mixed = slice(0, len(mixes))
    start_scale = _softmax_field(_softmax_probs(x0), r, sizes, exponent)[mixed].abs().max()
    assert _softmax_field(p, r, sizes, exponent)[mixed].abs().max() < 1e-9 * start_scale
    assert (p[mixed] > P_Y_MIN).all()  # strictly inside the simplex (no Dice vertex), clamp inactive

    q, dsc = _class_weights(p, r, sizes)
    assert (q > 0).all()
    # the derived fixed point: r_ky s(p_ky) / q_y is the same for the three classes
    balance = r[mixed] * _rescale(p[mixed], exponent) / q
    torch.testing.assert_close(balance, balance.mean(1, keepdim=True).expand_as(balance), rtol=1e-9, atol=0)
    if exponent is None:
        reweighted = r[mixed] / q
        torch.testing.assert_close(p[mixed], reweighted / reweighted.sum(1, keepdim=True), rtol=0, atol=1e-9)

    # not CE's fixed point p = r: background under-predicted below Dice 2/3, over-predicted above
    assert ((p[mixed] - r[mixed]).abs().amax(1) > 0.05).all()
    if dice_above_two_thirds:
        assert (dsc > 2 / 3).all() and (q[0] < q[1:]).all()
        assert (p[mixed, 0] > r[mixed, 0]).all()
    else:
        assert (dsc < 2 / 3).all() and (q[0] > q[1:]).all()
        assert (p[mixed, 0] < r[mixed, 0]).all()

    background = len(mixes)
    assert (x[background] < x0[background]).all()  # the pure-background set moves towards background
    # the other pure sets stay at their vertices
    for row, (label, _) in enumerate(pure, start=len(mixes)):
        assert p[row, label] > 1 - 1e-6


@pytest.mark.parametrize("exponent", [None, 20])
def test_three_class_tversky_surgery_converges_to_its_shares(exponent):
    """Tversky, alpha = 0.3: the same derivation with g(y) = B - H_y e_y built from the Tversky G's, so
    r_ky s(p_ky) / q_y is one number with q = (1 - sum_c alpha TI_c, alpha TI_1, alpha TI_2): since
    alpha TI_c <= 0.3, q_0 >= 0.4 > q_1, q_2 and background is under-predicted whatever the overlap."""
    alpha = 0.3
    mixes, pure, _, lr, steps = SCENARIOS["poor_overlap"]
    r, sizes, set_index, labels = _problem(mixes, pure)
    # 3x Dice's steps: with n = 20 the Tversky sets' slowest mode still leaves 1e-4 imbalance after 300
    x = _descend(_softmax_loss(exponent, set_index, labels, alpha), _start(len(mixes), pure), lr, 3 * steps)
    p = _softmax_probs(x)
    mixed = slice(0, len(mixes))
    assert (p[mixed] > P_Y_MIN).all()
    q, _ = _class_weights(p, r, sizes, alpha)
    assert (q[0] > q[1:]).all()
    balance = r[mixed] * _rescale(p[mixed], exponent) / q
    torch.testing.assert_close(balance, balance.mean(1, keepdim=True).expand_as(balance), rtol=1e-9, atol=0)
    assert (p[mixed, 0] < r[mixed, 0]).all()


@pytest.mark.parametrize("exponent", [None, 20])
def test_nested_regions_surgery_converges_to_odds_fixed_point_per_region(exponent):
    pure = [(0, BACKGROUND_SIZE)]
    r, sizes, set_index, labels = _problem(REGION_MIXES, pure)
    rho = torch.stack([r[:, 1] + r[:, 2], r[:, 2]], 1)  # (sets, regions)
    regions = torch.stack([labels >= 1, labels >= 2]).unsqueeze(0)  # (1, 2, N), nested
    dice = SoftTverskyLoss(
        torch.sigmoid,
        batch_dice=True,
        do_bg=True,
        smooth=SMOOTH,
        ddp=False,
        surgery=True,
        exponent=exponent,
    )
    x0 = torch.zeros(len(r), 2, dtype=torch.float64)
    x0[-1] = -PURE_START
    # per region the binary test's problem (lr 100 there), with dL/dp halved by the mean over the two
    # regions: lr 200
    x = _descend(lambda z: dice(z[set_index].T.unsqueeze(0), regions), x0, lr=200.0, steps=200)
    p = torch.sigmoid(x)

    mixed = slice(0, len(REGION_MIXES))
    p_mixed, rho_mixed = p[mixed], rho[mixed]
    assert (p_mixed > 0.01).all() and (p_mixed < 0.99).all()  # strictly inside (0, 1)
    assert (x[-1] < x0[-1]).all()  # pure background moves towards p = 0 in both regions

    g_fg, g_bg, _ = _dice_terms(p, rho, sizes)
    ratio = g_fg / g_bg
    torch.testing.assert_close(
        torch.logit(p_mixed), torch.logit(rho_mixed) + torch.log(ratio), rtol=0, atol=1e-9
    )
    for c in range(2):  # monotone in rho within each region
        assert len(set(rho_mixed[:, c].tolist())) == len(rho_mixed)  # distinct: every pair is ordered
        below = rho_mixed[:, None, c] < rho_mixed[None, :, c]
        assert torch.equal(p_mixed[:, None, c] < p_mixed[None, :, c], below)
    # neither BCE's p = rho (G_fg / G_bg != 1) nor Dice's {0, 1}
    assert ((ratio - 1).abs() > 0.1).all()
    assert ((p_mixed - rho_mixed).abs() > 0.01).all()
    # nesting is not kept: where rho_k1 = rho_k2 the region with the larger ratio has the larger p
    tie = rho_mixed[:, 0] == rho_mixed[:, 1]
    assert tie.any() and (ratio.log().diff().abs() > 0.1).all()
    assert torch.equal(p_mixed[tie, 1] > p_mixed[tie, 0], (ratio[1] > ratio[0]).expand(int(tie.sum())))
