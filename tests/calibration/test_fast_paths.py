"""Fast paths equal the reference computations exactly: float32 bins, joint outcome counts, two channels."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import (
    NLL_EPS,
    ProbabilityError,
    bin_indices,
    binned_stats,
    check_probabilities,
    label_stats,
    top_label_inputs,
)
from nnunet_surgery.calibration.binning import lower_edges
from nnunet_surgery.calibration.validate import SUM_ATOL

BIN_COUNTS = (1, 2, 3, 7, 10, 15, 20, 49, 100, 127, 128, 255, 256, 1000, 12345, 2**20)


def _around_every_edge(n_bins: int) -> np.ndarray:
    """float32 values at, just below and just above every edge k / n_bins (rounded either way)."""
    exact = np.arange(n_bins + 1) / n_bins
    nearest = exact.astype(np.float32)
    down = np.nextafter(nearest, np.float32(-1))
    up = np.nextafter(nearest, np.float32(2))
    values = np.concatenate([nearest, down, up, np.nextafter(down, np.float32(-1)), np.nextafter(up, 2)])
    return np.clip(values, 0, 1).astype(np.float32)


def _float64_floor(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """The definition: floor(p * n_bins) in float64 (exact for float32 p), p = 1 in the last bin."""
    return np.clip(np.floor(confidence.astype(np.float64) * n_bins), 0, n_bins - 1).astype(np.intp)


@pytest.mark.parametrize("n_bins", BIN_COUNTS)
def test_float32_bins_equal_float64_bins_at_and_around_every_edge(n_bins):
    rng = np.random.default_rng(n_bins)
    p = np.concatenate([_around_every_edge(n_bins), rng.random(20000, dtype=np.float32)])
    assert np.array_equal(bin_indices(p, n_bins), _float64_floor(p, n_bins))
    assert np.array_equal(bin_indices(p, n_bins), bin_indices(p.astype(np.float64), n_bins))


@pytest.mark.parametrize("n_bins", BIN_COUNTS)
def test_lower_edges_are_the_smallest_float32_not_below_k_over_n(n_bins):
    edges = lower_edges(n_bins)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    k = np.arange(1, n_bins)
    inner = edges[1:-1].astype(np.float64)
    below = np.nextafter(edges[1:-1], np.float32(-1)).astype(np.float64)
    assert np.all(inner * n_bins >= k) and np.all(below * n_bins < k)  # exact in float64


def test_float32_bins_clip_values_outside_the_unit_interval():
    p = np.array([-0.5, -1e-7, 0.0, 1.0, 1 + 1e-7, 3.0], dtype=np.float32)
    assert bin_indices(p, 10).tolist() == [0, 0, 0, 9, 9, 9]


def test_boolean_targets_give_the_weighted_bincount_sums():
    rng = np.random.default_rng(4)
    p = np.concatenate([_around_every_edge(20), rng.random(5000, dtype=np.float32)])
    outcome = rng.random(p.size) < p
    fast = binned_stats(p, outcome, 20)
    index = _float64_floor(p, 20)
    assert np.array_equal(fast.count, np.bincount(index, minlength=20).astype(np.float64))
    assert np.array_equal(fast.sum_target, np.bincount(index, weights=outcome.astype(float), minlength=20))
    assert np.array_equal(fast.sum_confidence, np.bincount(index, weights=p.astype(float), minlength=20))
    assert np.array_equal(binned_stats(p, outcome.astype(np.float64), 20).sum_target, fast.sum_target)


def test_nll_and_brier_sums_equal_their_definition_at_every_magnitude():
    """label_stats takes p_y = 1 - |p - y| from the residual; the definition selects p or 1 - p. Equal bit
    for bit over float32 p at 0, 1, subnormals, every power of two and its neighbours, both outcomes."""
    powers = np.ldexp(np.float32(1), np.arange(-149, 1)).astype(np.float32)
    special = np.concatenate(
        [powers, np.nextafter(powers, np.float32(0)), np.nextafter(powers, np.float32(2))]
    )
    values = np.clip(np.concatenate([[0.0, 1.0], special, 1 - special]), 0, 1).astype(np.float32)
    rng = np.random.default_rng(0)
    p = np.concatenate([values, values, rng.random(5000, dtype=np.float32)])
    y = np.concatenate([np.zeros(values.size, bool), np.ones(values.size, bool), rng.random(5000) < 0.5])
    p64 = p.astype(np.float64)
    p_y = np.clip(np.where(y, p64, 1.0 - p64), NLL_EPS, 1.0 - NLL_EPS)
    stats = label_stats(p, y, 10, fine_factor=7)
    assert stats.nll_sum == -float(np.log(p_y).sum())
    assert stats.brier_sum == float(np.sum((p64 - y) ** 2))
    reference = binned_stats(p, y, 70)
    for field in ("count", "sum_confidence", "sum_target"):
        assert np.array_equal(getattr(stats.fine, field), getattr(reference, field))


def test_two_channel_top_label_equals_argmax_including_ties():
    rng = np.random.default_rng(5)
    p1 = rng.random(4000, dtype=np.float32)
    p1[:50] = 0.5
    p = np.stack([1 - p1, p1])
    reference = rng.integers(0, 2, p1.size)
    confidence, correct, winner = top_label_inputs(p, reference)
    argmax = p.argmax(axis=0)
    assert np.array_equal(winner, argmax) and np.issubdtype(winner.dtype, np.integer)
    assert np.array_equal(confidence, np.take_along_axis(p, argmax[None], axis=0)[0])
    assert np.array_equal(correct, argmax == reference)


def test_check_returns_the_value_range():
    p = np.array([[0.2, 0.7], [0.8, 0.3]], dtype=np.float32)
    assert check_probabilities(p, softmax=True) == (pytest.approx(0.2), pytest.approx(0.8))


@pytest.mark.parametrize("offset", [-1e-6, 1e-6])
def test_softmax_sum_near_the_tolerance_is_decided_in_float64(offset):
    # float32 sums cannot resolve SUM_ATOL +- 1e-6; the float64 recheck decides as before
    p0 = np.full(8, 0.25)
    p = np.stack([p0, 1 - p0 + SUM_ATOL + offset]).astype(np.float32)
    deviation = float(np.abs(p.sum(axis=0, dtype=np.float64) - 1).max())
    if deviation > SUM_ATOL:
        with pytest.raises(ProbabilityError, match="deviate"):
            check_probabilities(p, softmax=True)
    else:
        check_probabilities(p, softmax=True)
