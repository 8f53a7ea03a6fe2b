"""Ensemble mean, spread and information measures of probability maps, accumulated one member at a time.

For M members (e.g. the 5 folds' predictions of the same case) with probabilities `p_m` of shape
`(C, *spatial)`, in nats (docs/maps.md#uncertainty-maps):

* mean `p = mean_m p_m` (as `nnUNetv2_ensemble` averages), and per channel the standard deviation
  `std = sqrt(mean_m p_m^2 - p^2)` (population, ddof 0);
* entropy `H(p)`: `-sum_c p_c log p_c` over softmax channels, or the sum over regions of the binary
  entropies `-p log p - (1 - p) log(1 - p)` for sigmoid regions (each region a Bernoulli variable);
* mutual information `MI = H(mean p) - mean_m H(p_m)` (the ensemble's epistemic part, >= 0 by concavity
  of the entropy).

Memory: three float64 arrays of one member's size, whatever M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EnsembleMaps", "EnsembleSums", "entropy"]


def _plogp(p: np.ndarray) -> np.ndarray:
    """`p log p` with `0 log 0 = 0`, float64."""
    p = np.asarray(p, dtype=np.float64)
    out = np.zeros_like(p)
    np.multiply(p, np.log(p, where=p > 0, out=np.zeros_like(p)), out=out, where=p > 0)
    return out


def entropy(probabilities: np.ndarray, *, softmax: bool) -> np.ndarray:
    """Entropy in nats per voxel of `(C, *spatial)` probabilities: softmax channels, or summed binary
    entropies of sigmoid regions. Returns `(*spatial)` float64."""
    if softmax:
        return -_plogp(probabilities).sum(axis=0)
    return -(_plogp(probabilities) + _plogp(1.0 - np.asarray(probabilities, dtype=np.float64))).sum(axis=0)


@dataclass(frozen=True)
class EnsembleMaps:
    """The maps of one case.

    Attributes:
        mean: `(C, *spatial)` mean probabilities.
        std: `(C, *spatial)` standard deviation across members (zeros for one member).
        entropy: `(*spatial)` entropy of the mean.
        mutual_information: `(*spatial)` `H(mean) - mean H(member)` (zeros for one member).
        members: M.
    """

    mean: np.ndarray
    std: np.ndarray
    entropy: np.ndarray
    mutual_information: np.ndarray
    members: int


class EnsembleSums:
    """Running sums over members: `add` each member's probabilities, then `maps()`."""

    def __init__(self, *, softmax: bool) -> None:
        self.softmax = softmax
        self.members = 0
        self._sum: np.ndarray | None = None
        self._sum_squares: np.ndarray | None = None
        self._sum_entropy: np.ndarray | None = None

    def add(self, probabilities: np.ndarray) -> None:
        """Add one member's `(C, *spatial)` probabilities (all members of one shape)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if self._sum is None:
            self._sum, self._sum_squares = p.copy(), p * p
            self._sum_entropy = entropy(p, softmax=self.softmax)
        else:
            if p.shape != self._sum.shape:
                raise ValueError(f"member shapes differ: {p.shape} vs {self._sum.shape}")
            self._sum += p
            self._sum_squares += p * p
            self._sum_entropy += entropy(p, softmax=self.softmax)
        self.members += 1

    def maps(self) -> EnsembleMaps:
        """Mean, std, entropy of the mean and mutual information."""
        if self._sum is None:
            raise ValueError("no member added")
        m = self.members
        mean = self._sum / m
        variance = np.maximum(self._sum_squares / m - mean * mean, 0.0)  # rounding can dip below 0
        total = entropy(mean, softmax=self.softmax)
        information = np.maximum(total - self._sum_entropy / m, 0.0) if m > 1 else np.zeros_like(total)
        return EnsembleMaps(mean, np.sqrt(variance), total, information, m)
