"""The negative log-likelihood of scaled logits, with its exact gradient and Hessian, summed over voxels.

Temperature scaling replaces the logits `z` of a voxel by `z / T`; vector scaling by `a_k z_k + b_k` per
channel (docs/recalibration.md#methods). Both are affine in the parameters, so the NLL (softmax cross
entropy, or binary cross entropy per sigmoid region) is convex in them, and its gradient and Hessian are
sums over voxels: one pass over the data gives them exactly, in O(parameters^2) memory, and Newton's
method (`newton.py`) needs nothing else.

Parameters `theta`:

* temperature: `[beta]`, `beta = 1 / T`, shared by every channel (softmax) or region (sigmoid);
* vector, softmax with K channels: `[a_0 .. a_{K-1}, b_1 .. b_{K-1}]` (`b_0 = 0`: a bias common to every
  channel does not change a softmax);
* vector, R sigmoid regions: `[a_0 .. a_{R-1}, b_0 .. b_{R-1}]`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["METHODS", "SCALE_MIN", "Method", "NewtonStats", "Parameters", "newton_stats"]

Method = Literal["temperature", "vector"]
#: Smallest scale `1 / T` a fit may reach (T at most 1000): probabilities that carry no information on the
#: labels, or rank voxels against them, would otherwise ask for T -> infinity or a negative scale.
SCALE_MIN = 1e-3
METHODS: tuple[str, ...] = ("temperature", "vector")


@dataclass(frozen=True)
class Parameters:
    """How `theta` maps to a per-channel scale and bias, for one method and channel layout.

    Attributes:
        method: "temperature" or "vector".
        n_channels: channels of the probability maps (K softmax channels, or R regions).
        softmax: softmax channels (else independent sigmoid regions).
    """

    method: Method
    n_channels: int
    softmax: bool

    @property
    def size(self) -> int:
        """Number of free parameters."""
        if self.method == "temperature":
            return 1
        return 2 * self.n_channels - (1 if self.softmax else 0)

    def identity(self) -> np.ndarray:
        """`theta` that leaves the logits unchanged (scale 1, bias 0)."""
        theta = np.zeros(self.size)
        theta[: 1 if self.method == "temperature" else self.n_channels] = 1.0
        return theta

    def temperature_direction(self) -> np.ndarray:
        """`(P,)`: 1 for every scale, 0 for every bias (moving along it changes one common temperature)."""
        return self.identity()

    def scale_bias(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel scale `a` and bias `b`, `(C,)` each, of `theta`."""
        c = self.n_channels
        if self.method == "temperature":
            return np.full(c, float(theta[0])), np.zeros(c)
        bias = np.concatenate(([0.0], theta[c:])) if self.softmax else np.asarray(theta[c:], dtype=float)
        return np.asarray(theta[:c], dtype=float), bias

    def theta(self, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """Inverse of `scale_bias` (a temperature's scale is its first channel's)."""
        if self.method == "temperature":
            return np.array([float(scale[0])])
        return np.concatenate((scale, bias[1:] if self.softmax else bias)).astype(float)

    def lower_bounds(self) -> np.ndarray:
        """`(P,)` lower bounds: SCALE_MIN for scales (which keeps each channel's ranking of voxels, argmax and
        the 0.5 threshold), none for biases."""
        bounds = np.full(self.size, -np.inf)
        bounds[: 1 if self.method == "temperature" else self.n_channels] = SCALE_MIN
        return bounds

    def at_bound(self, theta: np.ndarray) -> bool:
        """Whether a scale sits at SCALE_MIN (the data asked for an even higher temperature)."""
        return bool(np.any(theta <= self.lower_bounds()))


@dataclass(frozen=True)
class NewtonStats:
    """NLL, gradient and Hessian at one `theta`, summed over `voxels` voxels (float64).

    Attributes:
        nll: summed negative log-likelihood (nats).
        gradient: `(P,)`.
        hessian: `(P, P)`, symmetric positive semi-definite.
        voxels: voxels summed over (a region dataset counts each voxel once, over all its regions).
    """

    nll: float
    gradient: np.ndarray
    hessian: np.ndarray
    voxels: int

    @classmethod
    def zeros(cls, size: int) -> NewtonStats:
        return cls(0.0, np.zeros(size), np.zeros((size, size)), 0)

    def merge(self, other: NewtonStats) -> NewtonStats:
        """Statistics of the union of both voxel sets."""
        return NewtonStats(
            self.nll + other.nll,
            self.gradient + other.gradient,
            self.hessian + other.hessian,
            self.voxels + other.voxels,
        )


def newton_stats(
    parameters: Parameters, theta: np.ndarray, logits: np.ndarray, target: np.ndarray
) -> NewtonStats:
    """Exact NLL, gradient and Hessian of the scaled logits of N voxels.

    Args:
        parameters: method and channel layout.
        theta: `(P,)` parameters.
        logits: `(C, N)` float64 logits (`logits_from_probabilities`).
        target: `(N,)` integer class per voxel (softmax), or `(C, N)` boolean region membership (sigmoid).

    Returns:
        The sums over the N voxels.
    """
    scale, bias = parameters.scale_bias(theta)
    scaled = logits * scale[:, None] + bias[:, None]
    if parameters.softmax:
        return _softmax_stats(parameters, logits, scaled, target)
    return _sigmoid_stats(parameters, logits, scaled, target)


def _softmax_stats(parameters: Parameters, z: np.ndarray, s: np.ndarray, y: np.ndarray) -> NewtonStats:
    """Softmax cross entropy: gradient in `s` is `q - onehot(y)`, Hessian `diag(q) - q q^T` per voxel."""
    n = z.shape[1]
    top = s.max(axis=0)
    q = np.exp(s - top)
    total = q.sum(axis=0)
    q /= total
    columns = np.arange(n)
    nll = float(np.sum(top + np.log(total) - s[y, columns]))
    residual = q.copy()
    residual[y, columns] -= 1.0
    if parameters.method == "temperature":  # s = beta z: d s / d beta = z
        mean_z = np.einsum("kn,kn->n", q, z)
        gradient = np.array([np.einsum("kn,kn->", residual, z)])
        hessian = np.array([[np.einsum("kn,kn->", q, z * z) - mean_z @ mean_z]])
        return NewtonStats(nll, gradient, hessian, n)
    u = q * z  # d s_k / d a_k = z_k, d s_k / d b_k = 1
    h_aa = np.diag(np.einsum("kn,kn->k", u, z)) - u @ u.T
    h_ab = np.diag(u.sum(axis=1)) - u @ q.T
    h_bb = np.diag(q.sum(axis=1)) - q @ q.T
    hessian = np.block([[h_aa, h_ab[:, 1:]], [h_ab[:, 1:].T, h_bb[1:, 1:]]])
    gradient = np.concatenate((np.einsum("kn,kn->k", residual, z), residual.sum(axis=1)[1:]))
    return NewtonStats(nll, gradient, hessian, n)


def _sigmoid_stats(parameters: Parameters, z: np.ndarray, s: np.ndarray, y: np.ndarray) -> NewtonStats:
    """Binary cross entropy per region, `softplus(s) - y s`: gradient `sigmoid(s) - y`, Hessian
    `sigmoid(s) (1 - sigmoid(s))` per voxel and region."""
    nll = float(np.sum(np.logaddexp(0.0, s)) - np.sum(s[y]))
    p = np.exp(-np.logaddexp(0.0, -s))
    residual = p - y
    curvature = p * (1.0 - p)
    if parameters.method == "temperature":
        gradient = np.array([np.einsum("kn,kn->", residual, z)])
        hessian = np.array([[np.einsum("kn,kn->", curvature, z * z)]])
        return NewtonStats(nll, gradient, hessian, z.shape[1])
    c = parameters.n_channels
    wz = curvature * z
    hessian = np.zeros((2 * c, 2 * c))
    index = np.arange(c)
    hessian[index, index] = np.einsum("kn,kn->k", wz, z)
    hessian[index, index + c] = hessian[index + c, index] = wz.sum(axis=1)
    hessian[index + c, index + c] = curvature.sum(axis=1)
    gradient = np.concatenate((np.einsum("kn,kn->k", residual, z), residual.sum(axis=1)))
    return NewtonStats(nll, gradient, hessian, z.shape[1])
