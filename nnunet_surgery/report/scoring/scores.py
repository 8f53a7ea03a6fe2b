"""Typed metrics of one label (or the top label) on one case or pooled over a dataset.

The formulas live in `nnunet_surgery.calibration` (docs/calibration.md); this module gives their results
names and types, so that the outputs read fields instead of dictionary keys. The field names are the
keys of calibration.json and the columns of calibration.csv.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TypeVar

from nnunet_surgery.calibration import (
    BinnedStats,
    LabelStats,
    calibration_errors,
    equal_mass_ece,
    label_metrics,
    nan_mean,
    rms_calibration_error,
    truth_metrics,
)

__all__ = [
    "HIGHER_IS_BETTER",
    "CalibrationErrors",
    "Estimators",
    "LabelMetrics",
    "LabelScores",
    "TopLabelScores",
    "TruthMetrics",
    "VariantMetrics",
    "field_names",
    "nan_mean_of",
]


#: Metrics for which a higher value is better (all others: lower is better).
HIGHER_IS_BETTER = frozenset({"dice"})


@dataclass(frozen=True)
class CalibrationErrors:
    """Binned calibration errors (docs/calibration.md#binned-errors): ECE, MCE, ACE; NaN without voxels."""

    ece: float
    mce: float
    ace: float


@dataclass(frozen=True)
class LabelMetrics:
    """One-vs-rest metrics of a label: NLL, ECE, MCE, ACE, Brier over the ROI; Dice over all voxels."""

    nll: float
    ece: float
    mce: float
    ace: float
    brier: float
    dice: float


@dataclass(frozen=True)
class TruthMetrics:
    """Distance of the predictions p to the true probabilities p* (docs/calibration.md#truth).

    Attributes:
        mae: mean |p - p*|.
        ece: per bin of p, |mean p - mean p*|, weighted by the bins' voxel counts.
        ece_truth_self: ECE of p* against the labels: what a perfect model gets (the sampling floor).
    """

    mae: float
    ece: float
    ece_truth_self: float


@dataclass(frozen=True)
class VariantMetrics:
    """Estimator variants of a label's calibration error (docs/calibration.md#estimator-variants).

    Attributes:
        ece_equal_mass: ECE over equal-mass (adaptive) bins, as many as the equal-width ones: what
            torch-uncertainty calls ACE and netcal computes with `equal_intervals=False`.
        ce_rms: RMS (L2) calibration error over the equal-width bins (torchmetrics' `norm="l2"`).
    """

    ece_equal_mass: float
    ce_rms: float

    @classmethod
    def of(cls, stats: LabelStats) -> VariantMetrics:
        reliability = stats.reliability
        equal_mass = math.nan if stats.fine is None else equal_mass_ece(stats.fine, reliability.n_bins)
        return cls(equal_mass, rms_calibration_error(reliability))


@dataclass(frozen=True)
class Estimators:
    """Bias-aware estimates of a label's pooled calibration error, beside the plug-in ones
    (docs/calibration.md#bias-of-the-plug-in-errors, #smooth-ece), from the per-case sums
    (`calibration.pooled.label_statistic`).

    Attributes:
        ce_l2sq: plug-in squared L2 error sum_b n_b/N g_b^2 (the square of `ce_rms`).
        ce_l2sq_debiased: debiased squared L2 error (Kumar et al. 2019), case-level variance; may be < 0.
        ece_debiased: bias-corrected ECE, case-level variance; may be < 0.
        smooth_ece: smooth ECE (Blasiok and Nakkiran 2023; relplot's smECE) of the fine histogram.
    """

    ce_l2sq: float
    ce_l2sq_debiased: float
    ece_debiased: float
    smooth_ece: float


@dataclass(frozen=True)
class LabelScores:
    """A label's metrics with the counts behind them, on one case or pooled.

    Attributes:
        metrics: the calibration metrics and Dice.
        n_voxels: ROI voxels scored.
        tp, fp, fn: hard confusion counts of the Dice.
        truth: distances to p*, or None without a truth folder.
        variants: the estimator variants.
        estimators: the bias-aware estimates (pooled scores only; None for a case).
    """

    metrics: LabelMetrics
    n_voxels: int
    tp: int
    fp: int
    fn: int
    truth: TruthMetrics | None
    variants: VariantMetrics
    estimators: Estimators | None = None

    @classmethod
    def of(cls, stats: LabelStats) -> LabelScores:
        truth = None if stats.truth is None else TruthMetrics(**truth_metrics(stats.truth))
        metrics = LabelMetrics(**label_metrics(stats))
        return cls(
            metrics,
            int(stats.n),
            int(stats.tp),
            int(stats.fp),
            int(stats.fn),
            truth,
            VariantMetrics.of(stats),
        )


@dataclass(frozen=True)
class TopLabelScores:
    """Top-label calibration errors (confidence max_c p_c, outcome argmax == reference) and voxel count."""

    errors: CalibrationErrors
    n_voxels: int

    @property
    def metrics(self) -> CalibrationErrors:
        """The errors, under the name `LabelScores` uses for its metrics."""
        return self.errors

    @classmethod
    def of(cls, stats: BinnedStats) -> TopLabelScores:
        return cls(CalibrationErrors(**calibration_errors(stats)), int(stats.total))


Metrics = TypeVar("Metrics", CalibrationErrors, Estimators, LabelMetrics, TruthMetrics, VariantMetrics)


def field_names(kind: type) -> tuple[str, ...]:
    """The metric names of a metrics class, in declaration order."""
    return tuple(item.name for item in fields(kind))


def nan_mean_of(kind: type[Metrics], items: Iterable[Metrics]) -> Metrics:
    """Field-wise mean over `items`, ignoring NaN (a case where a metric is undefined): the case mean."""
    items = list(items)
    return kind(**{name: nan_mean([getattr(item, name) for item in items]) for name in field_names(kind)})
