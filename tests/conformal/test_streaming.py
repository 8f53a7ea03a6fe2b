"""Streamed in chunks equals all at once, exactly: per-case counts are integers and each case is weighted
once, so chunking changes no bit of the statistics, the threshold or the test sums."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.conformal import (
    BinFnrStats,
    FnrStats,
    case_bin_stats,
    case_fnr_stats,
    case_mask_sums,
    conformal_threshold,
    locate_crossing,
)


def _chunks(arrays: tuple[np.ndarray, ...], size: int):
    n = arrays[0].size
    for start in range(0, n, size):
        yield tuple(array[start : start + size] for array in arrays)


def _cases(seed: int, n_cases: int = 25):
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(n_cases):
        n = int(rng.integers(500, 3000))
        truth = rng.beta(0.5, 2.0, size=n)
        reference = rng.random(n) < truth if index % 7 else np.zeros(n, dtype=bool)
        p = np.clip(truth + rng.normal(0, 0.1, size=n), 0, 1).astype(np.float32)
        cases.append((p, reference, p >= 0.5))
    return cases


def _assert_same(a, b):
    for name, value in vars(a).items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(vars(b)[name]), err_msg=name)


@pytest.mark.parametrize("size", [7, 97, 4096])
def test_chunked_statistics_threshold_and_sums_equal_whole_cases(size):
    cases = _cases(size)
    whole, chunked = FnrStats.zeros(), FnrStats.zeros()
    for p, reference, _ in cases:
        whole = whole.merge(case_fnr_stats([(p, reference)]))
        chunked = chunked.merge(case_fnr_stats(_chunks((p, reference), size)))
    _assert_same(whole, chunked)
    crossing = locate_crossing(whole, 0.1)
    assert crossing.bin is not None
    fine_whole, fine_chunked = BinFnrStats.zeros(crossing.bin), BinFnrStats.zeros(crossing.bin)
    for p, reference, _ in cases:
        fine_whole = fine_whole.merge(case_bin_stats([(p, reference)], crossing.bin))
        fine_chunked = fine_chunked.merge(case_bin_stats(_chunks((p, reference), size), crossing.bin))
    _assert_same(fine_whole, fine_chunked)
    fitted = conformal_threshold(whole, 0.1, fine_whole)
    _assert_same(fitted, conformal_threshold(chunked, 0.1, fine_chunked))
    for p, reference, segmentation in cases:
        assert case_mask_sums([(p, reference, segmentation)], fitted.threshold) == case_mask_sums(
            _chunks((p, reference, segmentation), size), fitted.threshold
        )


def test_case_order_of_merging_changes_the_threshold_at_most_by_rounding():
    """Merging in another order rounds the float64 sums differently, far inside RISK_SLACK."""
    cases = _cases(11, 40)
    forward, backward = FnrStats.zeros(), FnrStats.zeros()
    for p, reference, _ in cases:
        forward = forward.merge(case_fnr_stats([(p, reference)]))
    for p, reference, _ in reversed(cases):
        backward = backward.merge(case_fnr_stats([(p, reference)]))
    np.testing.assert_allclose(forward.coarse_weights, backward.coarse_weights, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(forward.coarse_counts, backward.coarse_counts)
