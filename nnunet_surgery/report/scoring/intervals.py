"""Case-level bootstrap intervals of the pooled metrics and paired comparisons against the reference
model (the first), from per-case sufficient statistics (docs/calibration.md#bootstrap).

Every model and label is resampled with the same case multiplicities `W` (`case_weights`), so a
difference between two models is computed on the same resampled cases: a paired comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from nnunet_surgery.calibration import BinnedStats, LabelStats
from nnunet_surgery.calibration.bootstrap import Interval, percentile_interval
from nnunet_surgery.calibration.metrics import binned_errors, label_metric_arrays
from nnunet_surgery.report.scoring.scores import HIGHER_IS_BETTER, CalibrationErrors, LabelMetrics

__all__ = [
    "Intervals",
    "MetricComparison",
    "Paired",
    "Resampled",
    "compare",
    "resample_label",
    "resample_top_label",
]

Metrics = CalibrationErrors | LabelMetrics


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals per metric name, of the pooled metrics and of the case means."""

    pooled: dict[str, Interval]
    case_mean: dict[str, Interval]


@dataclass(frozen=True)
class MetricComparison:
    """One metric of a model against the reference model.

    Attributes:
        difference: model - reference, on all cases (pooled).
        interval: percentile interval of the difference over the paired resamples.
        fraction_better: fraction of resamples in which the model is strictly better (lower, or higher
            for Dice).
    """

    difference: float
    interval: Interval
    fraction_better: float


@dataclass(frozen=True)
class Paired:
    """A model's pooled metrics compared with the reference model's, metric by metric."""

    reference: str
    metrics: dict[str, MetricComparison]


@dataclass(frozen=True)
class Resampled:
    """A model's metrics over the R resamples: metric name -> (R,) array, pooled and case mean."""

    pooled: dict[str, np.ndarray]
    case_mean: dict[str, np.ndarray]

    def intervals(self, level: float) -> Intervals:
        return Intervals(
            {name: percentile_interval(values, level) for name, values in self.pooled.items()},
            {name: percentile_interval(values, level) for name, values in self.case_mean.items()},
        )


def _weighted(weights: np.ndarray, per_case: Sequence[np.ndarray | float]) -> np.ndarray:
    """`weights @ stack(per_case)`: the resampled sums, (R, ...)."""
    return np.tensordot(weights, np.asarray(per_case, dtype=np.float64), axes=(1, 0))


def _case_means(weights: np.ndarray, per_case: Sequence[Metrics]) -> dict[str, np.ndarray]:
    """Resampled NaN-ignoring case means of each metric: sum w_c m_c / sum w_c over cases with m_c defined."""
    means = {}
    for item in fields(type(per_case[0])):
        values = np.array([getattr(metrics, item.name) for metrics in per_case], dtype=np.float64)
        defined = ~np.isnan(values)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[item.name] = (weights @ np.where(defined, values, 0.0)) / (weights @ defined)
    return means


def resample_label(
    weights: np.ndarray, cases: Sequence[LabelStats], case_metrics: Sequence[LabelMetrics]
) -> Resampled:
    """A label's pooled metrics and case means over the resamples.

    Args:
        weights: (R, n) case multiplicities.
        cases: the n cases' statistics, in case order.
        case_metrics: the n cases' metrics, in case order.
    """
    pooled = label_metric_arrays(
        _weighted(weights, [case.reliability.count for case in cases]),
        _weighted(weights, [case.reliability.sum_confidence for case in cases]),
        _weighted(weights, [case.reliability.sum_target for case in cases]),
        *(
            _weighted(weights, [getattr(case, name) for case in cases])
            for name in ("nll_sum", "brier_sum", "tp", "fp", "fn")
        ),
    )
    return Resampled(pooled, _case_means(weights, case_metrics))


def resample_top_label(
    weights: np.ndarray, cases: Sequence[BinnedStats], case_errors: Sequence[CalibrationErrors]
) -> Resampled:
    """Top-label ECE, MCE, ACE (pooled and case mean) over the resamples."""
    pooled = binned_errors(
        _weighted(weights, [case.count for case in cases]),
        _weighted(weights, [case.sum_confidence for case in cases]),
        _weighted(weights, [case.sum_target for case in cases]),
    )
    return Resampled(pooled, _case_means(weights, case_errors))


def compare(
    reference: str,
    point: Metrics,
    reference_point: Metrics,
    resampled: Resampled,
    reference_resampled: Resampled,
    level: float,
) -> Paired:
    """Pooled metrics of a model against the reference's, on the same resamples.

    Args:
        reference: the reference model's name.
        point, reference_point: pooled metrics on all cases.
        resampled, reference_resampled: both models' resampled metrics (same weights).
        level: interval coverage.
    """
    comparisons = {}
    for item in fields(type(point)):
        name = item.name
        difference = resampled.pooled[name] - reference_resampled.pooled[name]
        better = difference > 0 if name in HIGHER_IS_BETTER else difference < 0
        comparisons[name] = MetricComparison(
            difference=float(getattr(point, name) - getattr(reference_point, name)),
            interval=percentile_interval(difference, level),
            fraction_better=float(better.mean()),
        )
    return Paired(reference, comparisons)
