"""Float32 probabilities are ordered like their bit patterns, exactly, at 0, -0, subnormals, normals and 1;
and thresholds at those edge values come out as the brute-force search finds them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conformal_reference import FLOAT32_EDGES, brute_force_threshold

from nnunet_surgery.conformal import (
    COARSE_SHIFT,
    N_COARSE,
    ONE_KEY,
    as_probabilities,
    case_counts,
    fit_fnr_threshold,
    float32_at_least,
    key_value,
    order_keys,
    threshold_mask,
)


def test_constants_describe_float32_one():
    assert np.array(ONE_KEY, dtype=np.uint32).view(np.float32) == 1.0
    assert N_COARSE == (ONE_KEY >> COARSE_SHIFT) + 1 == 16257


@pytest.mark.parametrize(
    "start",
    [0, (1 << 23) - (1 << 16), 0x3F000000 - (1 << 16), ONE_KEY - (1 << 17)],
    ids=["subnormals", "subnormal-to-normal", "around-0.5", "below-1"],
)
def test_every_key_of_a_range_orders_like_its_value(start):
    """Exhaustive over 2^17 consecutive bit patterns (two coarse bins, crossing binade edges)."""
    keys = np.arange(start, min(start + (1 << 17), ONE_KEY + 1), dtype=np.uint32)
    values = keys.view(np.float32)
    assert np.all(np.diff(values.astype(np.float64)) > 0)  # strictly increasing in value
    np.testing.assert_array_equal(order_keys(values), keys)


def test_random_probabilities_sort_like_their_keys():
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.integers(0, ONE_KEY + 1, size=100_000, dtype=np.uint32).view(np.float32),
            rng.random(100_000).astype(np.float32),
            FLOAT32_EDGES,
        ]
    )
    keys = order_keys(values)
    by_key, by_value = values[np.argsort(keys, kind="stable")], np.sort(values, kind="stable")
    np.testing.assert_array_equal(by_key.astype(np.float64), by_value.astype(np.float64))
    head = slice(0, 2000)
    assert np.all((keys[head, None] < keys[None, head]) == (values[head, None] < values[None, head]))


def test_negative_zero_is_key_zero_and_in_every_mask():
    values = np.array([-0.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(order_keys(values), [0, 0])
    np.testing.assert_array_equal(threshold_mask(values, 0.0), [True, True])
    counts = case_counts(values, np.array([True, True]))
    assert counts.coarse[0] == 2 and counts.coarse.sum() == 2


def test_key_value_round_trips_every_edge_value():
    for value in FLOAT32_EDGES:
        key = int(order_keys(np.array([value]))[0])
        assert key_value(key) == abs(float(value))
    with pytest.raises(ValueError, match="key"):
        key_value(ONE_KEY + 1)


def test_float32_at_least_is_the_smallest_float32_not_below():
    rng = np.random.default_rng(1)
    targets = np.concatenate([rng.random(10_000), [0.0, 1.0, 0.1, 0.3, 2.0**-149, 2.0**-150, 1 - 2.0**-30]])
    result = float32_at_least(targets)
    assert result.dtype == np.float32
    assert np.all(result.astype(np.float64) >= targets)
    below = np.nextafter(result, np.float32(-1)).astype(np.float64)
    assert np.all((below < targets) | (result == 0))


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.35, 0.5])
def test_thresholds_at_edge_values_equal_brute_force(alpha):
    """Every reference value a float32 edge (subnormals, 0 and -0, neighbours of 0.5 and 1), tied
    across cases; the fitted threshold is the exact edge value the brute force finds."""
    rng = np.random.default_rng(int(alpha * 100))
    for _ in range(20):
        cases = []
        for _ in range(int(rng.integers(4, 12))):
            p = rng.choice(FLOAT32_EDGES, size=int(rng.integers(1, 8)))
            cases.append((p, np.ones(p.size, dtype=bool)))
        fitted = fit_fnr_threshold(lambda cases=cases: ([case] for case in cases), alpha)
        assert (fitted.threshold, fitted.feasible) == brute_force_threshold(cases, alpha)
        assert Fraction(fitted.threshold) in {Fraction(float(v)) for v in FLOAT32_EDGES}


def test_threshold_mask_is_the_real_comparison():
    p = np.array([0.3, np.nextafter(np.float32(0.3), np.float32(0)), 0.2999999, 1.0, 0.0], dtype=np.float32)
    for t in (0.3, 0.29999999, float(np.float32(0.3)), 0.0, 1.0):
        expected = [Fraction(float(v)) >= Fraction(t) for v in p]
        np.testing.assert_array_equal(threshold_mask(p, t), expected)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([0.5, np.nan], dtype=np.float32), "NaN"),
        (np.array([-1e-7, 0.5]), r"\[0, 1\]"),
        (np.array([1.0000001, 0.5]), r"\[0, 1\]"),
        (np.array([0, 1]), "floating"),
    ],
)
def test_bad_probabilities_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        as_probabilities("probability", values)


def test_float64_and_float16_probabilities_are_compared_as_float32():
    values = np.array([0.1, 1 / 3, 0.7], dtype=np.float64)
    np.testing.assert_array_equal(as_probabilities("p", values), values.astype(np.float32))
    half = np.array([0.1, 0.5], dtype=np.float16)
    np.testing.assert_array_equal(as_probabilities("p", half).astype(np.float64), half.astype(np.float64))
