"""Estimator variants against independent references: netcal's equal-frequency ECE and a numpy replica of
torch-uncertainty's adaptive split (adaptive ECE), torchmetrics' L2 calibration error (RMS), and MONAI's
CalibrationErrorMetric, calibration_binning and metric reduction (MONAI conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnunet_surgery.calibration import (
    FINE_BINS,
    MONAI_BINS,
    MONAI_REDUCTIONS,
    BinnedStats,
    adaptive_calibration_error,
    binned_stats,
    calibration_errors,
    equal_mass_stats,
    monai_bin_edges,
    monai_bin_indices,
    monai_binned_stats,
    monai_mean,
    rms_calibration_error,
)

# --------------------------------------------------------------------------- helpers


def _fine_centres(fine_index: np.ndarray) -> np.ndarray:
    """float32 probabilities at the centres (2 i + 1) / 2**17 of fine bins i (exact in float32)."""
    return ((2 * np.asarray(fine_index, dtype=np.float64) + 1) / (2 * FINE_BINS)).astype(np.float32)


def _labels(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """Labels drawn from q = p + 0.2 sin(6 pi p): miscalibrated both ways. (With gaps of one sign only,
    every partition gives the same ECE |mean y - mean p|, and a test of the bins would prove nothing.)"""
    p = np.asarray(p, dtype=np.float64)
    return rng.random(p.shape) < np.clip(p + 0.2 * np.sin(6 * np.pi * p), 0, 1)


def _ece_of_partition(p: np.ndarray, y: np.ndarray, bin_of_sample: np.ndarray, n_bins: int) -> float:
    """sum_b (n_b / N) |mean y_b - mean p_b| for a given sample -> bin map, straight from the samples."""
    total = 0.0
    for b in range(n_bins):
        members = bin_of_sample == b
        if members.any():
            total += abs(y[members].astype(np.float64).sum() - p[members].astype(np.float64).sum())
    return total / p.size


def _torch_uncertainty_ace(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    """torch-uncertainty's `_ace_compute(norm="l1")` in numpy: sort by confidence, torch.tensor_split into
    n_bins parts (np.array_split has the same sizes: the first N % n_bins parts one longer), then
    sum (n_b / N) |mean y_b - mean p_b|. (torch-uncertainty itself imports lightning at import time.)"""
    order = np.argsort(p, kind="stable")
    parts = zip(np.array_split(p[order].astype(np.float64), n_bins), np.array_split(y[order], n_bins))
    return sum(len(pb) / p.size * abs(yb.mean() - pb.mean()) for pb, yb in parts if len(pb))


# --------------------------------------------------------------------------- adaptive ECE


@pytest.mark.parametrize(("n_bins", "per_bin"), [(10, 200), (20, 100), (15, 7)])
def test_adaptive_matches_netcal_equal_frequency_bins_one_sample_per_fine_bin(n_bins, per_bin):
    metrics = pytest.importorskip("netcal.metrics")
    rng = np.random.default_rng(n_bins)
    n = n_bins * per_bin  # a multiple of n_bins: every exact equal-mass split has the same bins
    p = _fine_centres(rng.choice(FINE_BINS, size=n, replace=False))
    y = _labels(rng, p)
    ours = adaptive_calibration_error(binned_stats(p, y, FINE_BINS), n_bins)
    netcal = metrics.ECE(bins=n_bins, equal_intervals=False).measure(p.astype(np.float64), y.astype(int))
    assert ours == pytest.approx(netcal, abs=1e-12)
    assert ours == pytest.approx(_torch_uncertainty_ace(p, y, n_bins), abs=1e-12)


def test_adaptive_matches_netcal_with_ties_inside_bins():
    """Many samples per fine bin (ties), but every group of N / n_bins sorted samples in its own range of
    fine bins: the fine histogram then holds the exact equal-mass bins."""
    metrics = pytest.importorskip("netcal.metrics")
    rng = np.random.default_rng(7)
    n_bins, per_bin = 8, 250
    cuts = np.sort(rng.choice(np.arange(1, FINE_BINS), size=n_bins - 1, replace=False))
    ranges = zip(np.r_[0, cuts], np.r_[cuts, FINE_BINS])
    # each group: 250 samples on at most 5 fine bins of its range (heavy ties inside the group)
    fine_index = np.concatenate([rng.choice(rng.integers(lo, hi, size=5), size=per_bin) for lo, hi in ranges])
    p = _fine_centres(fine_index)
    y = _labels(rng, p)
    ours = adaptive_calibration_error(binned_stats(p, y, FINE_BINS), n_bins)
    netcal = metrics.ECE(bins=n_bins, equal_intervals=False).measure(p.astype(np.float64), y.astype(int))
    assert ours == pytest.approx(netcal, abs=1e-12)
    assert ours == pytest.approx(_torch_uncertainty_ace(p, y, n_bins), abs=1e-12)
    assert equal_mass_stats(binned_stats(p, y, FINE_BINS), n_bins).count.tolist() == [per_bin] * n_bins


@pytest.mark.parametrize("n", [997, 1000, 1013])
def test_adaptive_is_the_exact_midpoint_rank_split_when_fine_bins_are_distinct(n):
    """One sample per fine bin: sample of rank r in bin floor(n_bins (r + 1/2) / N), from an argsort."""
    rng = np.random.default_rng(n)
    n_bins = 12
    p = _fine_centres(rng.choice(FINE_BINS, size=n, replace=False))
    y = _labels(rng, p)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(p)] = np.arange(n)
    exact_bin = np.floor(n_bins * (rank + 0.5) / n).astype(np.int64)
    fine = binned_stats(p, y, FINE_BINS)
    assert adaptive_calibration_error(fine, n_bins) == pytest.approx(
        _ece_of_partition(p, y, exact_bin, n_bins), abs=1e-12
    )
    assert equal_mass_stats(fine, n_bins).count.tolist() == np.bincount(exact_bin, minlength=n_bins).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_approximation_stays_within_the_documented_bound(seed):
    """Continuous float32 p, several samples per fine bin: |ours - exact| <= 2 m / N, m = the samples of
    the fine bins that straddle an exact boundary; every other sample is in its exact bin."""
    rng = np.random.default_rng(seed)
    n, n_bins = 300_001, 20
    p = rng.beta(0.7, 0.5, n).astype(np.float32)
    y = _labels(rng, p)
    order = np.argsort(p, kind="stable")  # ties in any order
    exact_bin = np.empty(n, dtype=np.int64)
    exact_bin[order] = np.floor(n_bins * (np.arange(n) + 0.5) / n).astype(np.int64)
    fine_index = np.floor(p.astype(np.float64) * FINE_BINS).astype(np.int64).clip(0, FINE_BINS - 1)
    low = np.full(FINE_BINS, n_bins)
    high = np.full(FINE_BINS, -1)
    np.minimum.at(low, fine_index, exact_bin)
    np.maximum.at(high, fine_index, exact_bin)
    straddling = (high > low)[fine_index]
    assert 0 < np.unique(fine_index[straddling]).size <= n_bins - 1

    fine = binned_stats(p, y, FINE_BINS)
    count = fine.count.astype(np.int64)
    before = np.cumsum(count) - count
    ours_bin = ((n_bins * (2 * before + count)) // (2 * n))[fine_index]  # the documented rule
    assert np.array_equal(ours_bin[~straddling], exact_bin[~straddling])
    assert np.all((ours_bin >= low[fine_index]) & (ours_bin <= high[fine_index]))

    ours = adaptive_calibration_error(fine, n_bins)
    assert ours == pytest.approx(_ece_of_partition(p, y, ours_bin, n_bins), abs=1e-12)
    exact = _ece_of_partition(p, y, exact_bin, n_bins)
    assert abs(ours - exact) <= 2 * straddling.sum() / n


def test_adaptive_of_merged_fine_stats_equals_adaptive_of_all_data():
    rng = np.random.default_rng(11)
    p = rng.beta(0.3, 0.3, 50_000).astype(np.float32)
    y = _labels(rng, p)
    chunks = np.array_split(np.arange(p.size), [7_000, 31_000])
    merged = BinnedStats.zeros(FINE_BINS)
    for chunk in chunks[::-1]:  # any order
        merged = merged.merge(binned_stats(p[chunk], y[chunk], FINE_BINS))
    whole = binned_stats(p, y, FINE_BINS)
    for n_bins in (1, 10, 20, 100):
        assert adaptive_calibration_error(merged, n_bins) == pytest.approx(
            adaptive_calibration_error(whole, n_bins), abs=1e-13
        )
    assert np.array_equal(equal_mass_stats(merged, 20).count, equal_mass_stats(whole, 20).count)


def test_adaptive_with_one_bin_is_the_gap_of_the_means():
    rng = np.random.default_rng(12)
    p = rng.random(5_000).astype(np.float32)
    y = _labels(rng, p)
    expected = abs(y.mean() - p.astype(np.float64).mean())
    assert adaptive_calibration_error(binned_stats(p, y, FINE_BINS), 1) == pytest.approx(expected, abs=1e-12)


def test_point_mass_heavier_than_a_bin_leaves_bins_empty():
    # 80 samples at p = 0 (10 positives), 20 at p = 0.9 (12 positives), 4 bins of 25 samples:
    # fine bin 0: C = 0, c = 80, middle 40 -> bin floor(4 * 40 / 100) = 1; p = 0.9: middle 90 -> bin 3.
    p = np.r_[np.zeros(80), np.full(20, 0.9)].astype(np.float32)
    y = np.r_[np.ones(10), np.zeros(70), np.ones(12), np.zeros(8)].astype(bool)
    stats = equal_mass_stats(binned_stats(p, y, FINE_BINS), 4)
    assert stats.count.tolist() == [0, 80, 0, 20]
    expected = 0.8 * (10 / 80) + 0.2 * abs(12 / 20 - float(np.float32(0.9)))
    assert adaptive_calibration_error(binned_stats(p, y, FINE_BINS), 4) == pytest.approx(expected, abs=1e-12)


def test_p_exactly_one_is_in_the_last_fine_bin_and_more_bins_than_samples_is_fine():
    p = np.array([0.0, 0.25, 1.0], dtype=np.float32)
    y = np.array([0, 1, 1], dtype=bool)
    fine = binned_stats(p, y, FINE_BINS)
    assert fine.count[-1] == 1 and fine.count[0] == 1
    stats = equal_mass_stats(fine, 10)  # middles 0.5, 1.5, 2.5 of N = 3 -> bins 1, 5, 8
    assert np.flatnonzero(stats.count).tolist() == [1, 5, 8]
    assert adaptive_calibration_error(fine, 10) == pytest.approx(0.75 / 3)


def test_no_samples_give_nan_and_bad_counts_are_refused():
    assert math.isnan(adaptive_calibration_error(BinnedStats.zeros(FINE_BINS), 20))
    assert math.isnan(rms_calibration_error(BinnedStats.zeros(20)))
    assert equal_mass_stats(BinnedStats.zeros(8), 3).count.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="non-negative integers"):
        equal_mass_stats(BinnedStats(np.array([1.5, 2.0]), np.zeros(2), np.zeros(2)), 2)
    with pytest.raises(ValueError, match="n_bins"):
        adaptive_calibration_error(BinnedStats.zeros(8), 0)


# --------------------------------------------------------------------------- RMS


def _edge_free(seed: int, n: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 p in (0.005, 0.995), none on a bin edge k / n_bins (so not 1.0: torchmetrics' extra bin)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.005, 0.995, n).astype(np.float32)
    on_edge = np.isclose(p * n_bins, np.round(p * n_bins), atol=1e-4)
    p[on_edge] += np.float32(1e-3)
    return p, _labels(rng, p)


@pytest.mark.parametrize("n_bins", [10, 15, 20])
def test_rms_matches_torchmetrics_l2(n_bins):
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import binary_calibration_error

    p, y = _edge_free(n_bins, 6000, n_bins)
    reference = binary_calibration_error(
        torch.from_numpy(p.astype(np.float64)), torch.from_numpy(y.astype(np.int64)), n_bins=n_bins, norm="l2"
    )
    assert rms_calibration_error(binned_stats(p, y, n_bins)) == pytest.approx(float(reference), abs=1e-12)


def test_rms_by_the_direct_formula():
    rng = np.random.default_rng(21)
    p = rng.random(3000).astype(np.float32)
    y = _labels(rng, p)
    index = np.minimum(np.floor(p.astype(np.float64) * 10), 9).astype(int)
    terms = [
        (index == b).mean() * (y[index == b].mean() - p[index == b].astype(np.float64).mean()) ** 2
        for b in range(10)
        if (index == b).any()
    ]
    assert rms_calibration_error(binned_stats(p, y, 10)) == pytest.approx(math.sqrt(sum(terms)), abs=1e-12)
    # by hand: bins [0, .5) {0.1 (y=1), 0.3 (y=0)} gap .6, [.5, 1] {1.0 (y=1)} gap 0
    hand = binned_stats(np.array([0.1, 0.3, 1.0], dtype=np.float32), np.array([1, 0, 1], dtype=bool), 2)
    assert rms_calibration_error(hand) == pytest.approx(math.sqrt(2 / 3 * (0.5 - 0.2) ** 2), abs=1e-7)


@pytest.mark.parametrize("seed", range(5))
def test_rms_is_at_least_ece(seed):
    rng = np.random.default_rng(100 + seed)
    p = rng.beta(0.5, 0.8, 4000).astype(np.float32)
    y = _labels(rng, p)
    for stats in (binned_stats(p, y, 20), equal_mass_stats(binned_stats(p, y, FINE_BINS), 15)):
        assert rms_calibration_error(stats) >= calibration_errors(stats)["ece"] - 1e-15


# --------------------------------------------------------------------------- MONAI


def _monai_special_values(n_bins: int) -> np.ndarray:
    """p exactly 0, exactly 1, fl32(k / n_bins), MONAI's edges and their float32 neighbours."""
    k = np.arange(n_bins + 1)
    edges = monai_bin_edges(n_bins)
    values = [
        (k / n_bins).astype(np.float32),
        edges,
        np.nextafter(edges, np.float32(0)),
        np.nextafter(edges, np.float32(2)),
        np.array([0.0, 1.0, 0.5, 0.15, 0.3, 0.85], dtype=np.float32),
    ]
    return np.clip(np.concatenate(values), 0, 1).astype(np.float32)


def test_monai_edges_are_torch_linspace_bit_for_bit():
    torch = pytest.importorskip("torch")
    if torch.backends.cpu.get_cpu_capability() not in {"AVX2", "AVX512"}:
        pytest.skip("torch's linspace rounds once per edge in its FMA (AVX2 / AVX512) and CUDA kernels")
    end = 1.0 + torch.finfo(torch.float32).eps  # monai.metrics.calibration.calibration_binning
    for n_bins in [*range(1, 300), 1000, 4097, 65536]:
        expected = torch.linspace(0.0, end, n_bins + 1).numpy()
        assert np.array_equal(monai_bin_edges(n_bins), expected), n_bins


def test_monai_bins_by_hand():
    p = np.array([0.0, 0.05, 0.15, 0.5, 0.5000001, 0.95, 1.0], dtype=np.float32)
    # (lo, hi] with edges a few ulps above k / 20: k / 20 itself falls into bin k - 1; p = 0 in bin 0
    assert monai_bin_indices(p, 20).tolist() == [0, 0, 2, 9, 10, 18, 19]
    # [lo, hi): fl32(0.15) equals MONAI's edge e_3 and moves up; 0.05, 0.5, 0.95 stay below their edge
    assert monai_bin_indices(p, 20, right=True).tolist() == [0, 0, 3, 9, 10, 18, 19]
    assert monai_bin_indices(p.astype(np.float64), 20).tolist() == [0, 0, 2, 9, 10, 18, 19]  # cast first


@pytest.mark.parametrize("right", [False, True])
@pytest.mark.parametrize("n_bins", [1, 7, 10, 20, 33])
def test_monai_bin_counts_match_calibration_binning(right, n_bins):
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from monai.metrics.calibration import calibration_binning

    rng = np.random.default_rng(n_bins)
    p = np.concatenate([_monai_special_values(n_bins), rng.random(500).astype(np.float32)])
    y = rng.random(p.size) < 0.5
    _, _, counts = calibration_binning(
        torch.from_numpy(p)[None, None], torch.from_numpy(y.astype(np.float32))[None, None], n_bins, right
    )
    ours = monai_binned_stats(p, y, n_bins, right=right)
    assert ours.count.tolist() == counts[0, 0].numpy().astype(np.float64).tolist()
    searchsorted = np.searchsorted(monai_bin_edges(n_bins)[1:], p, side="right" if right else "left")
    assert np.array_equal(monai_bin_indices(p, n_bins, right=right), np.minimum(searchsorted, n_bins - 1))


def _segmentation_batch(seed: int, shape: tuple[int, ...], n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, C, *spatial) float32 softmax-like probabilities with exact 0, 1 and k / 20 values, and the
    one-hot reference."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(shape[0], n_classes, *shape[1:])) * 2
    p = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    flat = p.reshape(shape[0], n_classes, -1)
    n_voxels = flat.shape[-1]
    special = _monai_special_values(MONAI_BINS)
    for b in range(shape[0]):
        for c in range(n_classes):
            where = rng.choice(n_voxels, size=n_voxels // 3, replace=False)
            flat[b, c, where] = rng.choice(special, size=where.size)
    labels = rng.integers(0, n_classes, size=(shape[0], *shape[1:]))
    one_hot = (labels[:, None] == np.arange(n_classes).reshape(1, -1, *([1] * (len(shape) - 1)))).astype(
        np.float32
    )
    return flat.reshape(p.shape), one_hot


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize(("shape", "n_classes"), [((2, 9, 11), 3), ((3, 5, 6, 7), 2), ((2, 4, 5, 6), 3)])
def test_per_image_errors_from_our_sums_match_monai(shape, n_classes, include_background):
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from monai.metrics import CalibrationErrorMetric

    p, y = _segmentation_batch(sum(shape) + n_classes, shape, n_classes)
    first = 0 if include_background else 1
    for reduction, key in MONAI_REDUCTIONS.items():
        metric = CalibrationErrorMetric(
            num_bins=MONAI_BINS,
            include_background=include_background,
            calibration_reduction=reduction,
            metric_reduction="none",
        )
        metric(y_pred=torch.from_numpy(p), y=torch.from_numpy(y))
        expected = metric.aggregate().numpy()
        ours = np.array(
            [
                [
                    calibration_errors(monai_binned_stats(p[b, c].ravel(), y[b, c].ravel() > 0))[key]
                    for c in range(first, n_classes)
                ]
                for b in range(shape[0])
            ]
        )
        np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-6)  # MONAI sums in float32
        metric.reset()
        mean_metric = CalibrationErrorMetric(
            num_bins=MONAI_BINS, include_background=include_background, calibration_reduction=reduction
        )
        mean_metric(y_pred=torch.from_numpy(p), y=torch.from_numpy(y))
        assert monai_mean(ours) == pytest.approx(float(mean_metric.aggregate()), abs=2e-6)


def test_monai_sums_merge_over_chunks():
    rng = np.random.default_rng(31)
    p = np.concatenate([_monai_special_values(20), rng.random(1000).astype(np.float32)])
    y = rng.random(p.size) < p
    whole = monai_binned_stats(p, y)
    merged = monai_binned_stats(p[:400], y[:400]).merge(monai_binned_stats(p[400:], y[400:]))
    assert np.array_equal(whole.count, merged.count)
    assert calibration_errors(merged) == pytest.approx(calibration_errors(whole), abs=1e-14)


def test_monai_mean_matches_do_metric_reduction_with_nan():
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from monai.metrics.utils import do_metric_reduction

    errors = np.array(
        [[0.1, np.nan, 0.3], [np.nan, np.nan, np.nan], [0.2, 0.4, np.nan], [0.05, 0.07, 0.09]],
        dtype=np.float32,
    )
    expected, _ = do_metric_reduction(torch.from_numpy(errors.copy()), "mean")
    assert monai_mean(errors) == pytest.approx(float(expected), abs=1e-7)
    # MONAI returns 0.0 when nothing is defined; the report says NaN
    assert float(do_metric_reduction(torch.full((2, 2), float("nan")), "mean")[0]) == 0.0
    assert math.isnan(monai_mean(np.full((2, 2), np.nan)))
    with pytest.raises(ValueError, match="2-D"):
        monai_mean(np.zeros(3))


def test_monai_binned_stats_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        monai_binned_stats(np.zeros(3, dtype=np.float32), np.zeros(4, dtype=bool))
