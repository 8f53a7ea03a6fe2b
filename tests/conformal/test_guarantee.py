"""The guarantee, by simulation: over 500 random calibration / test splits of synthetic cases with known
true probabilities p* (labels sampled from p*), the mean test FNR of {p >= t_hat} is <= alpha within its
Monte Carlo error, and not below alpha - 2 / (n + 1) (Theorems 1 and 2 of Angelopoulos et al., ICLR 2024),
for calibrated probabilities (p = p*) and for miscalibrated ones: the guarantee assumes nothing about p."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.conformal import (
    BinFnrStats,
    FnrStats,
    case_bin_stats,
    case_fnr_stats,
    conformal_threshold,
    locate_crossing,
)

N_SPLITS = 500
N_CALIBRATION = 50
N_TEST = 50
VOXELS = 256
ALPHA = 0.1


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


#: model probabilities from the true logit and a per-voxel / per-case disturbance. A strictly monotone
#: map of p* alone (sigmoid(3 logit), temperature) would order the voxels as p* does and give the same
#: masks, so each miscalibrated model also reorders them.
MODELS = {
    "calibrated": lambda logit, voxel, case: _sigmoid(logit),
    "noisy": lambda logit, voxel, case: _sigmoid(logit + voxel),
    "case_biased": lambda logit, voxel, case: _sigmoid(logit + 1.5 * case),
    "overconfident_noisy": lambda logit, voxel, case: _sigmoid(3.0 * logit + voxel),
}


def _draw(rng: np.random.Generator, n_cases: int, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(n_cases, VOXELS) float32 probabilities and bool references; p* varies by case (a tenth of the
    cases nearly free of the label, so some references are empty) and by voxel."""
    offset = np.where(rng.random((n_cases, 1)) < 0.1, -9.0, rng.normal(-1.5, 1.5, size=(n_cases, 1)))
    logit = offset + rng.normal(0.0, 1.5, size=(n_cases, VOXELS))
    reference = rng.random((n_cases, VOXELS)) < _sigmoid(logit)
    voxel, case = rng.normal(size=logit.shape), rng.normal(size=(n_cases, 1))
    return MODELS[model](logit, voxel, case).astype(np.float32), reference


def _fit(p: np.ndarray, reference: np.ndarray, empty_references: str) -> float:
    stats = FnrStats.zeros()
    for case in zip(p, reference):
        stats = stats.merge(case_fnr_stats([case]))
    bin = locate_crossing(stats, ALPHA, empty_references=empty_references).bin
    refinement = None
    if bin is not None:
        refinement = BinFnrStats.zeros(bin)
        for case in zip(p, reference):
            refinement = refinement.merge(case_bin_stats([case], bin))
    return conformal_threshold(stats, ALPHA, refinement, empty_references=empty_references).threshold


def _test_fnr(p: np.ndarray, reference: np.ndarray, threshold: float, empty_references: str) -> float:
    missed = (reference & (p < threshold)).sum(axis=1)
    size = reference.sum(axis=1)
    fnr = np.where(size > 0, missed / np.maximum(size, 1), 0.0)
    return float(fnr[size > 0].mean() if empty_references == "exclude" else fnr.mean())


@pytest.mark.parametrize(
    ("model", "empty_references"),
    [
        # about 15 s each on one core: the calibrated model with the method's empty-reference rule runs in
        # the fast suite, the rest are slow
        (model, empty)
        if (model, empty) == ("calibrated", "count")
        else pytest.param(model, empty, marks=pytest.mark.slow)
        for model in MODELS
        for empty in ("count", "exclude")
    ],
)
def test_mean_test_fnr_is_at_most_alpha_and_tight(model, empty_references):
    rng = np.random.default_rng(list(MODELS).index(model) + 10 * (empty_references == "exclude"))
    split_means = np.empty(N_SPLITS)
    for split in range(N_SPLITS):
        p, reference = _draw(rng, N_CALIBRATION + N_TEST, model)
        threshold = _fit(p[:N_CALIBRATION], reference[:N_CALIBRATION], empty_references)
        split_means[split] = _test_fnr(
            p[N_CALIBRATION:], reference[N_CALIBRATION:], threshold, empty_references
        )
    mean, error = split_means.mean(), split_means.std(ddof=1) / np.sqrt(N_SPLITS)
    n = N_CALIBRATION - (0 if empty_references == "count" else round(0.1 * N_CALIBRATION))
    assert mean <= ALPHA + 3 * error, (mean, error)
    assert mean >= ALPHA - 2 / (n + 1), (mean, error)
