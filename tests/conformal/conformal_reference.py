"""Independent references for the conformal tests: the threshold by brute force in exact rationals, and
synthetic cases whose probabilities tie, straddle coarse bins and sit at float32 edge values."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

FLOAT32_EDGES = np.array(
    [
        0.0,
        -0.0,
        np.float32(2.0**-149),  # smallest subnormal
        np.float32(2.0**-126) - np.float32(2.0**-149),  # largest subnormal
        np.float32(2.0**-126),  # smallest normal
        np.nextafter(np.float32(0.5), np.float32(0)),
        0.5,
        np.nextafter(np.float32(0.5), np.float32(1)),
        np.nextafter(np.float32(1), np.float32(0)),
        1.0,
    ],
    dtype=np.float32,
)


def reference_values(cases: list[tuple[np.ndarray, np.ndarray]]) -> list[list[Fraction]]:
    """Per case, its reference probabilities as exact rationals (float32 -> Fraction, -0.0 -> 0)."""
    return [[Fraction(float(v)) for v in np.asarray(p, dtype=np.float32)[ref]] for p, ref in cases]


def exact_fnr(values: list[Fraction], t: Fraction) -> Fraction:
    """FNR of the mask {p >= t} for one case's reference values (0 for an empty reference)."""
    return Fraction(sum(v < t for v in values), len(values)) if values else Fraction(0)


def brute_force_threshold(
    cases: list[tuple[np.ndarray, np.ndarray]], alpha: float, empty_references: str = "count"
) -> tuple[float, bool]:
    """(t_hat, feasible) of conformal risk control by checking every candidate in exact arithmetic.

    Candidates: the distinct reference probabilities and 1; the condition is
    n/(n+1) mean_i FNR_i(t) + 1/(n+1) <= alpha with alpha read as the decimal it was written as; t_hat is
    the largest candidate that satisfies it, or 0 (infeasible) when none does.
    """
    values = reference_values(cases)
    if empty_references == "exclude":
        values = [case for case in values if case]
    n = len(values)
    target = Fraction(repr(alpha))
    candidates = sorted({v for case in values for v in case} | {Fraction(1)})
    feasible = [
        t
        for t in candidates
        if Fraction(n, n + 1) * sum((exact_fnr(case, t) for case in values), Fraction(0)) / n
        + Fraction(1, n + 1)
        <= target
    ]
    return (float(max(feasible)), True) if feasible else (0.0, False)


def tied_cases(
    rng: np.random.Generator, n_cases: int, max_voxels: int = 12
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Small cases whose probabilities come from a few values (ties within and across cases), some of them
    float32 edge values and neighbours within one coarse bin, with a few empty references."""
    pool = np.concatenate(
        [
            FLOAT32_EDGES,
            np.arange(1, 8, dtype=np.float32) / 8,
            # neighbouring float32 values inside one coarse bin (same top 16 bits)
            (np.float32(0.3) + np.arange(4, dtype=np.float32) * np.float32(2.0**-25)).astype(np.float32),
            rng.random(6).astype(np.float32),
        ]
    )
    cases = []
    for _ in range(n_cases):
        size = int(rng.integers(1, max_voxels + 1))
        p = rng.choice(pool, size=size)
        reference = rng.random(size) < (0.0 if rng.random() < 0.15 else 0.7)
        cases.append((p, reference))
    return cases
