"""Damped Newton's method on a convex objective whose every evaluation is one pass over the data.

Each pass returns the exact NLL, gradient and Hessian at one point (`objective.newton_stats`, summed over
every voxel of every case), so the fit is exact, not a sample's, and memory does not grow with the data.
From the identity (no scaling) each step solves `H d = -g` and is accepted when it decreases the NLL by
Armijo's rule (up to float64 rounding of the sums), else halved; scales are kept at or above
`objective.SCALE_MIN` (a temperature of at most 1000) by projection. It stops when
the Newton decrement `g^T H^-1 g / 2`, the predicted NLL still to gain, is below `tolerance` nats per voxel
(docs/recalibration.md#fitting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnunet_surgery.recalibration.objective import NewtonStats, Parameters

__all__ = ["ARMIJO", "MAX_PASSES", "TOLERANCE", "FitError", "NewtonResult", "minimise"]

#: Stop once the predicted remaining NLL gain is below this many nats per voxel (parameters then agree with
#: the exact optimum to about `sqrt(2 * TOLERANCE)`, relative).
TOLERANCE = 1e-16
#: Relative slack of the NLL comparison: float64 sums over many voxels round at about this level.
ROUNDING = 1e-12
#: Passes over the data before the fit gives up.
MAX_PASSES = 40
#: Armijo's sufficient-decrease fraction.
ARMIJO = 1e-4


class FitError(RuntimeError):
    """The fit cannot give a calibrator (no convergence, or no information in the probabilities)."""


@dataclass(frozen=True)
class NewtonResult:
    """Where the fit stopped.

    Attributes:
        theta: `(P,)` parameters.
        start: statistics at the identity (the NLL before recalibration).
        final: statistics at `theta`.
        passes: passes over the data.
        decrement: the Newton decrement at `theta`, per voxel (nats).
    """

    theta: np.ndarray
    start: NewtonStats
    final: NewtonStats
    passes: int
    decrement: float


def _direction(stats: NewtonStats, free: np.ndarray) -> np.ndarray:
    """Newton direction `-H^-1 g` in the free parameters (0 in the others); a (near-)singular Hessian gets a
    ridge of 1e-12 of its largest diagonal."""
    direction = np.zeros_like(stats.gradient)
    if not free.any():
        return direction
    hessian, gradient = stats.hessian[np.ix_(free, free)], stats.gradient[free]
    ridge = 1e-12 * max(float(np.max(np.abs(np.diag(hessian)))), 1e-300)
    try:
        direction[free] = -np.linalg.solve(hessian + ridge * np.eye(len(hessian)), gradient)
    except np.linalg.LinAlgError:
        direction[free] = -gradient / max(float(np.max(np.diag(hessian))), 1.0)
    return direction


def minimise(
    evaluate: Callable[[np.ndarray], NewtonStats],
    parameters: Parameters,
    *,
    tolerance: float = TOLERANCE,
    max_passes: int = MAX_PASSES,
    on_pass: Callable[[int, np.ndarray, NewtonStats], None] | None = None,
) -> NewtonResult:
    """Minimise the summed NLL from the identity, scales bounded below; `evaluate(theta)` is one pass.

    Projected Newton (Bertsekas): a scale at its bound whose gradient pushes it further down is held
    there, the others take a Newton step, and the step is projected back onto the bounds.

    Args:
        evaluate: exact statistics at `theta`.
        parameters: the parameter layout (its identity is the start, `lower_bounds` the bounds).
        tolerance: stop when the Newton decrement per voxel is below it.
        max_passes: give up after this many evaluations.
        on_pass: called after each pass with (pass number, theta, statistics), e.g. for progress.

    Raises:
        FitError: no voxels, or no convergence within `max_passes`.
    """
    lower = parameters.lower_bounds()
    theta = parameters.identity()
    stats = start = evaluate(theta)
    passes = 1
    if on_pass is not None:
        on_pass(passes, theta, stats)
    if start.voxels == 0:
        raise FitError("no voxels to fit on (empty region of interest in every case)")
    step = 1.0
    while True:
        free = ~((theta <= lower) & (stats.gradient > 0))
        direction = _direction(stats, free)
        decrement = max(-float(stats.gradient @ direction), 0.0) / 2 / stats.voxels
        if decrement <= tolerance:
            return NewtonResult(theta, start, stats, passes, decrement)
        if passes >= max_passes:
            raise FitError(
                f"no convergence in {max_passes} passes over the data (Newton decrement {decrement:.3g} "
                f"nats per voxel, tolerance {tolerance:g})"
            )
        candidate = np.maximum(theta + step * direction, lower)
        trial = evaluate(candidate)
        passes += 1
        if on_pass is not None:
            on_pass(passes, candidate, trial)
        slope = float(stats.gradient @ (candidate - theta))
        if trial.nll <= stats.nll + ARMIJO * slope + ROUNDING * abs(stats.nll):
            theta, stats, step = candidate, trial, 1.0
        else:
            step /= 2
