"""The folder aggregator: score every case (in worker processes for -np > 1: `cases.iterate_cases`) and
merge into a report.

Results arrive in case order, so the float64 merge order, and thus the report, does not depend on the
number of processes. Per model, only O(labels x bins) pooled sums and each case's scores are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import calibration_errors, monai_mean, nan_mean
from nnunet_surgery.calibration.bootstrap import DEFAULT_LEVEL, case_weights
from nnunet_surgery.cases import iterate_cases
from nnunet_surgery.report.inputs import ReportInputs
from nnunet_surgery.report.scoring.case import (
    ModelCaseStats,
    ScoreTask,
    finish_case,
    prepare_score,
    score_case,
)
from nnunet_surgery.report.scoring.intervals import Resampled, compare, resample_label, resample_top_label
from nnunet_surgery.report.scoring.scores import (
    CalibrationErrors,
    LabelMetrics,
    LabelScores,
    TopLabelScores,
    TruthMetrics,
    VariantMetrics,
    nan_mean_of,
)
from nnunet_surgery.report.scoring.summary import (
    Bootstrap,
    CalibrationReport,
    ClasswiseMetrics,
    LabelSummary,
    ModelSummary,
    MonaiECE,
    TopLabelSummary,
)

__all__ = ["score_report"]


def _case_name(task: ScoreTask) -> str:
    return task.case.files.case


@dataclass(frozen=True)
class _ModelResamples:
    """One model's metrics over the bootstrap resamples: per label (layout order), and top-label."""

    labels: tuple[Resampled, ...]
    top_label: Resampled | None


@dataclass
class _ModelTotals:
    """One model's pooled statistics and each case's scores (and statistics, for the bootstrap)."""

    pooled: ModelCaseStats
    label_cases: list[dict[str, LabelScores]]
    keep_cases: bool
    top_label_cases: dict[str, TopLabelScores] = field(default_factory=dict)
    case_stats: list[ModelCaseStats] = field(default_factory=list)
    monai_cases: list[list[float]] = field(default_factory=list)

    def add(self, case: str, stats: ModelCaseStats) -> None:
        self.pooled = self.pooled.merge(stats)
        for per_case, label in zip(self.label_cases, stats.labels, strict=True):
            per_case[case] = LabelScores.of(label)
        if stats.top_label is not None:
            self.top_label_cases[case] = TopLabelScores.of(stats.top_label)
        if self.keep_cases:
            self.case_stats.append(stats.without_fine())
        if stats.monai is not None:
            self.monai_cases.append([calibration_errors(bins)["ece"] for bins in stats.monai])

    def resample(self, weights: np.ndarray) -> _ModelResamples:
        labels = tuple(
            resample_label(
                weights,
                [stats.labels[index] for stats in self.case_stats],
                [scores.metrics for scores in cases.values()],
            )
            for index, cases in enumerate(self.label_cases)
        )
        top = None
        if self.pooled.top_label is not None:
            top = resample_top_label(
                weights,
                [stats.top_label for stats in self.case_stats],
                [scores.errors for scores in self.top_label_cases.values()],
            )
        return _ModelResamples(labels, top)

    def summary(
        self,
        name: str,
        folders: tuple[Path, ...],
        label_names: tuple[str, ...],
        resamples: _ModelResamples | None,
        level: float,
    ) -> ModelSummary:
        labels = {}
        for index, (label, pooled, cases) in enumerate(
            zip(label_names, self.pooled.labels, self.label_cases, strict=True)
        ):
            truths = [scores.truth for scores in cases.values()]
            labels[label] = LabelSummary(
                pooled=LabelScores.of(pooled),
                case_mean=nan_mean_of(LabelMetrics, (scores.metrics for scores in cases.values())),
                truth_case_mean=None if pooled.truth is None else nan_mean_of(TruthMetrics, truths),
                variants_case_mean=nan_mean_of(
                    VariantMetrics, (scores.variants for scores in cases.values())
                ),
                reliability=pooled.reliability,
                cases=cases,
                intervals=None if resamples is None else resamples.labels[index].intervals(level),
            )
        top = self.pooled.top_label
        top_label = None
        if top is not None:
            top_label = TopLabelSummary(
                pooled=TopLabelScores.of(top),
                case_mean=nan_mean_of(
                    CalibrationErrors, (scores.errors for scores in self.top_label_cases.values())
                ),
                reliability=top,
                cases=self.top_label_cases,
                intervals=None if resamples is None else resamples.top_label.intervals(level),
            )
        pooled_scores = [label.pooled for label in labels.values()]
        classwise = ClasswiseMetrics(
            ece=nan_mean([scores.metrics.ece for scores in pooled_scores]),
            ece_equal_mass=nan_mean([scores.variants.ece_equal_mass for scores in pooled_scores]),
            ce_rms=nan_mean([scores.variants.ce_rms for scores in pooled_scores]),
        )
        monai = None
        if self.pooled.monai is not None:
            errors = np.array(self.monai_cases, dtype=np.float64).reshape(-1, len(label_names))
            per_label = {label: nan_mean(errors[:, index]) for index, label in enumerate(label_names)}
            monai = MonaiECE(mean=monai_mean(errors), per_label=per_label)
        return ModelSummary(
            name=name, folders=folders, labels=labels, top_label=top_label, classwise=classwise, monai=monai
        )


def _with_paired(
    model: ModelSummary,
    reference: ModelSummary,
    resamples: _ModelResamples,
    reference_resamples: _ModelResamples,
    level: float,
) -> ModelSummary:
    """`model` with each label's (and the top label's) comparison against `reference` filled in."""
    labels = {
        name: replace(
            label,
            paired=compare(
                reference.name,
                label.pooled.metrics,
                reference.labels[name].pooled.metrics,
                resamples.labels[index],
                reference_resamples.labels[index],
                level,
            ),
        )
        for index, (name, label) in enumerate(model.labels.items())
    }
    top_label = model.top_label
    if top_label is not None:
        top_label = replace(
            top_label,
            paired=compare(
                reference.name,
                top_label.pooled.errors,
                reference.top_label.pooled.errors,
                resamples.top_label,
                reference_resamples.top_label,
                level,
            ),
        )
    return replace(model, labels=labels, top_label=top_label)


def score_report(inputs: ReportInputs, *, progress: bool = True) -> CalibrationReport:
    """Score all cases and merge them per model into the typed report, with bootstrap intervals and
    paired comparisons when the run's `bootstrap` > 0.

    Args:
        inputs: the checked inputs (`read_inputs`): options, layout, models and one task per case.
        progress: show a progress bar on a terminal.

    Raises:
        InputError: a case's files fail a check, or a worker process died.
    """
    layout, options, run = inputs.dataset.layout, inputs.options.scoring, inputs.options.run
    models = inputs.models
    with_truth = inputs.sources.truth_folder is not None
    totals = [
        _ModelTotals(
            ModelCaseStats.zeros(layout, options, with_truth=with_truth),
            [{} for _ in layout.names],
            keep_cases=run.bootstrap > 0,
        )
        for _ in models
    ]
    tasks = [ScoreTask(case, options) for case in inputs.cases]
    results = iterate_cases(
        score_case,
        tasks,
        run.num_processes,
        _case_name,
        desc="report",
        progress=progress,
        split=(prepare_score, finish_case),
    )
    roi_voxels = {}
    for result in results:
        roi_voxels[result.case] = result.n_roi
        for model_totals, stats in zip(totals, result.models, strict=True):
            model_totals.add(result.case, stats)
    bootstrap, resamples = None, [None] * len(models)
    if run.bootstrap > 0:
        bootstrap = Bootstrap(run.bootstrap, run.seed, DEFAULT_LEVEL)
        weights = case_weights(len(tasks), run.bootstrap, run.seed)
        resamples = [model_totals.resample(weights) for model_totals in totals]
    summaries = [
        model_totals.summary(name, folders, layout.names, model_resamples, DEFAULT_LEVEL)
        for model_totals, (name, folders), model_resamples in zip(totals, models, resamples, strict=True)
    ]
    if bootstrap is not None:
        summaries[1:] = [
            _with_paired(summary, summaries[0], model_resamples, resamples[0], bootstrap.level)
            for summary, model_resamples in zip(summaries[1:], resamples[1:], strict=True)
        ]
    return CalibrationReport(
        n_bins=options.n_bins,
        roi=str(inputs.options.roi),
        roi_voxels=roi_voxels,
        label_names=layout.names,
        region_based=layout.region_based,
        sources=inputs.sources,
        models=tuple(summaries),
        bootstrap=bootstrap,
        preset=options.preset,
    )
