"""Bin convention: [k/B, (k+1)/B), last bin closed; p = 0 and p = 1 exactly; agreement with numpy.histogram."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import bin_edges, bin_indices, check_n_bins


def test_p_zero_goes_to_first_bin_and_p_one_to_last_bin():
    for n_bins in (1, 2, 10, 20, 15):
        index = bin_indices(np.array([0.0, 1.0], dtype=np.float32), n_bins)
        assert index.tolist() == [0, n_bins - 1]


def test_interior_edges_belong_to_the_upper_bin():
    # k/B exactly representable for B = 4 and for 0.25, 0.5, 0.75 with B = 20: lower edge closed
    edges = np.array([0.25, 0.5, 0.75], dtype=np.float32)
    assert bin_indices(edges, 4).tolist() == [1, 2, 3]
    assert bin_indices(edges, 20).tolist() == [5, 10, 15]
    below = np.nextafter(edges, np.float32(0))
    assert bin_indices(below, 4).tolist() == [0, 1, 2]
    assert bin_indices(below, 20).tolist() == [4, 9, 14]


def test_float32_neighbours_of_non_dyadic_edges_are_binned_by_real_value():
    # float32(0.05) > 0.05 (real), its lower neighbour < 0.05: exact arithmetic decides
    p = np.float32(0.05)
    assert float(p) > 0.05
    assert bin_indices(np.array([p]), 20).tolist() == [1]
    assert bin_indices(np.array([np.nextafter(p, np.float32(0))]), 20).tolist() == [0]


def test_counts_match_numpy_histogram_including_edges():
    rng = np.random.default_rng(3)
    n_bins = 20
    p = rng.random(5000).astype(np.float32)
    p[:40] = np.array([0.0, 0.25, 0.5, 0.75, 1.0] * 8, dtype=np.float32)
    expected, _ = np.histogram(p, bins=n_bins, range=(0.0, 1.0))
    assert np.array_equal(np.bincount(bin_indices(p, n_bins), minlength=n_bins), expected)


def test_edges_are_linspace_and_bad_bin_counts_are_refused():
    assert np.allclose(bin_edges(4), [0, 0.25, 0.5, 0.75, 1])
    for bad in (0, -3, 2.5, True, "20"):
        with pytest.raises(ValueError, match="n_bins"):
            check_n_bins(bad)
