"""Case-level bootstrap intervals of the pooled metrics and the case means, and paired comparisons against
the reference model (the first), from per-case sums (docs/calibration.md#bootstrap, #bca).

Every interval goes through `calibration.resampling`: the point estimate, the R resamples (blocks of
resamples within `memory_budget` bytes) and, for BCa, the leave-one-case-out jackknife of one statistic of
the per-case sums. Every model and label is resampled with the same case multiplicities (one seed), so a
difference between two models is computed on the same resampled cases: a paired comparison
(`resampling.paired`). With `method="percentile"` the intervals are the central percentile intervals of the
resamples as the report made them before BCa (nothing widened); with "bca" (the default) every interval
contains its own point estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from nnunet_surgery.calibration.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_METHOD,
    Interval,
    Method,
    bootstrap_bounds,
)
from nnunet_surgery.calibration.metrics import binned_errors
from nnunet_surgery.calibration.pooled import PLUG_IN
from nnunet_surgery.calibration.resampling import (
    DEFAULT_MEMORY_BUDGET,
    Statistic,
    bootstrap_values,
    jackknife_values,
    paired,
    point_values,
)
from nnunet_surgery.report.scoring.scores import HIGHER_IS_BETTER

__all__ = [
    "CaseSums",
    "IntervalSettings",
    "Intervals",
    "MetricComparison",
    "Paired",
    "case_mean_statistic",
    "case_mean_sums",
    "compare",
    "field_values",
    "intervals_of",
    "top_label_statistic",
]


@dataclass(frozen=True)
class IntervalSettings:
    """How the intervals are made.

    Attributes:
        resamples: case-level bootstrap resamples R (`--bootstrap`).
        seed: the bootstrap's seed (`--bootstrap-seed`).
        level: coverage, e.g. 0.95.
        method: "bca" (bias-corrected and accelerated, the default) or "percentile" (`--interval`).
        memory_budget: bytes one block of resamples may use (`resampling.block_rows`).
    """

    resamples: int
    seed: int
    level: float = DEFAULT_LEVEL
    method: Method = DEFAULT_METHOD
    memory_budget: int = DEFAULT_MEMORY_BUDGET


@dataclass(frozen=True)
class Intervals:
    """Intervals per metric name, of the pooled metrics and of the case means."""

    pooled: dict[str, Interval]
    case_mean: dict[str, Interval]


@dataclass(frozen=True)
class MetricComparison:
    """One metric of a model against the reference model.

    Attributes:
        difference: model - reference, on all cases (pooled).
        interval: interval of the difference over the paired resamples (the report's method).
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
class CaseSums:
    """One label's (or the top label's) per-case sums, in case order: name -> (n, ...) float64 arrays.

    Attributes:
        pooled: the sums of the pooled statistic (`calibration.pooled.label_case_sums`, or the three
            binned arrays of the top label).
        case_mean: "value/METRIC" (the case's value, 0 where undefined) and "defined/METRIC" (1 or 0).
        statistic: the pooled metrics of summed rows (`label_statistic` or `top_label_statistic`).
        metrics: the pooled metrics that get intervals, in output order.
    """

    pooled: dict[str, np.ndarray]
    case_mean: dict[str, np.ndarray]
    statistic: Statistic
    metrics: tuple[str, ...]


def top_label_statistic(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ECE, MCE, ACE of summed top-label bins, (k, B) -> (k,) each."""
    return binned_errors(sums["count"], sums["sum_confidence"], sums["sum_target"])


def case_mean_statistic(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NaN-ignoring case means of summed rows: sum of the defined values / number of defined cases."""
    means = {}
    for key, values in sums.items():
        if key.startswith("value/"):
            name = key[len("value/") :]
            with np.errstate(invalid="ignore", divide="ignore"):
                means[name] = values / sums[f"defined/{name}"]
    return means


def case_mean_sums(per_case: list[Mapping[str, float]], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The per-case sums of `case_mean_statistic`: each case's metric values (NaN: undefined), in case order."""
    sums = {}
    for name in names:
        values = np.array([case[name] for case in per_case], dtype=np.float64)
        defined = ~np.isnan(values)
        sums[f"value/{name}"] = np.where(defined, values, 0.0)
        sums[f"defined/{name}"] = defined.astype(np.float64)
    return sums


def _bounds(
    per_case: Mapping[str, np.ndarray],
    statistic: Statistic,
    settings: IntervalSettings,
    estimates: Mapping[str, float],
) -> tuple[dict[str, Interval], dict[str, np.ndarray]]:
    """Each metric of `estimates` with its interval, and the resampled values.

    The interval of a debiased metric (`pooled.PLUG_IN`) is read from its resamples centered on the
    estimate (`bootstrap_bounds(reference=...)`); the estimates given are those the report shows (the
    statistic of the summed cases, up to float64 summation order).
    """
    resampled = bootstrap_values(
        per_case, statistic, settings.resamples, settings.seed, memory_budget=settings.memory_budget
    )
    jackknife = None
    if settings.method == "bca":
        jackknife = jackknife_values(per_case, statistic, memory_budget=settings.memory_budget)
    references = {}
    if any(name in PLUG_IN for name in estimates):
        point = point_values(per_case, statistic)
        references = {name: point[plug_in] for name, plug_in in PLUG_IN.items() if plug_in in point}
    intervals = {}
    for name, estimate in estimates.items():
        low, high = bootstrap_bounds(
            np.float64(estimate),
            resampled[name],
            None if jackknife is None else jackknife[name],
            level=settings.level,
            method=settings.method,
            contain_estimate=settings.method == "bca",
            reference=references.get(name),
        )
        intervals[name] = Interval(float(low), float(high))
    return intervals, resampled


def intervals_of(
    sums: CaseSums, pooled: Mapping[str, float], case_mean: Mapping[str, float], settings: IntervalSettings
) -> Intervals:
    """The intervals of a label's (or the top label's) pooled metrics and case means.

    Args:
        sums: its per-case sums.
        pooled, case_mean: the point estimates the report shows, by metric name.
        settings: resamples, seed, level, method, memory budget.
    """
    pooled_intervals, _ = _bounds(
        sums.pooled, sums.statistic, settings, {name: pooled[name] for name in sums.metrics}
    )
    mean_intervals, _ = _bounds(sums.case_mean, case_mean_statistic, settings, dict(case_mean))
    return Intervals(pooled_intervals, mean_intervals)


def compare(
    reference: str,
    point: Mapping[str, float],
    reference_point: Mapping[str, float],
    sums: CaseSums,
    reference_sums: CaseSums,
    settings: IntervalSettings,
) -> Paired:
    """Pooled metrics of a model against the reference's, on the same resampled (and left-out) cases.

    Args:
        reference: the reference model's name.
        point, reference_point: both models' pooled metrics on all cases, by name.
        sums, reference_sums: both models' per-case sums of the label.
        settings: as for the intervals.
    """
    joint, difference = paired(sums.pooled, reference_sums.pooled, sums.statistic)
    differences = {name: float(point[name] - reference_point[name]) for name in sums.metrics}
    intervals, resampled = _bounds(joint, difference, settings, differences)
    comparisons = {}
    for name in sums.metrics:
        values = resampled[name]
        better = values > 0 if name in HIGHER_IS_BETTER else values < 0
        comparisons[name] = MetricComparison(differences[name], intervals[name], float(better.mean()))
    return Paired(reference, comparisons)


def field_values(metrics: object) -> dict[str, float]:
    """A metrics dataclass as name -> value."""
    return {item.name: getattr(metrics, item.name) for item in fields(metrics)}
