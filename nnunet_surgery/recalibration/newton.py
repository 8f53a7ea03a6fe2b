"""Damped Newton's method on a convex objective whose every evaluation is one pass over the data.

A pass returns the exact NLL, gradient and Hessian (`objective.newton_stats`, summed over every voxel of
every case) at a few points at once: reading the cases costs more than the arithmetic, so each pass
evaluates several candidates (docs/recalibration.md#fitting):

1. the first pass evaluates temperatures on a log grid (`GRID`, the identity among them) and starts from
   a 1-D Newton step along the temperature direction from the best of them, kept inside the bracket
   where the directional derivative changes sign;
2. every later pass evaluates the Newton step `-H^-1 g` from the current point (`STEPS`) and moves
   there if it decreases the NLL by Armijo's rule (up to float64 rounding of the sums); if not, the
   next pass tries `SHORTER_STEPS` at once, and moves to the longest that does;
3. scales are kept at or above `objective.SCALE_MIN` (a temperature of at most 1000) by projection;
4. it stops when the Newton decrement `g^T H^-1 g / 2`, the predicted NLL still to gain, is below
   `tolerance` nats per voxel.

The fit is exact, not a sample's, and memory does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nnunet_surgery.recalibration.objective import NewtonStats, Parameters

__all__ = ["ARMIJO", "GRID", "MAX_PASSES", "STEPS", "TOLERANCE", "FitError", "NewtonResult", "minimise"]

#: Stop once the predicted remaining NLL gain is below this many nats per voxel (parameters then agree with
#: the exact optimum to about `sqrt(2 * TOLERANCE)`, relative).
TOLERANCE = 1e-16
#: Relative slack of the NLL comparison: float64 sums over many voxels round at about this level.
ROUNDING = 1e-12
#: Passes over the data before the fit gives up.
MAX_PASSES = 40
#: Armijo's sufficient-decrease fraction.
ARMIJO = 1e-4
#: Scales (1 / T) the first pass evaluates; 1.0 (the identity) must be among them.
GRID = (0.25, 0.5, 1.0, 2.0)
#: Step lengths along the Newton direction evaluated in one pass, longest first: the full step (nearly
#: always taken after the first pass); after a rejection, the next pass tries these shorter ones at once.
STEPS = (1.0,)
SHORTER_STEPS = (0.5, 0.25, 0.125)


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


def _temperature_start(
    parameters: Parameters, grid: list[np.ndarray], stats: list[NewtonStats]
) -> np.ndarray:
    """A 1-D Newton step along the temperature direction `u` (all scales alike) from the best grid point,
    kept inside the bracket of grid points where `g . u` changes sign."""
    direction = parameters.temperature_direction()
    slopes = [float(s.gradient @ direction) for s in stats]
    order = np.argsort([float(theta @ direction) for theta in grid])
    best = min(range(len(grid)), key=lambda i: stats[i].nll)
    curvature = float(direction @ stats[best].hessian @ direction)
    if curvature <= 0:
        return grid[best]
    step = -slopes[best] / curvature
    position = list(order).index(best)
    # the neighbours on the side the step goes to bound it (the derivative changes sign in between)
    neighbour = position + (1 if step > 0 else -1)
    if 0 <= neighbour < len(order):
        other = grid[order[neighbour]]
        limit = float((other - grid[best]) @ direction) / float(direction @ direction)
        step = min(step, 0.9 * limit) if step > 0 else max(step, 0.9 * limit)
    return np.maximum(grid[best] + step * direction, parameters.lower_bounds())


def minimise(
    evaluate: Callable[[list[np.ndarray]], list[NewtonStats]],
    parameters: Parameters,
    *,
    tolerance: float = TOLERANCE,
    max_passes: int = MAX_PASSES,
    on_pass: Callable[[int, np.ndarray, NewtonStats], None] | None = None,
) -> NewtonResult:
    """Minimise the summed NLL, scales bounded below; `evaluate(thetas)` is one pass over the data.

    Projected Newton (Bertsekas): a scale at its bound whose gradient pushes it further down is held
    there, the others take a Newton step, and the step is projected back onto the bounds.

    Args:
        evaluate: exact statistics at each of a list of parameter vectors, in one pass.
        parameters: the parameter layout (its identity is the reference point, `lower_bounds` the bounds).
        tolerance: stop when the Newton decrement per voxel is below it.
        max_passes: give up after this many passes.
        on_pass: called after each pass with (pass number, the point moved to, its statistics).

    Raises:
        FitError: no voxels, or no convergence within `max_passes`.
    """
    lower = parameters.lower_bounds()
    grid = [parameters.identity() * scale for scale in GRID]
    grid_stats = evaluate(grid)
    start = grid_stats[GRID.index(1.0)]
    if start.voxels == 0:
        raise FitError("no voxels to fit on (empty region of interest in every case)")
    best = min(range(len(grid)), key=lambda i: grid_stats[i].nll)
    theta, stats = grid[best], grid_stats[best]
    passes = 1
    if on_pass is not None:
        on_pass(passes, theta, stats)
    candidates = [_temperature_start(parameters, grid, grid_stats)]
    steps = list(STEPS)
    while True:
        free = ~((theta <= lower) & (stats.gradient > 0))
        direction = _direction(stats, free)
        decrement = max(-float(stats.gradient @ direction), 0.0) / 2 / stats.voxels
        if decrement <= tolerance and not candidates:
            return NewtonResult(theta, start, stats, passes, decrement)
        if passes >= max_passes:
            raise FitError(
                f"no convergence in {max_passes} passes over the data (Newton decrement {decrement:.3g} "
                f"nats per voxel, tolerance {tolerance:g})"
            )
        if not candidates:
            candidates = [np.maximum(theta + step * direction, lower) for step in steps]
        trials = evaluate(candidates)
        passes += 1
        accepted = None
        for candidate, trial in zip(candidates, trials, strict=True):
            slope = float(stats.gradient @ (candidate - theta))
            if trial.nll <= stats.nll + ARMIJO * min(slope, 0.0) + ROUNDING * abs(stats.nll):
                accepted = (candidate, trial)
                break
        candidates = []
        if accepted is None:  # shorter steps next (after a rejected temperature start: the usual ones)
            steps = [step * steps[-1] for step in SHORTER_STEPS] if passes > 2 else list(STEPS)
        else:
            theta, stats = accepted
            steps = list(STEPS)
        if on_pass is not None:
            on_pass(passes, theta, stats)
