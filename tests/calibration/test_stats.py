"""Sufficient statistics: merge(stats(A), stats(B)) == stats(A u B); zeros is the identity."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import (
    BinnedStats,
    LabelStats,
    binned_stats,
    confusion_counts,
    label_metrics,
    label_stats,
    truth_metrics,
)


def _data(seed: int, n: int):
    rng = np.random.default_rng(seed)
    p = rng.random(n).astype(np.float32)
    y = rng.random(n) < p
    truth = np.clip(p + rng.normal(scale=0.05, size=n), 0, 1).astype(np.float32)
    return p, y, truth


def _assert_same(a: LabelStats, b: LabelStats) -> None:
    assert np.array_equal(a.reliability.count, b.reliability.count)
    assert np.allclose(a.reliability.sum_confidence, b.reliability.sum_confidence, rtol=1e-12)
    assert np.allclose(a.reliability.sum_target, b.reliability.sum_target, rtol=1e-12)
    assert a.nll_sum == pytest.approx(b.nll_sum, rel=1e-12)
    assert a.brier_sum == pytest.approx(b.brier_sum, rel=1e-12)
    assert (a.tp, a.fp, a.fn) == (b.tp, b.fp, b.fn)
    assert a.truth.abs_error_sum == pytest.approx(b.truth.abs_error_sum, rel=1e-12)
    assert np.array_equal(a.truth.truth_reliability.count, b.truth.truth_reliability.count)
    assert np.allclose(a.truth.versus_truth.sum_target, b.truth.versus_truth.sum_target, rtol=1e-12)


def test_merge_of_parts_equals_statistics_of_the_union():
    p, y, truth = _data(0, 3000)
    seg = p > 0.5
    whole = label_stats(p, y, 15, truth=truth, counts=confusion_counts(seg, y))
    cut = 1234
    parts = [
        label_stats(p[s], y[s], 15, truth=truth[s], counts=confusion_counts(seg[s], y[s]))
        for s in (slice(0, cut), slice(cut, None))
    ]
    merged = parts[0].merge(parts[1])
    _assert_same(merged, whole)
    assert label_metrics(merged) == pytest.approx(label_metrics(whole), rel=1e-12)
    assert truth_metrics(merged.truth) == pytest.approx(truth_metrics(whole.truth), rel=1e-12)


def test_merge_is_order_independent_and_zeros_is_identity():
    p, y, truth = _data(1, 500)
    a = label_stats(p[:200], y[:200], 10, truth=truth[:200])
    b = label_stats(p[200:], y[200:], 10, truth=truth[200:])
    _assert_same(a.merge(b), b.merge(a))
    _assert_same(LabelStats.zeros(10, with_truth=True).merge(a), a)


def test_merge_refuses_different_bins_and_truth_mismatch():
    with pytest.raises(ValueError, match="bins"):
        BinnedStats.zeros(10).merge(BinnedStats.zeros(20))
    with pytest.raises(ValueError, match="truth"):
        LabelStats.zeros(10).merge(LabelStats.zeros(10, with_truth=True))


def test_binned_stats_shapes_must_agree():
    with pytest.raises(ValueError, match="one shape"):
        binned_stats(np.zeros(3), np.zeros(4), 5)
    with pytest.raises(ValueError, match="1-D"):
        binned_stats(np.zeros((2, 3)), np.zeros((2, 3)), 5)


def test_confusion_counts_by_hand():
    prediction = np.array([1, 1, 0, 0, 1], dtype=bool)
    reference = np.array([1, 0, 1, 0, 1], dtype=bool)
    assert confusion_counts(prediction, reference) == (2.0, 1.0, 1.0)
