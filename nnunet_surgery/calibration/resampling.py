"""Case-level bootstrap and jackknife of any statistic of per-case sums, in bounded memory.

Per-case sums are a mapping name -> (n_cases, *shape) float64 array (row c: the sums of case c). A
statistic maps summed arrays with a leading batch axis, name -> (k, *shape), to metric values,
name -> (k,) (or (k, ...)); it must treat rows independently. Then

- the point estimate is the statistic of the sums over all cases;
- resample r is the statistic of `W[r] @ sums`, W = `case_weights(n, R, seed)` (bootstrap.py): the rows
  of W are drawn `rows` at a time from one generator, which gives the same W as one draw of all R rows,
  and the drawn cases' sums are added in case order (`weighted_sums`), the same bits for any block size;
- jackknife value i is the statistic of the sums over all cases but case i (total - sums[i]).

Resamples and leave-one-out rows are computed in blocks sized so that the block's weights, resampled sums
and the statistic's temporaries (`work` times the sums) stay within `memory_budget` bytes, whatever the
number of resamples, cases and bins (docs/calibration.md#bounded-resampling). Only the (R,) and (n,) metric
values are kept. A paired difference of two models is a statistic of both models' sums (`paired`): both are
resampled with the same W and left out with the same case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from nnunet_surgery.calibration.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_METHOD,
    Interval,
    Method,
    bootstrap_bounds,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_WORK",
    "Estimate",
    "Statistic",
    "block_rows",
    "bootstrap_values",
    "case_count",
    "estimate_with_interval",
    "jackknife_values",
    "paired",
    "point_values",
    "row_bytes",
    "weight_blocks",
    "weighted_sums",
]

Sums = Mapping[str, np.ndarray]
Statistic = Callable[[Sums], Mapping[str, np.ndarray]]

#: Bytes a block of resamples (or leave-one-out rows) may use by default: 256 MiB.
DEFAULT_MEMORY_BUDGET = 256 * 2**20
#: The statistic's temporaries, in multiples of its input size (the binned estimators use about 4).
DEFAULT_WORK = 6


@dataclass(frozen=True)
class Estimate:
    """A metric on all cases and its bootstrap interval."""

    value: float
    interval: Interval


def case_count(per_case: Sums) -> int:
    """The number of cases n shared by every (n, ...) array; ValueError when they disagree or n < 1."""
    counts = {np.shape(values)[0] if np.ndim(values) else None for values in per_case.values()}
    if len(counts) != 1 or None in counts or next(iter(counts)) < 1:
        shapes = {name: np.shape(values) for name, values in per_case.items()}
        raise ValueError(f"per-case sums must be (n_cases >= 1, ...) arrays of one n_cases, but got {shapes}")
    return int(next(iter(counts)))


def row_bytes(n_cases: int, row_values: int, *, work: int = DEFAULT_WORK) -> int:
    """Bytes one resample (or leave-one-out row) takes: its n weights, and its `row_values` summed values
    with the statistic's temporaries (`work` times them), float64."""
    return 8 * (n_cases + (1 + work) * row_values)


def block_rows(
    per_case: Sums, memory_budget: int = DEFAULT_MEMORY_BUDGET, *, work: int = DEFAULT_WORK
) -> int:
    """Rows (resamples) per block: (n + (1 + work) sum of row sizes) float64 values per row fit the budget.

    Raises:
        ValueError: when not even one row fits (name the budget and what one row needs).
    """
    n = case_count(per_case)
    per_row = row_bytes(n, sum(int(np.prod(np.shape(v)[1:])) for v in per_case.values()), work=work)
    if memory_budget < per_row:
        raise ValueError(f"memory_budget must hold one resample ({per_row} bytes), but got {memory_budget}")
    return int(memory_budget // per_row)


def weight_blocks(n_cases: int, n_resamples: int, seed: int, rows: int) -> Iterator[np.ndarray]:
    """Consecutive blocks of at most `rows` rows of `case_weights(n_cases, n_resamples, seed)`."""
    if n_cases < 1 or n_resamples < 1 or rows < 1:
        raise ValueError(
            f"need n_cases, n_resamples and rows >= 1, but got {n_cases}, {n_resamples} and {rows}"
        )
    generator = np.random.default_rng(seed)
    for start in range(0, n_resamples, rows):
        size = min(rows, n_resamples - start)
        draws = generator.integers(0, n_cases, size=(size, n_cases))
        counts = np.bincount((np.arange(size)[:, None] * n_cases + draws).ravel(), minlength=size * n_cases)
        yield counts.reshape(size, n_cases).astype(np.float64)


def weighted_sums(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`weights @ values` over the case axis, (r, n) x (n, ...) -> (r, ...), summed case by case in case
    order, so that each row's float64 result does not depend on how many rows are computed at once (a
    BLAS product may change its summation order with the shapes)."""
    out = np.zeros((weights.shape[0], *values.shape[1:]))
    column = (slice(None),) + (None,) * (values.ndim - 1)
    for case in range(values.shape[0]):
        out += weights[:, case][column] * values[case]
    return out


def _blocked(
    per_case: Sums,
    statistic: Statistic,
    sums: Callable[[int, dict[str, np.ndarray], int], Iterator[dict[str, np.ndarray]]],
    memory_budget: int,
) -> dict[str, np.ndarray]:
    """The statistic of each block of summed rows that `sums(n, arrays, rows per block)` yields,
    concatenated: name -> (rows, ...) values."""
    n = case_count(per_case)
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in per_case.items()}
    parts: dict[str, list[np.ndarray]] = {}
    for block in sums(n, arrays, block_rows(arrays, memory_budget)):
        for name, values in statistic(block).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(values) for name, values in parts.items()}


def point_values(per_case: Sums, statistic: Statistic) -> dict[str, np.ndarray]:
    """The statistic of the sums over all cases: name -> (...) values."""
    case_count(per_case)
    totals = {
        name: np.asarray(values, dtype=np.float64).sum(axis=0)[None] for name, values in per_case.items()
    }
    return {name: np.asarray(values, dtype=np.float64)[0] for name, values in statistic(totals).items()}


def bootstrap_values(
    per_case: Sums,
    statistic: Statistic,
    n_resamples: int,
    seed: int,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, np.ndarray]:
    """The statistic over R case resamples, computed in blocks: name -> (R, ...) values.

    Resample r sums the cases with the multiplicities of row r of `case_weights(n, n_resamples, seed)`;
    `memory_budget` sizes the blocks (`block_rows`, with the default work factor).
    """

    def resamples(n: int, arrays: dict[str, np.ndarray], rows: int) -> Iterator[dict[str, np.ndarray]]:
        for weights in weight_blocks(n, n_resamples, seed, rows):
            yield {name: weighted_sums(weights, values) for name, values in arrays.items()}

    return _blocked(per_case, statistic, resamples, memory_budget)


def jackknife_values(
    per_case: Sums,
    statistic: Statistic,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, np.ndarray]:
    """The statistic with each case left out in turn, in blocks of cases: name -> (n, ...) values."""

    def left_out(n: int, arrays: dict[str, np.ndarray], rows: int) -> Iterator[dict[str, np.ndarray]]:
        totals = {name: values.sum(axis=0) for name, values in arrays.items()}
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            yield {name: totals[name][None] - values[start:stop] for name, values in arrays.items()}

    return _blocked(per_case, statistic, left_out, memory_budget)


def estimate_with_interval(
    per_case: Sums,
    statistic: Statistic,
    *,
    n_resamples: int,
    seed: int,
    level: float = DEFAULT_LEVEL,
    method: Method = DEFAULT_METHOD,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    references: Mapping[str, str] | None = None,
) -> dict[str, Estimate]:
    """Each scalar metric of the statistic on all cases with its interval (BCa by default).

    Args:
        per_case, statistic: see the module docstring.
        n_resamples, seed: the bootstrap's R and generator seed.
        level, method: see `bootstrap_bounds`.
        memory_budget: see `block_rows`.
        references: debiased metric -> the statistic's metric holding its plug-in value (e.g.
            `pooled.PLUG_IN`); their intervals are those of `bootstrap_bounds(reference=...)`.

    The jackknife (n more evaluations) is computed only for BCa. Every estimate lies inside its interval.
    """
    references = dict(references or {})
    point = point_values(per_case, statistic)
    resampled = bootstrap_values(per_case, statistic, n_resamples, seed, memory_budget=memory_budget)
    jackknife = None
    if method == "bca":
        jackknife = jackknife_values(per_case, statistic, memory_budget=memory_budget)
    estimates = {}
    for name, value in point.items():
        low, high = bootstrap_bounds(
            value,
            resampled[name],
            None if jackknife is None else jackknife[name],
            level=level,
            method=method,
            reference=point[references[name]] if name in references else None,
        )
        estimates[name] = Estimate(float(value), Interval(float(low), float(high)))
    return estimates


def paired(first: Sums, second: Sums, statistic: Statistic) -> tuple[dict[str, np.ndarray], Statistic]:
    """Per-case sums and statistic of the difference statistic(first) - statistic(second).

    Both models' sums travel in one mapping (keys prefixed "first/" and "second/"), so every resample draws
    the same cases for both and every jackknife row leaves out the same case: a paired comparison.
    """
    if case_count(first) != case_count(second):
        raise ValueError(
            f"paired sums need one number of cases, but got {case_count(first)} and {case_count(second)}"
        )
    joint = {f"first/{name}": values for name, values in first.items()}
    joint.update({f"second/{name}": values for name, values in second.items()})

    def difference(sums: Sums) -> dict[str, np.ndarray]:
        a = statistic({name[6:]: values for name, values in sums.items() if name.startswith("first/")})
        b = statistic({name[7:]: values for name, values in sums.items() if name.startswith("second/")})
        return {name: np.asarray(a[name]) - np.asarray(b[name]) for name in a}

    return joint, difference
