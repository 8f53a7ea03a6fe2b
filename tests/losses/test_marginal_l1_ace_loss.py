"""`MarginalL1ACELoss` on hand-binned examples; its gradient flows through the bins' mean p only."""

from __future__ import annotations

import pytest
import torch

from nnunet_surgery.losses import MarginalL1ACELoss
from nnunet_surgery.losses.ace import hard_bin_index

# Two images, two classes (channel 0 = background, p_bg = 1 - p_fg), six voxels, 20 bins of width 0.05,
# bins (lo, hi]: bin k = (0.05 k, 0.05 (k + 1)].
P_FG = [[0.02, 0.03, 0.41, 0.43, 0.88, 0.97], [0.07, 0.12, 0.13, 0.62, 0.66, 0.99]]
LABELS = [[0, 0, 1, 0, 1, 1], [0, 1, 0, 1, 0, 1]]
# (image, channel) -> {bin: [(p, y), ...]}, binned by hand:
HAND_BINS = {
    # image 0, foreground: |0.025 - 0| = 0.025, |0.42 - 0.5| = 0.08, |0.88 - 1| = 0.12, |0.97 - 1| = 0.03
    (0, 1): {0: [(0.02, 0), (0.03, 0)], 8: [(0.41, 1), (0.43, 0)], 17: [(0.88, 1)], 19: [(0.97, 1)]},
    # image 0, background (p = 0.98 0.97 0.59 0.57 0.12 0.03, y = 1 1 0 1 0 0):
    # |0.975 - 1| = 0.025, |0.58 - 0.5| = 0.08, |0.12 - 0| = 0.12, |0.03 - 0| = 0.03
    (0, 0): {19: [(0.98, 1), (0.97, 1)], 11: [(0.59, 0), (0.57, 1)], 2: [(0.12, 0)], 0: [(0.03, 0)]},
    # image 1, foreground: |0.07 - 0| = 0.07, |0.125 - 0.5| = 0.375, |0.62 - 1| = 0.38, |0.66 - 0| = 0.66,
    # |0.99 - 1| = 0.01
    (1, 1): {1: [(0.07, 0)], 2: [(0.12, 1), (0.13, 0)], 12: [(0.62, 1)], 13: [(0.66, 0)], 19: [(0.99, 1)]},
    # image 1, background (p = 0.93 0.88 0.87 0.38 0.34 0.01, y = 1 0 1 0 1 0)
    (1, 0): {18: [(0.93, 1)], 17: [(0.88, 0), (0.87, 1)], 7: [(0.38, 0)], 6: [(0.34, 1)], 0: [(0.01, 0)]},
}


def _hand_ace(hand_bins) -> float:
    """Mean over (image, class) of the unweighted mean over non-empty bins of |mean p - mean y|."""
    per_pair = []
    for bins in hand_bins.values():
        gaps = [abs(sum(p for p, _ in v) / len(v) - sum(y for _, y in v) / len(v)) for v in bins.values()]
        per_pair.append(sum(gaps) / len(gaps))
    return sum(per_pair) / len(per_pair)


def _probs_and_target():
    p_fg = torch.tensor(P_FG, dtype=torch.float64)
    probs = torch.stack([1 - p_fg, p_fg], 1)  # (2, 2, 6)
    target = torch.tensor(LABELS).unsqueeze(1)  # (2, 1, 6)
    return probs, target


def test_hand_binned_example_bins_match():
    probs, _ = _probs_and_target()
    bins = hard_bin_index(probs, 20)
    for (image, channel), hand in HAND_BINS.items():
        for voxel in range(6):
            p = probs[image, channel, voxel].item()
            expected_bin = next(
                k for k, members in hand.items() if any(abs(q - p) < 1e-12 for q, _ in members)
            )
            assert bins[image, channel, voxel].item() == expected_bin


def test_hand_binned_example_value():
    probs, target = _probs_and_target()
    loss = MarginalL1ACELoss(apply_nonlin=None, num_bins=20)(probs, target)
    # (0.06375 + 0.06375 + 0.299 + 0.299) / 4
    assert loss.item() == pytest.approx(_hand_ace(HAND_BINS), rel=1e-12)


def test_hand_binned_example_with_loss_mask():
    probs, target = _probs_and_target()
    mask = torch.ones(2, 1, 6, dtype=torch.bool)
    mask[1, 0, 2] = False  # image 1, voxel p_fg = 0.13, y = 0: bin 2 (fg) and bin 17 (bg) keep one voxel each
    hand = {key: {k: list(v) for k, v in bins.items()} for key, bins in HAND_BINS.items()}
    hand[(1, 1)][2] = [(0.12, 1)]  # |0.12 - 1| = 0.88
    hand[(1, 0)][17] = [(0.88, 0)]  # |0.88 - 0| = 0.88
    loss = MarginalL1ACELoss(apply_nonlin=None, num_bins=20)(probs, target, loss_mask=mask)
    assert loss.item() == pytest.approx(_hand_ace(hand), rel=1e-12)


def test_without_background_only_foreground_pairs_count():
    probs, target = _probs_and_target()
    loss = MarginalL1ACELoss(apply_nonlin=None, num_bins=20, do_bg=False)(probs, target)
    assert loss.item() == pytest.approx(
        _hand_ace({k: v for k, v in HAND_BINS.items() if k[1] == 1}), rel=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bin_edges_are_left_open_right_closed_with_zero_in_first_and_one_in_last(dtype):
    num_bins = 20
    k = torch.arange(1, num_bins + 1, dtype=torch.float64)
    probs = torch.cat([torch.tensor([0.0, 1.0], dtype=torch.float64), k / num_bins, k / num_bins - 0.01])
    expected = torch.cat([torch.tensor([0, num_bins - 1]), (k - 1).long(), (k - 1).long()])
    assert torch.equal(hard_bin_index(probs.to(dtype), num_bins), expected)
    above = (k[:-1] / num_bins + 1e-6).to(dtype)  # just above an inner edge: the next bin
    assert torch.equal(hard_bin_index(above, num_bins), k[:-1].long())


def _bin_centred_probs(seed: int):
    """Probabilities at bin centres +- 0.01 (>= 0.015 from every edge), labels random."""
    gen = torch.Generator().manual_seed(seed)
    centres = (torch.randint(0, 20, (2, 3, 8), generator=gen) + 0.5) / 20
    probs = (centres + (torch.rand(centres.shape, generator=gen) - 0.5) * 0.02).to(torch.float64)
    target = torch.randint(0, 3, (2, 1, 8), generator=gen)
    return probs, target


def test_gradient_flows_through_bin_mean_probability_only(onehot):
    # d loss / d p_i = sign(mean p_b - mean y_b) / (n_b * filled_bins(image, class) * pairs) for i in bin b
    probs, target = _bin_centred_probs(seed=7)
    leaf = probs.clone().requires_grad_()
    loss = MarginalL1ACELoss(apply_nonlin=None, num_bins=20)(leaf, target)
    (grad,) = torch.autograd.grad(loss, leaf)
    target_onehot = onehot(target, 3)
    bins = torch.div(probs, 0.05, rounding_mode="floor").long()  # interior points: floor = the (lo, hi] bin
    expected = torch.zeros_like(probs)
    pairs = probs.shape[0] * probs.shape[1]
    for image in range(probs.shape[0]):
        for channel in range(probs.shape[1]):
            filled = bins[image, channel].unique()
            for b in filled:
                members = bins[image, channel] == b
                gap = probs[image, channel, members].mean() - target_onehot[image, channel, members].mean()
                expected[image, channel, members] = torch.sign(gap) / (members.sum() * len(filled) * pairs)
    torch.testing.assert_close(grad, expected, rtol=1e-12, atol=1e-15)


def test_gradient_matches_finite_differences_away_from_bin_edges():
    probs, target = _bin_centred_probs(seed=8)
    loss = MarginalL1ACELoss(apply_nonlin=None, num_bins=20)
    assert torch.autograd.gradcheck(lambda p: loss(p, target), (probs.clone().requires_grad_(),), eps=1e-6)


def test_gradient_through_softmax_reaches_logits():
    probs, target = _bin_centred_probs(seed=9)
    logits = probs.log().requires_grad_()  # softmax(log p) = p / sum(p)
    loss = MarginalL1ACELoss(apply_nonlin=lambda x: torch.softmax(x, 1), num_bins=20)(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    torch.testing.assert_close(grad.sum(1), torch.zeros_like(grad.sum(1)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("num_bins", [0, -5])
def test_rejects_non_positive_number_of_bins(num_bins):
    with pytest.raises(ValueError, match="num_bins"):
        MarginalL1ACELoss(num_bins=num_bins)
