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
