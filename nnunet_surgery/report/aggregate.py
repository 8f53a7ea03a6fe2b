"""The folder aggregator: score every case (in a spawn pool for -np > 1) and merge the statistics.

Results arrive in case order (`imap`), so the float64 merge order, and thus the report, does not depend
on the number of processes. Only O(labels x bins) sums per model and a few metrics per case and label are kept.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from nnunet_surgery.calibration import BinnedStats, LabelStats
from nnunet_surgery.report.case import CaseResult, CaseTask, evaluate_case
from nnunet_surgery.report.summary import label_entry, top_label_entry

__all__ = ["ModelTotals", "aggregate_cases", "iterate_cases"]


@dataclass
class ModelTotals:
    """One model's statistics pooled over all cases, and each case's metrics (not its statistics).

    Attributes:
        labels: pooled statistics per label name.
        top_label: pooled top-label statistics (softmax datasets), else None.
        cases: case -> label name -> metrics (see `summary.label_entry`).
        top_label_cases: case -> top-label metrics.
    """

    labels: dict[str, LabelStats]
    top_label: BinnedStats | None
    cases: dict[str, dict[str, dict]] = field(default_factory=dict)
    top_label_cases: dict[str, dict] = field(default_factory=dict)

    def add(self, case: str, labels: dict[str, LabelStats], top_label: BinnedStats | None) -> None:
        """Merge one case into the totals and keep its metrics."""
        for name, stats in labels.items():
            self.labels[name] = self.labels[name].merge(stats)
        self.cases[case] = {name: label_entry(stats) for name, stats in labels.items()}
        if top_label is not None:
            self.top_label = self.top_label.merge(top_label)
            self.top_label_cases[case] = top_label_entry(top_label)


def iterate_cases(
    tasks: Sequence[CaseTask], num_processes: int, *, progress: bool = True
) -> Iterator[CaseResult]:
    """Yield `evaluate_case(task)` for every task, in order; in-process for one process, else a spawn pool.

    A ReportError raised for any case propagates (and stops the pool).
    """
    from tqdm import tqdm

    bar = tqdm(
        total=len(tasks), desc="report", unit="case", file=sys.stderr, disable=None if progress else True
    )
    try:
        if num_processes <= 1:
            for task in tasks:
                yield evaluate_case(task)
                bar.update()
        else:
            with multiprocessing.get_context("spawn").Pool(num_processes) as pool:
                for result in pool.imap(evaluate_case, tasks, chunksize=1):
                    yield result
                    bar.update()
    finally:
        bar.close()


def aggregate_cases(
    tasks: Sequence[CaseTask],
    *,
    n_bins: int,
    with_truth: bool,
    num_processes: int = 1,
    progress: bool = True,
) -> tuple[dict[str, ModelTotals], dict[str, int]]:
    """Score all cases and merge them per model.

    Returns:
        (totals per model name, number of ROI voxels per case).
    """
    if not tasks:
        return {}, {}
    layout = tasks[0].layout
    totals = {
        model: ModelTotals(
            labels={name: LabelStats.zeros(n_bins, with_truth=with_truth) for name in layout.names},
            top_label=BinnedStats.zeros(n_bins) if layout.softmax else None,
        )
        for model in tasks[0].models
    }
    n_roi = {}
    for result in iterate_cases(tasks, num_processes, progress=progress):
        n_roi[result.case] = result.n_roi
        for model, stats in result.models.items():
            totals[model].add(result.case, stats.labels, stats.top_label)
    return totals, n_roi
