"""Bias-aware binned errors (calibration/estimators.py): rebuilt from raw samples, their expectations
derived exactly (binomial enumeration) or by numerical integration (normal approximation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from nnunet_surgery.calibration import binned_stats
from nnunet_surgery.calibration.estimators import (
    L1_CORRECTION,
    bin_gaps,
    case_variance,
    debiased_ece,
    debiased_squared_error,
    squared_error,
)


def _sums(p: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stats_ = binned_stats(p, y.astype(bool), n_bins)
    return stats_.count, stats_.sum_confidence, stats_.sum_target


def _per_bin(p: np.ndarray, y: np.ndarray, n_bins: int) -> list[tuple[float, float, int]]:
    """(ybar, pbar, n) of each non-empty bin, from scratch: bins [k/B, (k+1)/B), the last closed."""
    index = np.minimum(np.floor(p * n_bins).astype(int), n_bins - 1)
    return [(y[index == b].mean(), p[index == b].mean(), int((index == b).sum())) for b in np.unique(index)]


def test_debiased_squared_error_is_kumars_formula_from_raw_samples():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 3000)
    y = rng.random(3000) < p**1.2
    expected = sum(
        n / p.size * ((ybar - pbar) ** 2 - ybar * (1 - ybar) / (n - 1))
        for ybar, pbar, n in _per_bin(p, y, 15)
    )
    plug_in = sum(n / p.size * (ybar - pbar) ** 2 for ybar, pbar, n in _per_bin(p, y, 15))
    sums = _sums(p, y, 15)
    assert debiased_squared_error(*sums) == pytest.approx(expected, rel=1e-12)
    assert squared_error(*sums) == pytest.approx(plug_in, rel=1e-12)


def test_debiased_ece_is_the_documented_formula_from_raw_samples():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.98, 2000)
    y = rng.random(2000) < p
    expected = 0.0
    for ybar, pbar, n in _per_bin(p, y, 10):
        s2 = ybar * (1 - ybar) / (n - 1)
        gap = ybar - pbar
        expected += (
            n / p.size * (abs(gap) - 2 / math.sqrt(math.pi) * math.sqrt(s2) * math.exp(-(gap**2) / (2 * s2)))
        )
    assert debiased_ece(*_sums(p, y, 10)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("q", "p", "n"), [(0.3, 0.3, 7), (0.3, 0.25, 20), (0.9, 0.5, 3), (0.05, 0.1, 50)])
def test_the_squared_gap_correction_is_exactly_unbiased_for_one_bin(q, p, n):
    """E over Binomial(n, q) of (k/n - p)**2 - (k/n)(1 - k/n)/(n - 1) is (q - p)**2 (enumerated)."""
    k = np.arange(n + 1)
    pmf = stats.binom.pmf(k, n, q)
    ybar = k / n
    debiased = np.array([debiased_squared_error([n], [n * p], [kk]) for kk in k])
    plug_in = (ybar - p) ** 2
    assert np.dot(pmf, debiased) == pytest.approx((q - p) ** 2, abs=1e-12)
    assert np.dot(pmf, plug_in) - (q - p) ** 2 == pytest.approx(
        q * (1 - q) / n, rel=1e-9
    )  # the plug-in's bias


def _l1_bias(mu: float) -> float:
    """E|X| - c E[exp(-X**2/2)] - |mu| for X ~ N(mu, 1), by numerical integration."""

    def integrand(x: float) -> float:
        return (abs(x) - L1_CORRECTION * math.exp(-x * x / 2)) * stats.norm.pdf(x - mu)

    value = sum(integrate.quad(integrand, a, b, limit=200)[0] for a, b in ((-np.inf, 0.0), (0.0, np.inf)))
    return value - abs(mu)


def test_the_l1_correction_is_unbiased_at_zero_gap_and_its_bias_is_bounded_as_documented():
    assert _l1_bias(0.0) == pytest.approx(0.0, abs=1e-10)
    grid = np.linspace(0.0, 8.0, 41)
    biases = np.array([_l1_bias(mu) for mu in grid])
    closed = np.sqrt(2 / np.pi) * (
        np.exp(-(grid**2) / 2) - np.exp(-(grid**2) / 4)
    ) - 2 * grid * stats.norm.cdf(-grid)
    assert np.allclose(biases, closed, atol=1e-9)  # the docstring's closed form
    assert biases.max() <= 1e-10 and -0.47 <= biases.min() <= -0.45 and abs(biases[-1]) < 1e-6
    assert 0.8 <= grid[np.argmin(biases)] <= 1.4


def test_bins_with_fewer_than_two_samples_keep_their_plug_in_term_and_empty_input_is_nan():
    count, s_conf, s_target = np.array([1.0, 0.0, 4.0]), np.array([0.2, 0.0, 2.0]), np.array([1.0, 0.0, 3.0])
    _, _, s2, has = bin_gaps(count, s_conf, s_target)
    assert has.tolist() == [False, False, True] and s2[0] == 0.0
    assert debiased_squared_error(count, s_conf, s_target) == pytest.approx(
        0.2 * 0.8**2 + 0.8 * (0.25**2 - 0.75 * 0.25 / 3)
    )
    assert np.isnan(debiased_ece(np.zeros(3), np.zeros(3), np.zeros(3)))
    assert np.isnan(debiased_squared_error(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)))).all()


def test_case_variance_is_the_cluster_variance_of_the_pooled_gap():
    rng = np.random.default_rng(3)
    n_cases, n_bins = 9, 4
    count = rng.integers(0, 30, (n_cases, n_bins)).astype(float)
    s_conf = count * rng.uniform(0, 1, (n_cases, n_bins))
    s_target = np.minimum(count, np.round(s_conf + rng.normal(0, 2, (n_cases, n_bins))).clip(0))
    residual = s_target - s_conf
    total = [a.sum(axis=0) for a in (count, s_conf, s_target)]
    gap = (total[2] - total[1]) / total[0]
    expected = n_cases / (n_cases - 1) * ((residual - count * gap) ** 2).sum(axis=0) / total[0] ** 2
    got = case_variance(
        total[0],
        (residual**2).sum(axis=0),
        (residual * count).sum(axis=0),
        (count**2).sum(axis=0),
        np.float64(n_cases),
        total[1],
        total[2],
    )
    assert np.allclose(got, expected, rtol=1e-10)
    one = case_variance(total[0], total[0], total[0], total[0], np.float64(1), total[1], total[2])
    assert np.isnan(one).all()
