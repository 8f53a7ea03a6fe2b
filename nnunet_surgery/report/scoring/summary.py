"""The typed result of scoring: what every output (json, csv, markdown, diagrams) renders.

A `CalibrationReport` holds, per model and label, the pooled scores, the case means, the pooled
reliability statistics and the per-case scores; nothing in it is formatted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.calibration import BinnedStats
from nnunet_surgery.report.inputs import Sources
from nnunet_surgery.report.scoring import scores
from nnunet_surgery.report.scoring.intervals import Intervals, Paired

__all__ = [
    "Bootstrap",
    "CalibrationReport",
    "ClasswiseMetrics",
    "LabelSummary",
    "ModelSummary",
    "MonaiECE",
    "Sources",
    "TopLabelSummary",
]


@dataclass(frozen=True)
class LabelSummary:
    """One label (or region) of one model over the dataset.

    Attributes:
        pooled: metrics over all ROI voxels of the dataset (Dice: over all non-ignored voxels).
        case_mean: mean over cases of each case's metrics, NaN ignored (DSC: nnU-Net's convention).
        truth_case_mean: case mean of the distances to p*, or None without a truth folder.
        variants_case_mean: case mean of the estimator variants (their pooled values: `pooled.variants`).
        reliability: pooled per-bin statistics (the reliability diagram).
        cases: each case's scores, in case order.
        intervals: bootstrap intervals of the pooled and case-mean metrics, or None without bootstrap.
        paired: this model against the reference (first) model, or None for the reference itself and
            without bootstrap.
    """

    pooled: scores.LabelScores
    case_mean: scores.LabelMetrics
    truth_case_mean: scores.TruthMetrics | None
    variants_case_mean: scores.VariantMetrics
    reliability: BinnedStats
    cases: dict[str, scores.LabelScores]
    intervals: Intervals | None = None
    paired: Paired | None = None


@dataclass(frozen=True)
class TopLabelSummary:
    """Top-label calibration of one model (softmax datasets): as `LabelSummary`, errors only."""

    pooled: scores.TopLabelScores
    case_mean: scores.CalibrationErrors
    reliability: BinnedStats
    cases: dict[str, scores.TopLabelScores]
    intervals: Intervals | None = None
    paired: Paired | None = None


@dataclass(frozen=True)
class ClasswiseMetrics:
    """Class-wise calibration errors: the mean over foreground labels (or regions) of each label's pooled
    one-vs-rest value (NaN-ignoring), for ECE, equal-mass ECE and RMS CE."""

    ece: float
    ece_equal_mass: float
    ce_rms: float


@dataclass(frozen=True)
class MonaiECE:
    """MONAI's `CalibrationErrorMetric` ECE ("expected", 20 bins, its edges, `include_background=False`).

    Attributes:
        mean: its `metric_reduction="mean"` over cases and labels.
        per_label: its `"mean_batch"`: per label, the mean over cases.
    """

    mean: float
    per_label: dict[str, float]


@dataclass(frozen=True)
class ModelSummary:
    """One model (prediction folder) of the report.

    Attributes:
        name: model name (`--names`, or the folder's name made unique).
        folders: its prediction folder, or the member folders of an ensemble (probabilities averaged).
        labels: per label name, in dataset.json channel order.
        top_label: top-label calibration, or None for region datasets.
        classwise: class-wise (mean over labels) calibration errors.
        monai: MONAI's per-image ECE (`--preset monai`), else None.
    """

    name: str
    folders: tuple[Path, ...]
    labels: dict[str, LabelSummary]
    top_label: TopLabelSummary | None
    classwise: ClasswiseMetrics
    monai: MonaiECE | None = None


@dataclass(frozen=True)
class Bootstrap:
    """How the intervals were made: `resamples` case-level resamples with `seed`, `level` coverage, read
    from the resamples by `method` ("bca" or "percentile")."""

    resamples: int
    seed: int
    level: float
    method: str = "bca"


@dataclass(frozen=True)
class CalibrationReport:
    """The whole report.

    Attributes:
        n_bins: number of equal-width confidence bins.
        roi: the ROI as the user wrote it (`all`, `band:D`, `mask:FOLDER`).
        roi_voxels: scored voxels per case, in case order.
        label_names: foreground label / region names in channel order.
        region_based: whether the channels are sigmoid regions.
        sources: the input paths.
        models: one summary per model, the first being the reference of comparisons.
        bootstrap: the bootstrap's settings, or None when no intervals were made.
        preset: the other tool's conventions also computed (`--preset`), or None.
    """

    n_bins: int
    roi: str
    roi_voxels: dict[str, int]
    label_names: tuple[str, ...]
    region_based: bool
    sources: Sources
    models: tuple[ModelSummary, ...]
    bootstrap: Bootstrap | None = None
    preset: str | None = None

    @property
    def has_truth(self) -> bool:
        """Whether true probability maps were scored."""
        return self.sources.truth_folder is not None

    @property
    def has_top_label(self) -> bool:
        """Whether the channels form a softmax, so that top-label calibration exists."""
        return not self.region_based
