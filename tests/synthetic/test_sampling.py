"""Label sampling: exact voxel-wise marginals P(label >= k) = q_k, and spatial coherence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from nnunet_surgery.synthetic.cases import generate_case
from nnunet_surgery.synthetic.sampling import (
    LABEL_NOISE_SIGMA,
    coherent_uniform,
    sample_labels,
    smoothing_kernel,
    variance_inflation,
)


def _nested_ramps(shape: tuple[int, int]) -> np.ndarray:
    """q_1 covering (0, 1) once over the voxels, q_2 = q_1 * another ramp (so nested)."""
    n = shape[0] * shape[1]
    q1 = ((np.arange(n) + 0.5) / n).reshape(shape)
    q2 = q1 * np.random.default_rng(1).permutation(q1.ravel()).reshape(shape)
    return np.stack([q1, q2])


@pytest.mark.parametrize("sigma", [0.0, LABEL_NOISE_SIGMA])
def test_coherent_uniform_has_uniform_marginal_at_every_voxel(sigma: float) -> None:
    rng = np.random.default_rng(0)
    fields = np.stack([coherent_uniform(rng, (16, 16), sigma) for _ in range(2000)])
    # Independent draws per voxel: Kolmogorov-Smirnov against U(0, 1) at corner, edge and centre voxels.
    for voxel in [(0, 0), (0, 7), (8, 8), (15, 15)]:
        assert stats.kstest(fields[(slice(None), *voxel)], "uniform").pvalue > 1e-4
    assert fields.min() > 0.0 and fields.max() < 1.0


def test_per_voxel_label_frequencies_are_binomial_with_probability_q() -> None:
    # Over M independent label maps the count of label >= k at a voxel is exactly Binomial(M, q_k),
    # whatever the spatial correlation within a map: every voxel must lie in its two-sided binomial
    # interval at a Bonferroni-corrected level 1e-3.
    shape, draws = (24, 24), 3000
    cumulative = _nested_ramps(shape)
    rng = np.random.default_rng(2)
    counts = np.zeros(cumulative.shape, dtype=np.int64)
    for _ in range(draws):
        labels = sample_labels(cumulative, coherent_uniform(rng, shape))
        counts += labels[None] >= np.arange(1, 3).reshape(2, 1, 1)
    level = 1e-3 / counts.size
    low = stats.binom.ppf(level / 2, draws, cumulative)
    high = stats.binom.isf(level / 2, draws, cumulative)
    assert np.all((counts >= low) & (counts <= high))
    # and the exact class probabilities follow: P(label = 1) = q_1 - q_2
    assert np.all(counts[0] >= counts[1])


def test_pooled_frequency_matches_p_star_in_bins_over_generated_cases() -> None:
    # Pooled over the voxels of a bin of p*, the label count S has mean E = sum q and, by Gebelein's
    # theorem, variance at most D * sum q (1 - q) with D = variance_inflation (the sum of the noise
    # correlations); cases are independent. Check |S - E| <= 4 sd in each of 10 bins.
    shape = (128, 128)
    inflation = variance_inflation(shape)
    edges = np.linspace(0.0, 1.0, 11)
    hits, expected, variance, voxels = (np.zeros(10) for _ in range(4))
    for index in range(60):
        case = generate_case(7, "train", index, shape, num_classes=1)
        q = case.cumulative[0].ravel()
        y = (case.labels.ravel() >= 1).astype(np.float64)
        bins = np.clip(np.digitize(q, edges) - 1, 0, 9)
        hits += np.bincount(bins, weights=y, minlength=10)
        expected += np.bincount(bins, weights=q, minlength=10)
        variance += np.bincount(bins, weights=q * (1.0 - q), minlength=10)
        voxels += np.bincount(bins, minlength=10)
    assert np.all(voxels[1:-1] > 300), "every inner bin of p* must be populated"
    assert np.all(np.abs(hits - expected) <= 4.0 * np.sqrt(inflation * variance) + 1e-9)
    # the bound is informative: frequencies agree with mean p* to within 0.05 in every bin
    assert np.all(np.abs(hits - expected) / voxels < 0.05)


def test_variance_inflation_is_the_sum_of_noise_correlations() -> None:
    kernel = smoothing_kernel((32, 32), LABEL_NOISE_SIGMA)
    spectrum = np.abs(np.fft.fft2(kernel)) ** 2
    autocorrelation = np.real(np.fft.ifft2(spectrum)) / np.sum(kernel**2)
    assert autocorrelation[0, 0] == pytest.approx(1.0)
    assert variance_inflation((32, 32)) == pytest.approx(autocorrelation.sum(), rel=1e-9)
    # a Gaussian of sd sigma in 2D: sum of correlations ~ 4 pi sigma^2
    assert variance_inflation((32, 32)) == pytest.approx(4 * math.pi * LABEL_NOISE_SIGMA**2, rel=0.05)


def test_labels_are_spatially_coherent_as_the_noise_correlation_predicts() -> None:
    # For q = 1/2 neighbours agree with probability 1/2 + arcsin(rho_1) / pi (Sheppard), rho_1 the
    # noise correlation at lag 1; independent voxels (sigma = 0) agree half of the time.
    shape = (64, 64)
    kernel = smoothing_kernel(shape, LABEL_NOISE_SIGMA)
    rho_1 = float(np.sum(kernel * np.roll(kernel, 1, axis=1)) / np.sum(kernel**2))
    half = np.full((1, *shape), 0.5)
    rng = np.random.default_rng(3)
    for sigma, expected in [(LABEL_NOISE_SIGMA, 0.5 + math.asin(rho_1) / math.pi), (0.0, 0.5)]:
        agree = np.mean(
            [
                np.mean(labels[:, 1:] == labels[:, :-1])
                for labels in (sample_labels(half, coherent_uniform(rng, shape, sigma)) for _ in range(30))
            ]
        )
        assert agree == pytest.approx(expected, abs=0.02)
    assert 0.5 + math.asin(rho_1) / math.pi > 0.75


def test_sample_labels_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="uniform must have shape"):
        sample_labels(np.zeros((1, 4, 4)), np.zeros((4, 5)))


def test_coherent_uniform_rejects_negative_sigma() -> None:
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        coherent_uniform(np.random.default_rng(0), (4, 4), -1.0)
