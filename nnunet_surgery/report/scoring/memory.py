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

__all__ = ["check_resampling_memory", "interval_settings", "label_row_values"]


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

    Raises:
        InputError: naming `--bins` and `--bootstrap`, the bytes needed, and the largest `--bins` that fits.
    """
    copies = 2 if n_models > 1 else 1
    needed = row_bytes(n_cases, copies * label_row_values(n_bins))
    if needed > settings.memory_budget:
        raise InputError(
            f"--bins {n_bins} with --bootstrap {settings.resamples}: one bootstrap resample needs "
            f"{needed / 2**20:.0f} MiB, over the {settings.memory_budget / 2**20:.0f} MiB resampling budget; "
            f"use --bins <= {_largest_bins(n_cases, copies, settings.memory_budget)} or --bootstrap 0"
        )
