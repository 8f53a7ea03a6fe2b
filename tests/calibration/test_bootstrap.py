"""Case-level bootstrap primitives: multiplicities as documented, percentile intervals as numpy's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_surgery.calibration.bootstrap import Interval, case_weights, percentile_interval


def test_case_weights_count_the_documented_draws():
    weights = case_weights(7, 50, seed=11)
    draws = np.random.default_rng(11).integers(0, 7, size=(50, 7))
    expected = np.stack([np.bincount(row, minlength=7) for row in draws])
    assert weights.shape == (50, 7) and np.array_equal(weights, expected)
    assert np.all(weights.sum(axis=1) == 7)


def test_case_weights_are_seeded():
    assert np.array_equal(case_weights(5, 20, 3), case_weights(5, 20, 3))
    assert not np.array_equal(case_weights(5, 20, 3), case_weights(5, 20, 4))


@pytest.mark.parametrize(("n_cases", "n_resamples"), [(0, 10), (3, 0)])
def test_case_weights_refuse_empty_shapes(n_cases, n_resamples):
    with pytest.raises(ValueError, match="n_cases >= 1"):
        case_weights(n_cases, n_resamples, 0)


def test_percentile_interval_is_numpys_and_ignores_nan():
    values = np.random.default_rng(0).normal(size=999)
    with_nan = np.concatenate([values, [np.nan] * 5])
    interval = percentile_interval(with_nan, 0.9)
    assert (interval.low, interval.high) == tuple(np.percentile(values, [5.0, 95.0]))
    assert math.isnan(percentile_interval(np.full(4, np.nan)).low)


def test_interval_excludes():
    assert Interval(0.1, 0.2).excludes(0.0) and not Interval(-0.1, 0.2).excludes(0.0)
    assert not Interval(math.nan, math.nan).excludes(0.0)


# ---- BCa and the interval options (docs/calibration.md#bca) ----

from scipy import stats  # noqa: E402

from nnunet_surgery.calibration.bootstrap import (  # noqa: E402
    acceleration,
    bca_levels,
    bias_correction,
    bootstrap_bounds,
    bootstrap_interval,
)


def _ratio_cases(seed: int, n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Per-case numerator and denominator sums of a skewed ratio statistic (like a pooled metric)."""
    rng = np.random.default_rng(seed)
    size = rng.integers(50, 500, n).astype(float)
    return size * rng.lognormal(-2.0, 0.8, n), size


def _ratio(numerator: np.ndarray, denominator: np.ndarray, axis: int = -1) -> np.ndarray:
    return numerator.sum(axis=axis) / denominator.sum(axis=axis)


def test_bca_levels_match_scipys_bca_on_the_same_resamples():
    resampling = pytest.importorskip("scipy.stats._resampling")
    reference = getattr(resampling, "_bca_interval", None)
    if reference is None:
        pytest.skip("scipy's private _bca_interval moved")
    numerator, denominator = _ratio_cases(0)
    weights = case_weights(numerator.size, 2000, seed=1)
    resampled = (weights @ numerator) / (weights @ denominator)
    estimate = _ratio(numerator, denominator)
    jackknife = (numerator.sum() - numerator) / (denominator.sum() - denominator)

    def by_index(index: np.ndarray, axis: int = -1) -> np.ndarray:  # scipy resamples case indices
        index = index.astype(int)
        return _ratio(numerator[index], denominator[index], axis=axis)

    alpha_1, alpha_2, a_hat = reference(
        (np.arange(numerator.size, dtype=float),), by_index, -1, 0.025, resampled[None], 1000, np
    )
    low, high = bca_levels(estimate, resampled, jackknife, 0.95)
    assert float(acceleration(jackknife)) == pytest.approx(float(a_hat), rel=1e-9)
    assert float(low) == pytest.approx(float(np.squeeze(alpha_1)), rel=1e-9)
    assert float(high) == pytest.approx(float(np.squeeze(alpha_2)), rel=1e-9)
    interval = bootstrap_interval(estimate, resampled, jackknife)
    expected = np.percentile(resampled, [100 * float(low), 100 * float(high)])
    assert (interval.low, interval.high) == pytest.approx(tuple(expected), rel=1e-12)


def test_bca_is_the_percentile_interval_without_bias_or_skew():
    resampled = np.linspace(-1.0, 1.0, 1001)  # median 0 = the estimate, symmetric jackknife
    low, high = bootstrap_bounds(0.0, resampled, np.array([-1.0, 0.0, 1.0]))
    assert float(low) == pytest.approx(np.percentile(resampled, 2.5)) and float(high) == pytest.approx(
        np.percentile(resampled, 97.5)
    )
    percentile = bootstrap_bounds(0.0, resampled, method="percentile")
    assert tuple(map(float, percentile)) == tuple(np.percentile(resampled, [2.5, 97.5]))


def test_z0_counts_ties_half_and_a_model_against_itself_gives_zero_width():
    assert float(bias_correction(0.0, np.zeros(50))) == 0.0
    assert float(bias_correction(0.0, np.array([-1.0, 1.0, 2.0, 3.0]))) == pytest.approx(stats.norm.ppf(0.25))
    low, high = bootstrap_bounds(0.0, np.zeros(200), np.zeros(10))
    assert float(low) == float(high) == 0.0


def test_every_estimate_lies_inside_its_interval_by_construction():
    rng = np.random.default_rng(2)
    resampled = rng.normal(5.0, 1.0, (400, 3))  # far above the estimates, as for a biased plug-in error
    estimate = np.array([0.0, 5.0, 20.0])
    for method in ("bca", "percentile"):
        low, high = bootstrap_bounds(estimate, resampled, rng.normal(size=(12, 3)), method=method)
        assert np.all((low <= estimate) & (estimate <= high))
        raw_low, raw_high = bootstrap_bounds(
            estimate, resampled, rng.normal(size=(12, 3)), method=method, contain_estimate=False
        )
        assert raw_low[0] > estimate[0] and raw_high[2] < estimate[2]  # what the widening repairs


def test_a_debiased_estimate_reads_the_resamples_shifted_onto_it_without_median_bias():
    rng = np.random.default_rng(3)
    resampled = rng.gamma(2.0, 1.0, 4000)
    jackknife = rng.normal(size=30)
    reference, estimate = 2.0, 1.5  # plug-in value, and the debiased estimate 0.5 below it
    low, high = bootstrap_bounds(estimate, resampled, jackknife, reference=reference)
    a = float(acceleration(jackknife))
    levels = [stats.norm.cdf(z / (1 - a * z)) for z in stats.norm.ppf([0.025, 0.975])]
    expected = np.percentile(resampled - 0.5, [100 * levels[0], 100 * levels[1]])
    assert (float(low), float(high)) == pytest.approx(tuple(expected), rel=1e-10)


def test_nan_resamples_and_estimates_and_bad_options():
    low, high = bootstrap_bounds(np.array([1.0, np.nan]), np.full((5, 2), np.nan))
    assert np.isnan(low).all() and np.isnan(high).all()
    values = np.r_[np.linspace(0, 1, 101), [np.nan] * 7]
    interval = bootstrap_interval(0.5, values, method="percentile")
    assert (interval.low, interval.high) == tuple(np.percentile(np.linspace(0, 1, 101), [2.5, 97.5]))
    with pytest.raises(ValueError, match="method must be one of"):
        bootstrap_bounds(0.0, np.zeros(3), method="basic")
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_bounds(0.0, np.zeros(3), level=1.5)


def test_bca_covers_a_skewed_ratio_at_least_as_well_as_the_percentile_interval():
    """Pooled ratio of lognormal cases (skewed): coverage of the population ratio over 300 replicates."""
    rng = np.random.default_rng(4)
    n, replicates, resamples = 30, 300, 600
    mu, s = -2.0, 1.0
    truth = np.exp(mu + s * s / 2)  # E[size * X] / E[size], X ~ lognormal independent of the size
    size = rng.integers(50, 500, (n, replicates)).astype(float)
    numerator = size * rng.lognormal(mu, s, (n, replicates))
    weights = case_weights(n, resamples, seed=5)
    resampled = (weights @ numerator) / (weights @ size)
    estimate = numerator.sum(0) / size.sum(0)
    jackknife = (numerator.sum(0) - numerator) / (size.sum(0) - size)
    covered = {}
    for method in ("bca", "percentile"):
        low, high = bootstrap_bounds(estimate, resampled, jackknife, method=method)
        covered[method] = float(np.mean((low <= truth) & (truth <= high)))
    assert covered["bca"] >= 0.88 and covered["bca"] >= covered["percentile"], covered
