"""The conformal risk control threshold for the false-negative rate (the compute stage).

Angelopoulos, Bates, Fisch, Lei, Schuster, "Conformal Risk Control", ICLR 2024: for losses L_i(t) in
[0, B], non-decreasing and left-continuous in t (the paper's non-increasing, right-continuous losses in
lambda = -t, whose infimum becomes our supremum), over n calibration cases,

    t_hat = sup { t : n / (n + 1) * mean_i L_i(t) + B / (n + 1) <= alpha },

then E[L_test(t_hat)] <= alpha for a test case exchangeable with the calibration cases (Theorem 1), and
>= alpha - 2 B / (n + 1) when the losses are continuous (Theorem 2). Here L_i = FNR_i of the mask
{p >= t} (`stats`), B = 1, and t ranges over [0, 1]. Multiplying by n + 1, the condition reads

    S(t) = sum_i L_i(t) <= (n + 1) * alpha - B                                              (*)

Candidates and ties (docs/conformal.md#which-threshold): S is a left-continuous step function, constant on
(v, v'] between consecutive distinct reference probabilities v < v', so the supremum is attained and is
one of the distinct float32 reference probabilities of the calibration cases, or 1 when (*) holds at
t = 1. At a tied value v (several voxels, maybe of several cases, at exactly v) the mask {p >= v} keeps
all of them: S(v) counts none of them, S just above v counts all. If (*) fails even at t = 0 (S(0) = 0,
so alpha < B / (n + 1): too few cases for this alpha), no t qualifies and t_hat = 0, the most conservative
mask (every voxel), flagged `feasible = False`.

(*) is evaluated in float64 with a slack of (n + 1) * RISK_SLACK on the right, i.e. on alpha: the sums
carry rounding (each 1 / R_i, then the additions), and the slack, far above that rounding, lets an exact
tie (common with small cases and round alphas) count as satisfied, as the <= says, instead of leaving it
to rounding. The guarantee then holds for alpha + RISK_SLACK.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from nnunet_surgery.conformal.keys import COARSE_SHIFT, N_COARSE, ONE_KEY, key_value
from nnunet_surgery.conformal.stats import RISK_GRID, BinFnrStats, FnrStats

__all__ = [
    "FNR_BOUND",
    "METHOD",
    "RISK_SLACK",
    "ConformalThreshold",
    "Crossing",
    "EmptyReferences",
    "admissible_sum",
    "check_alpha",
    "check_empty_references",
    "conformal_threshold",
    "locate_crossing",
]

METHOD = "conformal risk control (Angelopoulos et al., ICLR 2024)"
#: B, the bound of the loss: FNR lies in [0, 1].
FNR_BOUND = 1.0
#: Slack on alpha in (*): 2^-30 ~= 9.3e-10, above the float64 rounding of the sums for up to 2^23 cases
#: (n terms <= 1 each: at most n^2 * 2^-53 on the sum, (n + 1) * 2^-30 allowed).
RISK_SLACK = 2.0**-30

#: "count": a case without reference voxels has FNR 0 at every t and counts in n (the method as stated:
#: the guarantee averages over all patients); "exclude": such cases are left out of n (the guarantee
#: averages over patients whose reference is not empty).
EmptyReferences = Literal["count", "exclude"]


def check_alpha(alpha: float) -> float:
    """`alpha` as a float if it lies in the open interval (0, 1), else ValueError."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise ValueError(f"alpha must be a number in (0, 1), but got {alpha!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), but got {alpha!r}")
    return float(alpha)


def check_empty_references(empty_references: str) -> str:
    """`empty_references` if it is one of EmptyReferences, else ValueError."""
    if empty_references not in get_args(EmptyReferences):
        raise ValueError(
            f"empty_references must be one of {get_args(EmptyReferences)}, but got {empty_references!r}"
        )
    return empty_references


def admissible_sum(n: int, alpha: float, bound: float = FNR_BOUND) -> float:
    """The largest S(t) = sum_i L_i(t) that (*) admits: (n + 1) alpha - B, plus the slack (n + 1) RISK_SLACK."""
    return (n + 1) * alpha - bound + (n + 1) * RISK_SLACK


def _n_used(stats: FnrStats, empty_references: str) -> int:
    n = stats.n_cases - (stats.n_empty if check_empty_references(empty_references) == "exclude" else 0)
    if n < 1:
        what = "case" if stats.n_cases == 0 else "case with a non-empty reference"
        raise ValueError(f"the conformal threshold needs at least one calibration {what}, but got none")
    return n


@dataclass(frozen=True)
class Crossing:
    """Where (*) stops holding, as far as pass 1 tells.

    Attributes:
        n: cases in the average.
        limit: `admissible_sum(n, alpha)`.
        bin: the coarse bin to resolve with pass 2 (`BinFnrStats`), or None when pass 1 decides.
        key: the threshold's key when pass 1 decides (0: infeasible; ONE_KEY: (*) holds at t = 1), else None.
        below: S at the lower edge of `bin` (0.0 when bin is None).
    """

    n: int
    limit: float
    bin: int | None
    key: int | None
    below: float = 0.0


def _prefix(stats: FnrStats) -> np.ndarray:
    """(N_COARSE + 1,) S at the lower edge of each coarse bin (and past the last)."""
    return np.concatenate(([0.0], np.cumsum(stats.coarse_weights)))


def locate_crossing(
    stats: FnrStats, alpha: float, *, empty_references: EmptyReferences = "count"
) -> Crossing:
    """Pass 1's verdict: t_hat = 0 (infeasible), t_hat = 1, or the coarse bin that holds t_hat.

    The bin is the first b with S(lower edge of b + 1) > limit; t_hat is the reference probability in it
    whose voxels take S over the limit. (*) at t = 1 reads S(1) = prefix[N_COARSE - 1] (1.0 is the only
    probability in the last bin, and it is not below 1.0).
    """
    alpha = check_alpha(alpha)
    n = _n_used(stats, empty_references)
    limit = admissible_sum(n, alpha)
    if limit < 0.0:
        return Crossing(n, limit, None, 0)
    prefix = _prefix(stats)
    if prefix[N_COARSE - 1] <= limit:
        return Crossing(n, limit, None, ONE_KEY)
    # prefix is non-decreasing (sums of non-negative terms, rounded monotonically), prefix[0] = 0 <= limit
    bin = int(np.searchsorted(prefix, limit, side="right")) - 1
    return Crossing(n, limit, bin, None, float(prefix[bin]))


@dataclass(frozen=True)
class ConformalThreshold:
    """The fitted threshold of one label or region, and the calibration risk around it.

    Attributes:
        alpha: the target risk.
        threshold: t_hat, a float32 value (exact as a Python float); the mask is {p >= threshold}.
        feasible: False when no t satisfies (*) (alpha < B / (n + 1)); threshold is then 0.
        n: cases in the average (n_cases, less n_empty under "exclude").
        n_cases: calibration cases read.
        n_empty: those with an empty reference.
        empty_references: "count" or "exclude" (`EmptyReferences`).
        mean_risk: mean_i FNR_i(threshold) over the n cases.
        adjusted_risk: n / (n + 1) * mean_risk + B / (n + 1), the left side of the condition (<= alpha).
        adjusted_risk_above: the same just above the threshold (the next float32), where the condition
            fails; None when pass 1 decided (t_hat = 0 or 1).
        grid: (G,) thresholds of the risk curve (RISK_GRID, real numbers k / 100).
        grid_mean_risk: (G,) mean_i FNR_i at each.
        grid_adjusted_risk: (G,) n / (n + 1) * grid_mean_risk + B / (n + 1).
    """

    alpha: float
    threshold: float
    feasible: bool
    n: int
    n_cases: int
    n_empty: int
    empty_references: str
    mean_risk: float
    adjusted_risk: float
    adjusted_risk_above: float | None
    grid: np.ndarray = field(repr=False)
    grid_mean_risk: np.ndarray = field(repr=False)
    grid_adjusted_risk: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """The json form (CONFORMAL.json, one label): plain numbers and lists, NaN-free."""
        return {
            "method": METHOD,
            "risk": "fnr",
            "loss_bound": FNR_BOUND,
            "alpha": self.alpha,
            "threshold": self.threshold,
            "mask": "p >= threshold",
            "feasible": self.feasible,
            "n": self.n,
            "n_cases": self.n_cases,
            "n_empty_reference": self.n_empty,
            "empty_references": self.empty_references,
            "risk_slack": RISK_SLACK,
            "calibration_risk": {
                "mean_fnr": self.mean_risk,
                "adjusted": self.adjusted_risk,
                "adjusted_just_above": self.adjusted_risk_above,
            },
            "risk_curve": {
                "threshold": [float(t) for t in self.grid],
                "mean_fnr": [float(r) for r in self.grid_mean_risk],
                "adjusted": [float(r) for r in self.grid_adjusted_risk],
            },
        }


def _adjusted(risk_sum: float | np.ndarray, n: int) -> float | np.ndarray:
    """n / (n + 1) * (risk_sum / n) + B / (n + 1)."""
    return (risk_sum + FNR_BOUND) / (n + 1)


def _check_refinement(stats: FnrStats, crossing: Crossing, refinement: BinFnrStats | None) -> BinFnrStats:
    if refinement is None:
        raise ValueError(
            f"t_hat lies inside coarse bin {crossing.bin}: pass 2 (BinFnrStats of that bin) is needed"
        )
    expected = (crossing.bin, stats.n_cases, stats.n_reference, int(stats.coarse_counts[crossing.bin]))
    found = (refinement.bin, refinement.n_cases, refinement.n_reference, int(refinement.counts.sum()))
    if found != expected:
        raise ValueError(
            "pass 2 does not match pass 1 (bin, cases, reference voxels, voxels in the bin): expected "
            f"{expected}, but got {found} (did the data change between the passes?)"
        )
    return refinement


def _resolve(crossing: Crossing, refinement: BinFnrStats) -> tuple[int, float, float]:
    """(key, S(key), S just above key) inside the crossing bin: the first value whose voxels take S over
    the limit (the bin's last value if rounding kept the bin's total at the limit)."""
    after = np.cumsum(np.concatenate(([crossing.below], refinement.weights)))  # after[j + 1]: S above value j
    j = min(int(np.searchsorted(after[1:], crossing.limit, side="right")), refinement.fine.size - 1)
    key = (crossing.bin << COARSE_SHIFT) | int(refinement.fine[j])
    return key, float(after[j]), float(after[j + 1])


def conformal_threshold(
    stats: FnrStats,
    alpha: float,
    refinement: BinFnrStats | None = None,
    *,
    empty_references: EmptyReferences = "count",
) -> ConformalThreshold:
    """t_hat of conformal risk control for the FNR of {p >= t}, exact over all float32 thresholds.

    Args:
        stats: pass 1 over the calibration cases (`case_fnr_stats`, merged).
        alpha: target risk in (0, 1).
        refinement: pass 2 over the same cases in `locate_crossing(stats, alpha).bin`, when that is not None.
        empty_references: how cases without reference voxels enter (`EmptyReferences`).

    Raises:
        ValueError: alpha outside (0, 1), no usable case, or a missing / mismatched refinement.
    """
    crossing = locate_crossing(stats, alpha, empty_references=empty_references)
    n = crossing.n
    above = None
    if crossing.bin is None:
        key = crossing.key
        risk_sum = 0.0 if key == 0 else float(_prefix(stats)[N_COARSE - 1])
    else:
        key, risk_sum, above_sum = _resolve(crossing, _check_refinement(stats, crossing, refinement))
        above = float(_adjusted(above_sum, n))
    return ConformalThreshold(
        alpha=float(alpha),
        threshold=key_value(key),
        feasible=crossing.limit >= 0.0,
        n=n,
        n_cases=stats.n_cases,
        n_empty=stats.n_empty,
        empty_references=empty_references,
        mean_risk=risk_sum / n,
        adjusted_risk=float(_adjusted(risk_sum, n)),
        adjusted_risk_above=above,
        grid=RISK_GRID.copy(),
        grid_mean_risk=stats.grid_weights / n,
        grid_adjusted_risk=_adjusted(stats.grid_weights, n),
    )
