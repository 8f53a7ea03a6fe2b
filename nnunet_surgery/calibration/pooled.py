"""A label's pooled metrics as one statistic of its per-case sums: what the report resamples.

`label_case_sums` stacks the n cases' `LabelStats` of one label into per-case arrays, and
`label_statistic` computes every pooled metric from (k, ...) summed arrays, so that the point estimate,
the bootstrap resamples and the jackknife rows of `resampling` are one function of mergeable sums.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nnunet_surgery.calibration.estimators import (
    case_variance,
    debiased_ece,
    debiased_squared_error,
    squared_error,
)
from nnunet_surgery.calibration.metrics import label_metric_arrays
from nnunet_surgery.calibration.smooth import smooth_ece
from nnunet_surgery.calibration.stats import LabelStats

__all__ = [
    "BINNED_KEYS",
    "CASE_KEYS",
    "FINE_KEYS",
    "PLUG_IN",
    "SCALAR_KEYS",
    "label_case_sums",
    "label_statistic",
]

#: Per-case (n, B) arrays of the reliability bins.
BINNED_KEYS = ("count", "sum_confidence", "sum_target")
#: Per-case (n,) sums and confusion counts.
SCALAR_KEYS = ("nll_sum", "brier_sum", "tp", "fp", "fn")
#: Debiased metric -> the plug-in metric whose value its resamples estimate (`bootstrap_bounds(reference=)`).
PLUG_IN = {"ce_l2sq_debiased": "ce_l2sq", "ece_debiased": "ece"}
#: Per-case (n, B) products for the case-level variance (`estimators.case_variance`), and (n,) ones.
CASE_KEYS = ("residual_sq", "residual_count", "count_sq", "cases")
#: Per-case (n, F) arrays of the fine bins (for the smooth ECE).
FINE_KEYS = ("fine_count", "fine_sum_confidence", "fine_sum_target")


def label_case_sums(cases: Sequence[LabelStats], *, fine: bool = False) -> dict[str, np.ndarray]:
    """One label's per-case sums, in case order.

    Args:
        cases: the n cases' statistics of the label (all with the same bins).
        fine: also stack `LabelStats.fine` (needed for the smooth ECE; F values per case and key).

    Returns:
        BINNED_KEYS -> (n, B), SCALAR_KEYS -> (n,), and with `fine` FINE_KEYS -> (n, F), float64.
    """
    if not cases:
        raise ValueError("label_case_sums needs at least one case, but got none")
    sums = {
        "count": np.stack([case.reliability.count for case in cases]),
        "sum_confidence": np.stack([case.reliability.sum_confidence for case in cases]),
        "sum_target": np.stack([case.reliability.sum_target for case in cases]),
    }
    residual = sums["sum_target"] - sums["sum_confidence"]
    sums["residual_sq"] = residual * residual
    sums["residual_count"] = residual * sums["count"]
    sums["count_sq"] = sums["count"] * sums["count"]
    sums["cases"] = np.ones(len(cases))
    for name in SCALAR_KEYS:
        sums[name] = np.array([getattr(case, name) for case in cases], dtype=np.float64)
    if fine:
        if any(case.fine is None for case in cases):
            raise ValueError("fine=True needs LabelStats with fine statistics (fine_factor > 1)")
        sums["fine_count"] = np.stack([case.fine.count for case in cases])
        sums["fine_sum_confidence"] = np.stack([case.fine.sum_confidence for case in cases])
        sums["fine_sum_target"] = np.stack([case.fine.sum_target for case in cases])
    return {name: np.asarray(values, dtype=np.float64) for name, values in sums.items()}


def label_statistic(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every pooled metric of summed label statistics, row by row.

    Args:
        sums: BINNED_KEYS -> (k, B) and SCALAR_KEYS -> (k,) arrays; FINE_KEYS -> (k, F) optional.

    Returns:
        (k,) arrays: nll, brier, ece, mce, ace, dice (as `label_metric_arrays`), ce_l2sq (plug-in squared
        L2 error), ce_l2sq_debiased, ece_debiased (`estimators`), and with the fine keys smooth_ece
        (`smooth`).
    """
    binned = tuple(sums[name] for name in BINNED_KEYS)
    metrics = label_metric_arrays(*binned, *(sums[name] for name in SCALAR_KEYS))
    variance = None
    if all(name in sums for name in CASE_KEYS):
        variance = case_variance(binned[0], *(sums[name] for name in CASE_KEYS), *binned[1:])
    metrics["ce_l2sq"] = squared_error(*binned)
    metrics["ce_l2sq_debiased"] = debiased_squared_error(*binned, variance)
    metrics["ece_debiased"] = debiased_ece(*binned, variance)
    if all(name in sums for name in FINE_KEYS):
        metrics["smooth_ece"] = smooth_ece(*(sums[name] for name in FINE_KEYS)).value
    return metrics
