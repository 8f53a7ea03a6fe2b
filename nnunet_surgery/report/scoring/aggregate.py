"""The folder aggregator: score every case (in worker processes for -np > 1: `cases.iterate_cases`) and
merge into a report.

Results arrive in case order, so the float64 merge order, and thus the report, does not depend on the
number of processes, nor on whether the cases were scored in one run or in shards (`pool_cases` pools
both). Per model, only O(labels x bins) pooled sums (with the case-level products of the debiased
errors, `calibration.pooled`) and each case's scores are kept; with the bootstrap also each case's row of
per-case sums (6 x bins values per label), which `intervals` resamples in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import BinnedStats, LabelStats, calibration_errors, monai_mean, nan_mean
from nnunet_surgery.calibration.pooled import BINNED_KEYS, FINE_KEYS, label_case_sums, label_statistic
from nnunet_surgery.cases import CaseTask, iterate_cases
from nnunet_surgery.report.inputs import ReportInputs, RunOptions, Sources
from nnunet_surgery.report.scoring.case import (
    CaseStats,
    ModelCaseStats,
    ScoreTask,
    finish_case,
    prepare_score,
    score_case,
)
from nnunet_surgery.report.scoring.intervals import (
    CaseSums,
    IntervalSettings,
    case_mean_sums,
    compare,
    field_values,
    intervals_of,
    top_label_statistic,
)
from nnunet_surgery.report.scoring.memory import check_resampling_memory, interval_settings
from nnunet_surgery.report.scoring.scores import (
    CalibrationErrors,
    Estimators,
    LabelMetrics,
    LabelScores,
    TopLabelScores,
    TruthMetrics,
    VariantMetrics,
    field_names,
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

__all__ = ["PoolingSetting", "check_pooling_memory", "pool_cases", "score_cases", "score_report"]


def _case_name(task: ScoreTask) -> str:
    return task.case.files.case


def _with_fine(stats: LabelStats) -> LabelStats:
    """The statistics with a fine histogram: at >= FINE_BINS bins the reliability bins are the fine ones."""
    return stats if stats.fine is not None else replace(stats, fine=stats.reliability)


def _label_row(stats: LabelStats) -> dict[str, np.ndarray]:
    """One case's row of a label's per-case sums, (1, ...) arrays (`calibration.pooled.label_case_sums`)."""
    return label_case_sums([_with_fine(stats)], fine=True)


def _top_row(stats: BinnedStats) -> dict[str, np.ndarray]:
    """One case's row of the top label's per-case sums: its bins, (1, B) arrays."""
    return {name: getattr(stats, name)[None].astype(np.float64) for name in BINNED_KEYS}


def _add_row(total: dict[str, np.ndarray] | None, row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`total + row`, key by key, in case order (the first row starts the total)."""
    if total is None:
        return {name: values.copy() for name, values in row.items()}
    for name, values in row.items():
        total[name] += values
    return total


def _stacked(rows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """(1, ...) rows -> (n, ...) arrays, emptying `rows` as it goes."""
    names = list(rows[0])
    stacked = {}
    for name in names:
        stacked[name] = np.concatenate([row.pop(name) for row in rows])
    rows.clear()
    return stacked


def pooled_estimators(total: dict[str, np.ndarray]) -> Estimators:
    """The bias-aware estimates of a label from its per-case sums summed over the cases."""
    metrics = label_statistic(total)
    return Estimators(**{name: float(metrics[name][0]) for name in field_names(Estimators)})


@dataclass(frozen=True)
class _ModelSums:
    """One model's per-case sums for the intervals: per label (layout order), and top-label."""

    labels: tuple[CaseSums, ...]
    top_label: CaseSums | None


#: The pooled metrics of a label that get intervals and paired comparisons, in output order. Not the smooth
#: ECE: one resample of it costs a smoothing of the 2^16-bin histogram (about 0.4 s on spread-out
#: probabilities), so it is a point estimate (docs/calibration.md#which-estimate-to-read).
LABEL_INTERVAL_METRICS = (
    *field_names(LabelMetrics),
    *(name for name in field_names(Estimators) if name != "smooth_ece"),
)


@dataclass
class _ModelTotals:
    """One model's pooled statistics, each case's scores, the running per-case sums of each label (fine
    histogram included), and (for the bootstrap) each case's row of them without the fine histogram."""

    pooled: ModelCaseStats | None
    label_cases: list[dict[str, LabelScores]]
    keep_cases: bool
    top_label_cases: dict[str, TopLabelScores] = field(default_factory=dict)
    label_totals: list[dict[str, np.ndarray] | None] = field(default_factory=list)
    label_rows: list[list[dict[str, np.ndarray]]] = field(default_factory=list)
    top_rows: list[dict[str, np.ndarray]] = field(default_factory=list)
    monai_cases: list[list[float]] = field(default_factory=list)

    def add(self, case: str, stats: ModelCaseStats) -> None:
        self.pooled = stats if self.pooled is None else self.pooled.merge(stats)
        if not self.label_totals:
            self.label_totals = [None] * len(stats.labels)
            self.label_rows = [[] for _ in stats.labels]
        for index, (per_case, label) in enumerate(zip(self.label_cases, stats.labels, strict=True)):
            per_case[case] = LabelScores.of(label)
            row = _label_row(label)
            self.label_totals[index] = _add_row(self.label_totals[index], row)
            if self.keep_cases:
                self.label_rows[index].append({k: v for k, v in row.items() if k not in FINE_KEYS})
        if stats.top_label is not None:
            self.top_label_cases[case] = TopLabelScores.of(stats.top_label)
            if self.keep_cases:
                self.top_rows.append(_top_row(stats.top_label))
        if stats.monai is not None:
            self.monai_cases.append([calibration_errors(bins)["ece"] for bins in stats.monai])

    def case_sums(self) -> _ModelSums:
        """The kept per-case rows as (n, ...) sums (the rows are released)."""
        labels = tuple(
            CaseSums(
                _stacked(rows),
                case_mean_sums(
                    [field_values(scores.metrics) for scores in cases.values()], field_names(LabelMetrics)
                ),
                label_statistic,
                LABEL_INTERVAL_METRICS,
            )
            for rows, cases in zip(self.label_rows, self.label_cases, strict=True)
        )
        top = None
        if self.top_rows:
            names = field_names(CalibrationErrors)
            top = CaseSums(
                _stacked(self.top_rows),
                case_mean_sums([field_values(s.errors) for s in self.top_label_cases.values()], names),
                top_label_statistic,
                names,
            )
        return _ModelSums(labels, top)

    def summary(
        self,
        name: str,
        folders: tuple[Path, ...],
        label_names: tuple[str, ...],
        sums: _ModelSums | None,
        settings: IntervalSettings | None,
    ) -> ModelSummary:
        labels = {}
        for index, (label, pooled, cases, total) in enumerate(
            zip(label_names, self.pooled.labels, self.label_cases, self.label_totals, strict=True)
        ):
            truths = [scores.truth for scores in cases.values()]
            pooled_scores = replace(LabelScores.of(pooled), estimators=pooled_estimators(total))
            case_mean = nan_mean_of(LabelMetrics, (scores.metrics for scores in cases.values()))
            intervals = None
            if sums is not None:
                intervals = intervals_of(
                    sums.labels[index], _pooled_values(pooled_scores), field_values(case_mean), settings
                )
            labels[label] = LabelSummary(
                pooled=pooled_scores,
                case_mean=case_mean,
                truth_case_mean=None if pooled.truth is None else nan_mean_of(TruthMetrics, truths),
                variants_case_mean=nan_mean_of(
                    VariantMetrics, (scores.variants for scores in cases.values())
                ),
                reliability=pooled.reliability,
                cases=cases,
                intervals=intervals,
            )
        top = self.pooled.top_label
        top_label = None
        if top is not None:
            top_scores = TopLabelScores.of(top)
            case_mean = nan_mean_of(
                CalibrationErrors, (scores.errors for scores in self.top_label_cases.values())
            )
            intervals = None
            if sums is not None:
                intervals = intervals_of(
                    sums.top_label, field_values(top_scores.errors), field_values(case_mean), settings
                )
            top_label = TopLabelSummary(
                pooled=top_scores,
                case_mean=case_mean,
                reliability=top,
                cases=self.top_label_cases,
                intervals=intervals,
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


def _pooled_values(scores: LabelScores) -> dict[str, float]:
    """A label's pooled metrics and bias-aware estimates, by name (those of LABEL_INTERVAL_METRICS)."""
    return {**field_values(scores.metrics), **field_values(scores.estimators)}


def _with_paired(
    model: ModelSummary,
    reference: ModelSummary,
    sums: _ModelSums,
    reference_sums: _ModelSums,
    settings: IntervalSettings,
) -> ModelSummary:
    """`model` with each label's (and the top label's) comparison against `reference` filled in."""
    labels = {
        name: replace(
            label,
            paired=compare(
                reference.name,
                _pooled_values(label.pooled),
                _pooled_values(reference.labels[name].pooled),
                sums.labels[index],
                reference_sums.labels[index],
                settings,
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
                field_values(top_label.pooled.errors),
                field_values(reference.top_label.pooled.errors),
                sums.top_label,
                reference_sums.top_label,
                settings,
            ),
        )
    return replace(model, labels=labels, top_label=top_label)


@dataclass(frozen=True)
class PoolingSetting:
    """Everything pooling needs besides the cases' statistics: what a partial file of `--shard` records,
    and what must agree between the partial files that `report merge` pools.

    Attributes:
        n_bins, roi, label_names, region_based, sources, preset: as in `CalibrationReport`.
        models: (name, prediction folders) per model, in model order.
        bootstrap, seed, interval: the bootstrap's resamples, seed and interval method.
    """

    n_bins: int
    roi: str
    label_names: tuple[str, ...]
    region_based: bool
    sources: Sources
    models: tuple[tuple[str, tuple[Path, ...]], ...]
    preset: str | None
    bootstrap: int
    seed: int
    interval: str

    @classmethod
    def of(cls, inputs: ReportInputs) -> PoolingSetting:
        options, run, layout = inputs.options.scoring, inputs.options.run, inputs.dataset.layout
        return cls(
            n_bins=options.n_bins,
            roi=str(inputs.options.roi),
            label_names=layout.names,
            region_based=layout.region_based,
            sources=inputs.sources,
            models=inputs.models,
            preset=options.preset,
            bootstrap=run.bootstrap,
            seed=run.seed,
            interval=run.interval,
        )

    @property
    def run(self) -> RunOptions:
        return RunOptions(bootstrap=self.bootstrap, seed=self.seed, interval=self.interval)


def check_pooling_memory(setting: PoolingSetting, n_cases: int) -> None:
    """`check_resampling_memory` of a run (nothing to check without bootstrap)."""
    if setting.bootstrap > 0:
        check_resampling_memory(n_cases, setting.n_bins, len(setting.models), interval_settings(setting.run))


def score_cases(inputs: ReportInputs, tasks: list[CaseTask], *, progress: bool = True) -> Iterator[CaseStats]:
    """Each case's statistics for every model, in case order (worker processes for -np > 1)."""
    options, run = inputs.options.scoring, inputs.options.run
    return iterate_cases(
        score_case,
        [ScoreTask(case, options) for case in tasks],
        run.num_processes,
        _case_name,
        desc="report",
        progress=progress,
        split=(prepare_score, finish_case),
    )


def pool_cases(setting: PoolingSetting, results: Iterable[CaseStats]) -> CalibrationReport:
    """Merge the cases' statistics (in case order) per model into the typed report, with bootstrap
    intervals and paired comparisons when `setting.bootstrap` > 0.

    The same cases in the same order give the same report bit for bit, whether they were scored in one
    run or in shards (`report merge`).
    """
    models, run = setting.models, setting.run
    totals = [
        _ModelTotals(None, [{} for _ in setting.label_names], keep_cases=run.bootstrap > 0) for _ in models
    ]
    roi_voxels = {}
    for result in results:
        roi_voxels[result.case] = result.n_roi
        for model_totals, stats in zip(totals, result.models, strict=True):
            model_totals.add(result.case, stats)
    bootstrap, settings, sums = None, None, [None] * len(models)
    if run.bootstrap > 0:
        settings = interval_settings(run)
        bootstrap = Bootstrap(run.bootstrap, run.seed, settings.level, settings.method)
        sums = [model_totals.case_sums() for model_totals in totals]
    summaries = [
        model_totals.summary(name, folders, setting.label_names, model_sums, settings)
        for model_totals, (name, folders), model_sums in zip(totals, models, sums, strict=True)
    ]
    if settings is not None:
        summaries[1:] = [
            _with_paired(summary, summaries[0], model_sums, sums[0], settings)
            for summary, model_sums in zip(summaries[1:], sums[1:], strict=True)
        ]
    return CalibrationReport(
        n_bins=setting.n_bins,
        roi=setting.roi,
        roi_voxels=roi_voxels,
        label_names=setting.label_names,
        region_based=setting.region_based,
        sources=setting.sources,
        models=tuple(summaries),
        bootstrap=bootstrap,
        preset=setting.preset,
    )


def score_report(inputs: ReportInputs, *, progress: bool = True) -> CalibrationReport:
    """Score all cases and merge them per model into the typed report, with bootstrap intervals and
    paired comparisons when the run's `bootstrap` > 0.

    Args:
        inputs: the checked inputs (`read_inputs`): options, layout, models and one task per case.
        progress: show a progress bar on a terminal.

    Raises:
        InputError: a case's files fail a check, a worker process died, or `--bins` is too large for
            the bootstrap's memory budget (checked before any case is read).
    """
    setting = PoolingSetting.of(inputs)
    check_pooling_memory(setting, len(inputs.cases))
    return pool_cases(setting, score_cases(inputs, list(inputs.cases), progress=progress))
