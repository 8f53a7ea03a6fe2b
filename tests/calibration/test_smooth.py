"""Smooth ECE from fine-bin sums (calibration/smooth.py) against relplot's smECE (relplot 1.0.3).

On samples moved to their fine bin's mean, the histogram value is relplot's up to float64 rounding; on
the raw samples it is within the derived `binning_bound` (docs/calibration.md#smooth-ece).
"""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import binned_stats
from nnunet_surgery.calibration.smooth import binning_bound, smooth_ece, smooth_ece_at

relplot = pytest.importorskip("relplot")

# sigma = 1 (one reflection each side), interior values (E = 1001 nodes, odd), 20 / 2002 (E = 1002,
# even: the kernel sits half a node off), 0.004 (E = 2501: the FFT path)
SIGMAS = (1.0, 0.3, 0.05, 20 / 2002, 0.004)


def _data(seed: int, n: int = 6000) -> tuple[np.ndarray, np.ndarray]:
    """Spread-out confidences with point masses at 0 and 1, labels from an over-confident model."""
    rng = np.random.default_rng(seed)
    p = rng.beta(0.6, 0.6, n)
    p[: n // 20] = 0.0
    p[n // 20 : n // 10] = 1.0
    truth = 0.5 + 0.8 * (p - 0.5)
    return p, (rng.random(n) < truth).astype(np.float64)


def _rounded(p: np.ndarray, y: np.ndarray, fine: int):
    """Fine-bin sums, and every sample moved to its bin's mean confidence."""
    sums = binned_stats(p, y.astype(bool), fine)
    index = np.minimum(np.floor(p * fine).astype(int), fine - 1)
    mean = sums.sum_confidence / np.maximum(sums.count, 1)
    return (sums.count, sums.sum_confidence, sums.sum_target), mean[index]


@pytest.mark.parametrize("fine", [2**16, 256])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_fixed_bandwidth_is_relplots_on_the_binned_samples(fine, sigma):
    p, y = _data(0)
    sums, moved = _rounded(p, y, fine)
    assert float(smooth_ece_at(*sums, sigma)) == pytest.approx(
        relplot.smECE_sigma(moved, y, sigma), rel=1e-10
    )


@pytest.mark.parametrize("fine", [2**16, 512])
def test_bandwidth_rule_is_relplots_on_the_binned_samples(fine):
    p, y = _data(1)
    sums, moved = _rounded(p, y, fine)
    value, sigma = relplot.smECE(moved, y, return_width=True)
    result = smooth_ece(*sums)
    assert float(result.sigma) == sigma
    assert float(result.value) == pytest.approx(value, rel=1e-10)


@pytest.mark.parametrize("fine", [2**16, 256])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_raw_samples_are_within_the_derived_bound(fine, sigma):
    p, y = _data(2)
    sums, _ = _rounded(p, y, fine)
    bound = float(binning_bound(*sums, sigma))
    gap = abs(float(smooth_ece_at(*sums, sigma)) - relplot.smECE_sigma(p, y, sigma))
    assert gap <= bound
    if fine == 256:
        assert gap > 1e-6  # a coarse histogram does move the value: the check can fail
    else:
        assert bound < 2e-3  # and the bound is useful at the report's 2^16 fine bins


def test_full_smooth_ece_is_relplots_on_raw_samples_when_the_margin_exceeds_the_bound():
    p, y = _data(3)
    sums, _ = _rounded(p, y, 2**16)
    result = smooth_ece(*sums)
    value, sigma = relplot.smECE(p, y, return_width=True)
    # every bisection decision differs from its threshold by more than any value can move: same path
    bounds = [float(binning_bound(*sums, s)) for s in (1.0, float(result.sigma))]
    assert float(result.margin) > max(bounds)
    assert float(result.sigma) == sigma
    assert abs(float(result.value) - value) <= bounds[1]


def test_point_masses_are_exact():
    rng = np.random.default_rng(4)
    levels = np.array([0.0, 0.013, 0.25, 0.5, 0.91, 1.0])
    p = levels[rng.integers(0, levels.size, 3000)]
    y = (rng.random(3000) < 0.9 * p + 0.05).astype(np.float64)
    sums, _ = _rounded(p, y, 1024)
    assert float(smooth_ece(*sums).value) == pytest.approx(relplot.smECE(p, y), rel=1e-10)


def test_rows_are_independent_and_empty_rows_are_nan():
    rows = [_rounded(*_data(seed, 1500), 4096)[0] for seed in (5, 6)]
    stacked = [np.stack([rows[0][k], np.zeros(4096), rows[1][k]]) for k in range(3)]
    batch = smooth_ece(*stacked)
    for index, row in ((0, rows[0]), (2, rows[1])):
        single = smooth_ece(*row)
        assert batch.value[index] == pytest.approx(float(single.value), rel=1e-12)
        assert batch.sigma[index] == float(single.sigma)
    assert np.isnan(batch.value[1]) and np.isnan(smooth_ece_at(*stacked, 0.1)[1])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="sigma must be in"):
        smooth_ece_at(np.ones(4), np.ones(4), np.ones(4), 0.0)
    with pytest.raises(ValueError, match="must share one shape"):
        smooth_ece(np.ones(4), np.ones(3), np.ones(4))
