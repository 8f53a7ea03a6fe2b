"""The report's resampling settings and their memory check, made before any case is read.

One bootstrap resample of a label sums every per-case array of the label that its intervals need
(`calibration.pooled`): the reliability bins and their case-level products (6 x `bins` values) and six
scalars (the smooth ECE, from the fine histogram, is a point estimate); a paired comparison sums both
models' (twice that). `calibration.resampling` computes resamples in blocks of rows within the memory
budget, so memory stays bounded whatever `--bootstrap` and the number of cases, as long as one row fits:
`check_resampling_memory` refuses, with one line naming the options, a `--bins` for which it does not
(docs/calibration.md#bounded-resampling).
"""

from __future__ import annotations

from nnunet_surgery.calibration.bootstrap import DEFAULT_LEVEL
from nnunet_surgery.calibration.resampling import row_bytes
from nnunet_surgery.cases import InputError
from nnunet_surgery.report.inputs import RunOptions
from nnunet_surgery.report.scoring.intervals import IntervalSettings

__all__ = ["KEPT_COPIES", "KEPT_METRICS", "check_resampling_memory", "interval_settings", "label_row_values"]

#: Metrics of a label whose R resampled values are kept at once (`aggregate.LABEL_INTERVAL_METRICS`).
KEPT_METRICS = 9
#: The kept values, the sorted copy the quantiles read and one temporary of the interval's bounds.
KEPT_COPIES = 3


def interval_settings(run: RunOptions) -> IntervalSettings:
    """The intervals' settings of a run: its resamples, seed, method and memory budget; 95% coverage."""
    return IntervalSettings(run.bootstrap, run.seed, DEFAULT_LEVEL, run.interval, run.memory_budget)


def label_row_values(n_bins: int) -> int:
    """float64 values in one case's (or one resample's) row of a label's sums (module docstring)."""
    return 6 * n_bins + 6


def _largest_bins(n_cases: int, copies: int, budget: int) -> int:
    """The largest `--bins` whose resample row (`copies` models' sums) fits `budget`; 0 if none."""
    low, high = 0, 1
    while row_bytes(n_cases, copies * label_row_values(high)) <= budget:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        if row_bytes(n_cases, copies * label_row_values(middle)) <= budget:
            low = middle
        else:
            high = middle
    return low


def check_resampling_memory(n_cases: int, n_bins: int, n_models: int, settings: IntervalSettings) -> None:
    """Refuse a run whose bootstrap could not keep one resample of a label within the memory budget.

    The R resampled values of each metric of a label are kept for its intervals (KEPT_METRICS x
    KEPT_COPIES x R float64): a `--bootstrap` for which they exceed the budget is refused as well.

    Raises:
        InputError: naming `--bootstrap` (and `--bins`), the MiB needed, and the largest value that fits.
    """
    kept = 8 * settings.resamples * KEPT_METRICS * KEPT_COPIES
    if kept > settings.memory_budget:
        largest = settings.memory_budget // (8 * KEPT_METRICS * KEPT_COPIES)
        raise InputError(
            f"--bootstrap {settings.resamples}: the resampled values of a label need {kept / 2**20:.0f} MiB, "
            f"over the {settings.memory_budget / 2**20:.0f} MiB resampling budget; use --bootstrap <= {largest}"
        )
    copies = 2 if n_models > 1 else 1
    needed = row_bytes(n_cases, copies * label_row_values(n_bins))
    if needed > settings.memory_budget:
        raise InputError(
            f"--bins {n_bins} with --bootstrap {settings.resamples}: one bootstrap resample needs "
            f"{needed / 2**20:.0f} MiB, over the {settings.memory_budget / 2**20:.0f} MiB resampling budget; "
            f"use --bins <= {_largest_bins(n_cases, copies, settings.memory_budget)} or --bootstrap 0"
        )
