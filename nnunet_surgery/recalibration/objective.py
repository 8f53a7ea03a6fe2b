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

__all__ = ["METHODS", "SCALE_MIN", "Method", "NewtonStats", "Parameters", "Voxels", "newton_stats", "voxels"]

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


@dataclass(frozen=True)
class Voxels:
    """The voxels of one chunk with what every parameter vector shares (computed once by `voxels`).

    Attributes:
        logits: `(C, N)` float64 logits.
        squares: `(C, N)` their squares.
        target_logits: `(C,)`: per channel, the sum of its logits over the voxels whose target it is
            (softmax: class k; sigmoid: inside region k).
        target_counts: `(C,)`: the number of those voxels.
        binary: two softmax channels under temperature scaling, kept as one sigmoid channel: the logit
            difference `z_1 - z_0` with target `y == 1` (`softmax(z / T)_1 = sigmoid((z_1 - z_0) / T)`:
            the same NLL and derivatives from half the exponentials).
    """

    logits: np.ndarray
    squares: np.ndarray
    target_logits: np.ndarray
    target_counts: np.ndarray
    binary: bool = False

    @property
    def n(self) -> int:
        return self.logits.shape[1]


def voxels(parameters: Parameters, logits: np.ndarray, target: np.ndarray) -> Voxels:
    """Prepare `(C, N)` logits and their targets: `(N,)` class per voxel (softmax), or `(C, N)` boolean
    region membership (sigmoid)."""
    c = logits.shape[0]
    binary = parameters.softmax and c == 2 and parameters.method == "temperature"
    if binary:
        logits, onehot = (logits[1] - logits[0])[None], (target == 1)[None]
    elif parameters.softmax:
        onehot = target[None, :] == np.arange(c)[:, None]
    else:
        onehot = target
    target_logits = np.einsum("kn,kn->k", onehot, logits)
    return Voxels(logits, logits * logits, target_logits, onehot.sum(axis=1).astype(np.float64), binary)


def newton_stats(parameters: Parameters, theta: np.ndarray, data: Voxels) -> NewtonStats:
    """Exact NLL, gradient and Hessian of the scaled logits of N voxels.

    With `s = a z + b` per channel, the target terms are linear in `(a, b)`: `sum_v s_{y_v}` is
    `a . target_logits + b . target_counts`, so they come from `data` without touching the voxels again.

    Args:
        parameters: method and channel layout.
        theta: `(P,)` parameters.
        data: the chunk's voxels (`voxels`).

    Returns:
        The sums over the N voxels.
    """
    scale, bias = parameters.scale_bias(theta)
    if data.binary:
        scale, bias = scale[:1], bias[:1]
    scaled = data.logits * scale[:, None]
    if np.any(bias):
        scaled += bias[:, None]
    target_sum = float(scale @ data.target_logits + bias @ data.target_counts)
    if parameters.softmax and not data.binary:
        return _softmax_stats(parameters, data, scaled, target_sum)
    return _sigmoid_stats(parameters, data, scaled, target_sum)


def _softmax_stats(parameters: Parameters, data: Voxels, s: np.ndarray, target_sum: float) -> NewtonStats:
    """Softmax cross entropy: gradient in `s` is `q - onehot(y)`, Hessian `diag(q) - q q^T` per voxel."""
    top = s.max(axis=0)
    s -= top
    q = np.exp(s, out=s)
    total = q.sum(axis=0)
    q /= total
    nll = float(np.sum(top) + np.sum(np.log(total)) - target_sum)
    z = data.logits
    if parameters.method == "temperature":  # s = beta z: d s / d beta = z
        mean_z = np.einsum("kn,kn->n", q, z)
        gradient = np.array([mean_z.sum() - data.target_logits.sum()])
        hessian = np.array([[np.einsum("kn,kn->", q, data.squares) - mean_z @ mean_z]])
        return NewtonStats(nll, gradient, hessian, data.n)
    u = q * z  # d s_k / d a_k = z_k, d s_k / d b_k = 1
    sum_u, sum_q = u.sum(axis=1), q.sum(axis=1)
    h_aa = np.diag(np.einsum("kn,kn->k", q, data.squares)) - u @ u.T
    h_ab = np.diag(sum_u) - u @ q.T
    h_bb = np.diag(sum_q) - q @ q.T
    hessian = np.block([[h_aa, h_ab[:, 1:]], [h_ab[:, 1:].T, h_bb[1:, 1:]]])
    gradient = np.concatenate((sum_u - data.target_logits, (sum_q - data.target_counts)[1:]))
    return NewtonStats(nll, gradient, hessian, data.n)


def _sigmoid_stats(parameters: Parameters, data: Voxels, s: np.ndarray, target_sum: float) -> NewtonStats:
    """Binary cross entropy per region, `softplus(s) - y s`: gradient `sigmoid(s) - y`, Hessian
    `sigmoid(s) (1 - sigmoid(s))` per voxel and region."""
    softplus = np.logaddexp(0.0, s)
    nll = float(np.sum(softplus) - target_sum)
    p = np.exp(s - softplus, out=softplus)  # sigmoid(s) = exp(s - softplus(s))
    curvature = p * (1.0 - p)
    z = data.logits
    if parameters.method == "temperature":
        gradient = np.array([np.einsum("kn,kn->", p, z) - data.target_logits.sum()])
        hessian = np.array([[np.einsum("kn,kn->", curvature, data.squares)]])
        return NewtonStats(nll, gradient, hessian, data.n)
    c = parameters.n_channels
    hessian = np.zeros((2 * c, 2 * c))
    index = np.arange(c)
    hessian[index, index] = np.einsum("kn,kn->k", curvature, data.squares)
    hessian[index, index + c] = hessian[index + c, index] = np.einsum("kn,kn->k", curvature, z)
    hessian[index + c, index + c] = curvature.sum(axis=1)
    gradient = np.concatenate(
        (np.einsum("kn,kn->k", p, z) - data.target_logits, p.sum(axis=1) - data.target_counts)
    )
    return NewtonStats(nll, gradient, hessian, data.n)
