"""bench/fixed_point.py's fixed points, against the conditions that define them (docs/surgery.md, "Fixed
points of indistinguishable voxels") and the closed forms where they exist. No training."""

from __future__ import annotations

import numpy as np
import pytest


def _mixes(k: int, n: int, seed: int) -> np.ndarray:
    """`(k, n)` label mixes, every class present (Dirichlet)."""
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n).T


def _odds(x: np.ndarray) -> np.ndarray:
    return x / (1 - x)


def _rescale(p: np.ndarray, exponent: float | None) -> np.ndarray:
    """s(p_y) written out with plain powers (docs/surgery.md, "Multi-class rescale"), its limit 0.25 n at
    p_y = 0; for n = None the clamp at p_y = 0.01."""
    if exponent is None:
        return 0.25 / np.maximum(p, 0.01)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = 0.25 * (1 - (1 - p) ** exponent) * (1 - p**exponent) / p
    return np.where(p == 0, 0.25 * exponent, s)


@pytest.mark.parametrize("exponent", [None, 20.0, 2.0])
def test_three_classes_satisfy_the_stationarity_condition(fixed_point, exponent):
    """r_y s(p_y) / q_y is one number across y (the summed surgical Dice gradient of the set is zero)."""
    r = _mixes(3, 200, seed=1)
    dice = np.array([0.9, 0.7])
    q = np.array([1 - dice.sum() / 2, *(dice / 2)])
    p = fixed_point.softmax_fixed_point(r, dice / 2, exponent)
    np.testing.assert_allclose(p.sum(0), 1, atol=1e-12)
    balance = r * _rescale(p, exponent) / q[:, None]
    inside = p > 1e-9
    assert inside.all(0).any()  # some sets are interior points (rare classes go to the face for finite n)
    lam = np.array([balance[inside[:, i], i].mean() for i in range(r.shape[1])])
    np.testing.assert_allclose(balance[inside], np.broadcast_to(lam, r.shape)[inside], rtol=1e-6)
    # a class at p_y = 0 is one whose largest possible pull r_y s(0+) / q_y cannot reach lambda
    edge = r * _rescale(np.zeros_like(r), exponent) / q[:, None]
    assert (edge[~inside] <= np.broadcast_to(lam, r.shape)[~inside] * (1 + 1e-6)).all()


def test_three_classes_closed_form_without_decline(fixed_point):
    """n = None and every p_y >= 0.01 (clamp inactive): s = 0.25 / p, so p_y = (r_y / q_y) / sum_j r_j / q_j."""
    r = _mixes(3, 200, seed=2) * 0.9 + 0.1 / 3  # keeps every p_y well above the clamp
    dice = np.array([0.8, 0.6])
    q = np.array([1 - dice.sum() / 2, *(dice / 2)])
    expected = (r / q[:, None]) / (r / q[:, None]).sum(0)
    np.testing.assert_allclose(fixed_point.softmax_fixed_point(r, dice / 2, None), expected, atol=1e-9)


def test_three_classes_are_calibrated_only_at_dice_two_thirds(fixed_point):
    """n = None: q uniform at DSC = 2/3 makes p = r; with better Dice background takes over the mixed sets."""
    r = _mixes(3, 50, seed=3) * 0.9 + 0.1 / 3
    at = fixed_point.softmax_fixed_point(r, np.array([1 / 3, 1 / 3]), None)
    np.testing.assert_allclose(at, r, atol=1e-9)
    above = fixed_point.softmax_fixed_point(r, np.array([0.85, 0.85]) / 2, None)
    assert (above[0] > r[0]).all()


def test_no_interior_fixed_point_once_the_dice_values_sum_to_two(fixed_point):
    assert np.isnan(
        fixed_point.softmax_fixed_point(_mixes(4, 5, seed=4), np.array([0.9, 0.6, 0.5]) / 2, 20.0)
    ).all()


@pytest.mark.parametrize("exponent", [None, 20.0])
@pytest.mark.parametrize("dice", [0.4, 0.75, 0.95])
def test_two_channels_and_one_region_give_the_odds_formula(fixed_point, exponent, dice):
    """Two softmax channels (Listing 1) and one sigmoid region: odds(p) = odds(r) (2 / DSC - 1), any n."""
    r1 = np.linspace(0.03, 0.97, 41)
    expected = _odds(r1) * (2 / dice - 1)
    softmax = fixed_point.softmax_fixed_point(np.stack([1 - r1, r1]), np.array([dice / 2]), exponent)
    np.testing.assert_allclose(_odds(softmax[1]), expected, rtol=1e-6)
    np.testing.assert_allclose(_odds(fixed_point.region_fixed_point(r1, dice / 2)), expected, rtol=1e-12)


def test_overlap_share_is_half_the_dice_and_alpha_times_the_tversky_index(fixed_point):
    """q = alpha TI: DSC / 2 at alpha = 0.5 (Dice written as 2 TP / (P + Y)), and for alpha = 0.3 the
    Tversky index TP / (TP + 0.3 FP + 0.7 FN) counted with boolean masks on hard predictions."""
    rng = np.random.default_rng(5)
    p = rng.random((7, 9))
    y = (rng.random((7, 9)) < 0.4).astype(float)
    dice = 2 * (p * y).sum() / (p.sum() + y.sum())
    assert fixed_point.overlap_share(p, y, 0.5) == pytest.approx(dice / 2, rel=1e-12)
    hard = rng.random(50) < 0.5
    truth = rng.random(50) < 0.5
    tp, fp, fn = (hard & truth).sum(), (hard & ~truth).sum(), (~hard & truth).sum()
    share = fixed_point.overlap_share(hard.astype(float), truth.astype(float), 0.3)
    assert share == pytest.approx(0.3 * tp / (tp + 0.3 * fp + 0.7 * fn), rel=1e-12)
