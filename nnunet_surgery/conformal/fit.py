"""Both passes in one process: the serial reference for the commands, which run each pass over a pool.

A command streams pass 1 (`case_fnr_stats` per case, merged in case order), asks `locate_crossing` whether a
second pass is needed, streams pass 2 (`case_bin_stats` of that bin) if so, and calls `conformal_threshold`.
`fit_fnr_threshold` is exactly that sequence over cases read twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nnunet_surgery.conformal.stats import BinFnrStats, FnrStats
from nnunet_surgery.conformal.threshold import (
    ConformalThreshold,
    EmptyReferences,
    conformal_threshold,
    locate_crossing,
)
from nnunet_surgery.conformal.update import Chunk, case_bin_stats, case_fnr_stats

__all__ = ["fit_fnr_threshold"]


def fit_fnr_threshold(
    cases: Callable[[], Iterable[Iterable[Chunk]]],
    alpha: float,
    *,
    empty_references: EmptyReferences = "count",
) -> ConformalThreshold:
    """The conformal FNR threshold of one label from calibration cases read once or twice.

    Args:
        cases: returns a fresh iterable over the cases, in a fixed order, each case an iterable of chunks
            (probability (N,), reference (N,) bool); called a second time only when pass 2 is needed.
        alpha: target risk in (0, 1).
        empty_references: see `EmptyReferences`.
    """
    stats = FnrStats.zeros()
    for chunks in cases():
        stats = stats.merge(case_fnr_stats(chunks))
    crossing = locate_crossing(stats, alpha, empty_references=empty_references)
    refinement = None
    if crossing.bin is not None:
        refinement = BinFnrStats.zeros(crossing.bin)
        for chunks in cases():
            refinement = refinement.merge(case_bin_stats(chunks, crossing.bin))
    return conformal_threshold(stats, alpha, refinement, empty_references=empty_references)
