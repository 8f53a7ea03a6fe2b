"""Synthetic segmentation-like cases from a model of known calibration, and its population values.

Confidences take J = 80 values p_k = (k + 1/2) / J (none on an edge of the B = 10 report bins). Case c
has a random effect beta_c ~ N(0, 1) in its confidence distribution, pi_c(k) proportional to base(k)
exp(beta_c u_k) with base(k) proportional to (p_k (1 - p_k))**-0.4 (mass towards 0 and 1, as in
segmentation) and u_k = 3 (p_k - 1/2), and m_c ~ U{1500..2500} voxels drawn from it; each voxel's label
is Bernoulli(q(p_k)). Pooled over infinitely many cases (sizes independent of beta), the voxels follow
pi(k) = E_beta[pi_beta(k)], computed by Gauss-Hermite quadrature (80 nodes: exact to float64 rounding for
this smooth integrand), and every population value is a finite sum over k (`population`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

J = 80
N_BINS = 10
CONFIDENCE = (np.arange(J) + 0.5) / J
_U = 3.0 * (CONFIDENCE - 0.5)
_BASE = (CONFIDENCE * (1 - CONFIDENCE)) ** -0.4
_BIN = np.floor(CONFIDENCE * N_BINS).astype(int)

#: True frequency q(p) of each model: calibrated, over-confident (truth nearer 1/2), under-confident.
MODELS = {
    "calibrated": lambda p: p,
    "over-confident": lambda p: expit(logit(p) / 1.6),
    "under-confident": lambda p: expit(1.6 * logit(p)),
}


def case_distribution(beta: np.ndarray) -> np.ndarray:
    """(..., J) confidence distribution of cases with random effects beta (...)."""
    weights = _BASE * np.exp(np.multiply.outer(beta, _U))
    return weights / weights.sum(axis=-1, keepdims=True)


def population_distribution() -> np.ndarray:
    """(J,) pooled voxel distribution pi(k) = E_beta[pi_beta(k)], beta ~ N(0, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    return (case_distribution(nodes) * (weights / weights.sum())[:, None]).sum(axis=0)


def population(truth: np.ndarray) -> dict[str, float]:
    """Population NLL, Brier, binned ECE and squared L2 error (B = 10 equal-width bins) of q = truth."""
    pi, p = population_distribution(), CONFIDENCE
    gap = np.bincount(_BIN, pi * (truth - p), N_BINS)
    mass = np.bincount(_BIN, pi, N_BINS)
    return {
        "nll": float(np.sum(pi * -(truth * np.log(p) + (1 - truth) * np.log(1 - p)))),
        "brier": float(np.sum(pi * (truth * (1 - p) ** 2 + (1 - truth) * p**2))),
        "ece": float(np.abs(gap).sum()),
        "ce_l2sq": float(np.sum(gap**2 / mass)),
    }


def simulate(
    rng: np.random.Generator, truth: np.ndarray, replicates: int, n_cases: int
) -> dict[str, np.ndarray]:
    """Per-case sums of `replicates` independent datasets of `n_cases` cases, name -> (n_cases,
    replicates, ...): the keys of `pooled.label_case_sums`, the J confidence values as the fine bins."""
    beta = rng.normal(size=(replicates, n_cases))
    size = rng.integers(1500, 2501, size=(replicates, n_cases))
    count = rng.multinomial(size, case_distribution(beta)).astype(np.float64)
    positive = rng.binomial(count.astype(np.int64), truth).astype(np.float64)
    negative = count - positive
    to_bins = np.eye(N_BINS)[_BIN]
    sums = {
        "count": count @ to_bins,
        "sum_confidence": (count * CONFIDENCE) @ to_bins,
        "sum_target": positive @ to_bins,
        "nll_sum": -(positive * np.log(CONFIDENCE) + negative * np.log(1 - CONFIDENCE)).sum(axis=-1),
        "brier_sum": (positive * (1 - CONFIDENCE) ** 2 + negative * CONFIDENCE**2).sum(axis=-1),
        "fine_count": count,
        "fine_sum_confidence": count * CONFIDENCE,
        "fine_sum_target": positive,
    }
    residual = sums["sum_target"] - sums["sum_confidence"]
    sums.update(
        residual_sq=residual * residual,
        residual_count=residual * sums["count"],
        count_sq=sums["count"] ** 2,
        cases=np.ones((replicates, n_cases)),
        tp=np.zeros((replicates, n_cases)),
        fp=np.zeros((replicates, n_cases)),
        fn=np.zeros((replicates, n_cases)),
    )
    return {name: np.moveaxis(values, 1, 0) for name, values in sums.items()}
