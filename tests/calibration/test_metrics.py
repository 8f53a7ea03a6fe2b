"""Metrics from statistics against independent references (sklearn, torchmetrics, netcal) and hand-derived
numbers at the bin edges p = 0, p = 1 and interior edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_surgery.calibration import (
    NLL_EPS,
    BinnedStats,
    LabelStats,
    binned_stats,
    calibration_errors,
    dice,
    label_metrics,
    label_stats,
    nan_mean,
    reliability_curve,
    top_label_inputs,
    truth_metrics,
)


def _edge_free(seed: int, n: int, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """float32 probabilities in (0.005, 0.995), none on a bin edge, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.005, 0.995, n).astype(np.float32)
    on_edge = np.isclose(p * n_bins, np.round(p * n_bins), atol=1e-4)
    p[on_edge] += np.float32(1e-3)
    return p, rng.random(n) < p**1.3  # miscalibrated on purpose


def test_hand_derived_numbers_with_p_exactly_zero_one_and_on_edges():
    p = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 0.25], dtype=np.float32)
    y = np.array([0, 1, 1, 1, 0, 1], dtype=bool)
    metrics = label_metrics(label_stats(p, y, 4))
    # bins [0, .25): {0, 0} -> gap |1/2 - 0|; [.25, .5): {.25} -> .75; [.5, .75): {.5} -> .5; [.75, 1]: {1, 1} -> 0
    assert metrics["ece"] == pytest.approx((2 * 0.5 + 0.75 + 0.5 + 0) / 6)
    assert metrics["mce"] == pytest.approx(0.75)
    assert metrics["ace"] == pytest.approx((0.5 + 0.75 + 0.5 + 0) / 4)
    keep = -math.log(1 - NLL_EPS)
    assert metrics["nll"] == pytest.approx(
        (keep - math.log(NLL_EPS) + 3 * keep + math.log(2) + math.log(4)) / 6
    )
    assert metrics["brier"] == pytest.approx((0 + 1 + 0 + 0 + 0.25 + 0.5625) / 6)


def test_all_mass_at_p_one_is_one_bin():
    stats = binned_stats(np.ones(5, dtype=np.float32), np.array([1, 1, 1, 0, 1]), 20)
    assert stats.count.tolist() == [0] * 19 + [5]
    assert calibration_errors(stats) == pytest.approx({"ece": 0.2, "mce": 0.2, "ace": 0.2})


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_nll_and_brier_match_sklearn():
    from sklearn.metrics import brier_score_loss, log_loss

    p, y = _edge_free(0, 4000)
    metrics = label_metrics(label_stats(p, y, 20))
    assert metrics["nll"] == pytest.approx(log_loss(y, p.astype(np.float64), labels=[0, 1]), rel=1e-10)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, p.astype(np.float64)), rel=1e-10)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_nll_clipping_matches_sklearn_for_float32_with_exact_zeros_and_ones():
    from sklearn.metrics import log_loss

    p = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 1 - 2**-24], dtype=np.float32)
    y = np.array([1, 0, 0, 1, 1, 0], dtype=bool)  # two confidently wrong voxels
    assert NLL_EPS == 2**-23
    ours = label_metrics(label_stats(p, y, 20))["nll"]
    assert ours == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-6)
    assert ours == pytest.approx(
        (-2 * math.log(NLL_EPS) - 2 * math.log1p(-NLL_EPS) - math.log(0.3) - math.log(NLL_EPS)) / 6
    )


def test_ece_mce_match_torchmetrics_binary_on_edge_free_data():
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import binary_calibration_error

    for n_bins in (10, 20):
        p, y = _edge_free(1, 5000, n_bins)
        ours = label_metrics(label_stats(p, y, n_bins))
        for norm, key in (("l1", "ece"), ("max", "mce")):
            reference = binary_calibration_error(
                torch.from_numpy(p.astype(np.float64)),
                torch.from_numpy(y.astype(np.int64)),
                n_bins=n_bins,
                norm=norm,
            )
            assert ours[key] == pytest.approx(float(reference), abs=1e-9)


def test_top_label_ece_matches_torchmetrics_multiclass():
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 3000)) * 2
    p = np.exp(logits) / np.exp(logits).sum(axis=0)
    reference = rng.integers(0, 3, 3000)
    confidence, correct, winner = top_label_inputs(p, reference)
    assert np.array_equal(winner, p.argmax(axis=0))
    ours = calibration_errors(binned_stats(confidence, correct, 15))
    expected = multiclass_calibration_error(
        torch.from_numpy(p.T.copy()), torch.from_numpy(reference), num_classes=3, n_bins=15, norm="l1"
    )
    assert ours["ece"] == pytest.approx(float(expected), abs=1e-6)  # torchmetrics works in float32 here


def test_ece_mce_match_netcal():
    metrics = pytest.importorskip("netcal.metrics")
    p, y = _edge_free(3, 3000)
    ours = label_metrics(label_stats(p, y, 20))
    assert ours["ece"] == pytest.approx(
        metrics.ECE(bins=20).measure(p.astype(np.float64), y.astype(int)), abs=1e-9
    )
    assert ours["mce"] == pytest.approx(
        metrics.MCE(bins=20).measure(p.astype(np.float64), y.astype(int)), abs=1e-9
    )


def test_ace_is_unweighted_mean_over_non_empty_bins():
    p, y = _edge_free(4, 2000, 10)
    counts, edges = np.histogram(p, bins=10, range=(0, 1))
    index = np.digitize(p, edges[1:-1])
    gaps = [abs(y[index == b].mean() - p[index == b].mean()) for b in range(10) if counts[b]]
    assert label_metrics(label_stats(p, y, 10))["ace"] == pytest.approx(np.mean(gaps), rel=1e-6)


def test_truth_metrics_by_definition():
    p = np.array([0.1, 0.12, 0.9, 0.6], dtype=np.float32)
    truth = np.array([0.2, 0.1, 0.8, 0.6], dtype=np.float32)
    y = np.array([0, 0, 1, 1], dtype=bool)
    result = truth_metrics(label_stats(p, y, 2, truth=truth).truth)
    assert result["mae"] == pytest.approx((0.1 + 0.02 + 0.1 + 0) / 4, rel=1e-6)
    # bins of p: [0, .5): {.1, .12} vs {.2, .1}; [.5, 1]: {.9, .6} vs {.8, .6}
    assert result["ece"] == pytest.approx((2 * abs(0.11 - 0.15) + 2 * abs(0.75 - 0.7)) / 4, rel=1e-5)
    # bins of p*: [0, .5): {.2, .1} vs y {0, 0}; [.5, 1]: {.8, .6} vs {1, 1}
    assert result["ece_truth_self"] == pytest.approx((2 * 0.15 + 2 * 0.3) / 4, rel=1e-5)


def test_empty_sets_give_nan_and_dice_follows_nnunet():
    metrics = label_metrics(LabelStats.zeros(20))
    assert all(math.isnan(metrics[key]) for key in ("nll", "ece", "mce", "ace", "brier", "dice"))
    assert dice(0, 0, 0) != dice(0, 0, 0)  # NaN for empty reference and prediction
    assert dice(0, 3, 0) == 0.0
    assert dice(4, 1, 3) == pytest.approx(8 / 12)
    mean_confidence, mean_target = reliability_curve(BinnedStats.zeros(3))
    assert np.isnan(mean_confidence).all() and np.isnan(mean_target).all()
    assert math.isnan(nan_mean([math.nan])) and nan_mean([1.0, math.nan, 3.0]) == 2.0
