"""calibration.csv (tidy: a row per model, label and scope) and calibration.md (paper-style tables)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from nnunet_surgery.calibration.bootstrap import Interval
from nnunet_surgery.report.scoring import (
    CalibrationErrors,
    CalibrationReport,
    Estimators,
    LabelMetrics,
    LabelSummary,
    TopLabelSummary,
    TruthMetrics,
    VariantMetrics,
)
from nnunet_surgery.report.scoring.scores import HIGHER_IS_BETTER, field_names

__all__ = ["CSV_COLUMNS", "comparison_report", "markdown_report", "write_csv", "write_markdown"]

TOP_LABEL = "top_label"
SCOPES = ("pooled", "case_mean")
CSV_COLUMNS = (
    "model",
    "label",
    "kind",
    "scope",
    *field_names(LabelMetrics),
    *field_names(VariantMetrics),
    *field_names(Estimators),
    "n_voxels",
    *(f"truth_{name}" for name in field_names(TruthMetrics)),
)


def _csv_value(value: object) -> object:
    return repr(value) if isinstance(value, float) else value


def _label_rows(model: str, label: str, kind: str, summary: LabelSummary) -> list[dict]:
    rows = []
    for scope in SCOPES:
        pooled = scope == "pooled"
        metrics = summary.pooled.metrics if pooled else summary.case_mean
        variants = summary.pooled.variants if pooled else summary.variants_case_mean
        truth = summary.pooled.truth if pooled else summary.truth_case_mean
        row = {
            "model": model,
            "label": label,
            "kind": kind,
            "scope": scope,
            **asdict(metrics),
            **asdict(variants),
        }
        if pooled:
            row["n_voxels"] = summary.pooled.n_voxels
            if summary.pooled.estimators is not None:
                row.update(asdict(summary.pooled.estimators))
        if truth is not None:
            row.update({f"truth_{name}": value for name, value in asdict(truth).items()})
        rows.append(row)
    return rows


def _top_label_rows(model: str, summary: TopLabelSummary) -> list[dict]:
    pooled = {**asdict(summary.pooled.errors), "n_voxels": summary.pooled.n_voxels}
    return [
        {"model": model, "label": TOP_LABEL, "kind": TOP_LABEL, "scope": scope, **values}
        for scope, values in zip(SCOPES, (pooled, asdict(summary.case_mean)))
    ]


def write_csv(path: str | Path, report: CalibrationReport) -> None:
    """One row per model x label x scope (pooled, case_mean), plus top-label rows for softmax datasets."""
    kind = "region" if report.region_based else "label"
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        for model in report.models:
            rows = [
                row
                for label, summary in model.labels.items()
                for row in _label_rows(model.name, label, kind, summary)
            ]
            if model.top_label is not None:
                rows += _top_label_rows(model.name, model.top_label)
            writer.writerows({key: _csv_value(value) for key, value in row.items()} for row in rows)


@dataclass(frozen=True)
class _Column:
    """A column of the markdown tables: its title and which metric of which scope it shows."""

    title: str
    scope: Literal["pooled", "case_mean", "truth", "estimators"]
    metric: str

    @property
    def lower_is_better(self) -> bool:
        return self.metric not in HIGHER_IS_BETTER

    def value(self, summary: LabelSummary | TopLabelSummary) -> float:
        if self.scope == "truth":
            return getattr(summary.pooled.truth, self.metric)
        if self.scope == "case_mean":
            return getattr(summary.case_mean, self.metric)
        return _pooled_value(summary, self.metric)

    def interval(self, summary: LabelSummary | TopLabelSummary) -> Interval | None:
        if summary.intervals is None or self.scope == "truth":
            return None
        scope = "case_mean" if self.scope == "case_mean" else "pooled"
        return getattr(summary.intervals, scope).get(self.metric)


def _pooled_value(summary: LabelSummary | TopLabelSummary, metric: str) -> float:
    """A pooled metric or bias-aware estimate of a label (or the top label's pooled error) by name."""
    estimators = getattr(summary.pooled, "estimators", None)
    if estimators is not None and metric in field_names(Estimators):
        return getattr(estimators, metric)
    return getattr(summary.pooled.metrics, metric)


_COLUMNS = (
    _Column("NLL", "pooled", "nll"),
    _Column("ECE", "pooled", "ece"),
    _Column("MCE", "pooled", "mce"),
    _Column("Brier", "pooled", "brier"),
    _Column("DSC", "case_mean", "dice"),
)
_TRUTH_COLUMN = _Column("MAE to p*", "truth", "mae")
_ESTIMATOR_COLUMNS = (
    _Column("ECE", "pooled", "ece"),
    _Column("ECE (bias-corrected)", "estimators", "ece_debiased"),
    _Column("smooth ECE", "estimators", "smooth_ece"),
    _Column("L2^2", "estimators", "ce_l2sq"),
    _Column("L2^2 (debiased)", "estimators", "ce_l2sq_debiased"),
)
_ESTIMATORS_NOTE = (
    "Bias-aware estimates of each label's pooled calibration error beside the plug-in ones (docs/"
    "calibration.md#bias-of-the-plug-in-errors): the plug-in ECE and squared L2 error (L2^2) are biased "
    "upwards by the bins' sampling noise; the bias-corrected ECE and the debiased L2^2 (Kumar et al. 2019) "
    "subtract the case-level noise and may be negative for a well-calibrated model; the smooth ECE "
    "(Blasiok and Nakkiran 2023) needs no bins."
)
_TOP_LABEL_COLUMNS = tuple(_Column(name.upper(), "pooled", name) for name in field_names(CalibrationErrors))


def _formatter(values: list[float]) -> Callable[[float], str]:
    finite = [abs(v) for v in values if math.isfinite(v)]
    scientific = bool(finite) and 0 < max(finite) < 1e-3
    return lambda v: "n/a" if not math.isfinite(v) else (f"{v:.2e}" if scientific else f"{v:.4f}")


def _table(
    models: list[str],
    columns: list[_Column],
    values: list[list[float]],
    intervals: list[list[Interval | None]] | None = None,
) -> list[str]:
    """A markdown table: a row per model, a column per `columns`; `values[column][model]`, best in bold,
    followed by its interval `[low, high]` where `intervals[column][model]` has one."""
    lines = ["| Model | " + " | ".join(c.title for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    cells: list[list[str]] = [[] for _ in models]
    for index, (spec, column) in enumerate(zip(columns, values)):
        fmt = _formatter(column)
        finite = [v for v in column if math.isfinite(v)]
        best = fmt(min(finite) if spec.lower_is_better else max(finite)) if finite else None
        for model, (row, value) in enumerate(zip(cells, column)):
            text = fmt(value)
            text = f"**{text}**" if text == best and len(models) > 1 else text
            interval = None if intervals is None else intervals[index][model]
            if interval is not None:
                text += f" [{fmt(interval.low)}, {fmt(interval.high)}]"
            row.append(text)
    return lines + [f"| {model} | " + " | ".join(row) + " |" for model, row in zip(models, cells)]


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _summary_table(
    models: list[str], columns: list[_Column], summaries: list[LabelSummary | TopLabelSummary]
) -> list[str]:
    """`_table` of one label (or the top label) of every model, with intervals where they exist."""
    values = [[column.value(summary) for summary in summaries] for column in columns]
    intervals = [[column.interval(summary) for summary in summaries] for column in columns]
    return _table(models, columns, values, intervals)


_VARIANTS_NOTE = (
    "Class-wise: mean over foreground labels of each label's pooled one-vs-rest value. ECE: equal-width "
    "bins (above); equal-mass: as many bins of equal voxel counts (torch-uncertainty's adaptive ACE); RMS: "
    "root-mean-square gap over the equal-width bins (torchmetrics' L2)."
)


def _variants_table(report: CalibrationReport) -> list[str]:
    """Class-wise ECE, equal-mass ECE and RMS CE per model (and MONAI's per-image ECE with its preset)."""
    columns = [
        _Column("class-wise ECE", "pooled", "ece"),
        _Column("class-wise ECE (equal-mass)", "pooled", "ece_equal_mass"),
        _Column("class-wise RMS CE", "pooled", "ce_rms"),
    ]
    values = [[getattr(model.classwise, column.metric) for model in report.models] for column in columns]
    if report.preset == "monai":
        columns.append(_Column("MONAI ECE (per image, mean)", "pooled", "ece"))
        values.append([model.monai.mean for model in report.models])
    return _table([model.name for model in report.models], columns, values)


def markdown_report(report: CalibrationReport) -> str:
    """Paper-style tables: a row per model; NLL, ECE, MCE, Brier pooled over ROI voxels, DSC as case mean,
    each with its bootstrap 95% interval `[low, high]` when the report has one."""
    models = [model.name for model in report.models]
    columns = [*_COLUMNS, _TRUTH_COLUMN] if report.has_truth else list(_COLUMNS)
    intervals_text = (
        ""
        if report.bootstrap is None
        else f" `[low, high]`: {report.bootstrap.level:.0%} {_method(report)} interval over "
        f"{report.bootstrap.resamples} case-level bootstrap resamples (seed {report.bootstrap.seed})."
    )
    lines = [
        "# Calibration report",
        "",
        f"ROI: `{report.roi}`; {report.n_bins} equal-width bins. NLL, ECE, MCE and Brier pooled over all ROI "
        "voxels of the dataset (one-vs-rest per label); DSC: mean over cases (nnU-Net's convention, all voxels)"
        + ("; MAE to p*: mean |p - p*| against the true probabilities" if report.has_truth else "")
        + ". Best of each column in bold."
        + intervals_text,
    ]
    if len(report.label_names) > 1:
        mean = [
            [
                _finite_mean([column.value(model.labels[label]) for label in report.label_names])
                for model in report.models
            ]
            for column in columns
        ]
        lines += ["", "## Mean over labels", "", *_table(models, columns, mean)]
    for label in report.label_names:
        summaries = [model.labels[label] for model in report.models]
        lines += ["", f"## {label}", "", *_summary_table(models, columns, summaries)]
    lines += ["", "## Estimator variants", "", _VARIANTS_NOTE, "", *_variants_table(report)]
    lines += ["", "## Bias-aware calibration errors", "", _ESTIMATORS_NOTE]
    for label in report.label_names:
        summaries = [model.labels[label] for model in report.models]
        lines += ["", f"### {label}", "", *_summary_table(models, list(_ESTIMATOR_COLUMNS), summaries)]
    if report.has_top_label and len(report.label_names) > 1:
        summaries = [model.top_label for model in report.models]
        lines += [
            "",
            "## Top-label (confidence max p, outcome argmax == reference)",
            "",
            *_summary_table(models, list(_TOP_LABEL_COLUMNS), summaries),
        ]
    return "\n".join(lines) + "\n"


def _method(report: CalibrationReport) -> str:
    """The interval's method as the tables name it."""
    return "BCa" if report.bootstrap.method == "bca" else "percentile"


def write_markdown(path: str | Path, report: CalibrationReport) -> None:
    """Write `markdown_report(report)`."""
    Path(path).write_text(markdown_report(report))


def _comparison_lines(
    name: str, summaries: list[LabelSummary | TopLabelSummary], models: list[str]
) -> list[str]:
    lines = []
    reference = summaries[0]
    for model, summary in zip(models[1:], summaries[1:]):
        paired = summary.paired
        lines += [
            "",
            f"### {name}: {model} vs {paired.reference}",
            "",
            f"| Metric | {paired.reference} | {model} | Difference [95% interval] | Interval excludes 0 | "
            f"{model} better in |",
            "|---|---:|---:|---:|:---:|---:|",
        ]
        for metric, comparison in paired.metrics.items():
            reference_value = _pooled_value(reference, metric)
            fmt = _formatter([reference_value, comparison.difference])
            interval = comparison.interval
            excludes = "yes" if interval.excludes(0.0) else "no"
            lines.append(
                f"| {metric} | {fmt(reference_value)} | "
                f"{fmt(_pooled_value(summary, metric))} | {fmt(comparison.difference)} "
                f"[{fmt(interval.low)}, {fmt(interval.high)}] | {excludes} | {comparison.fraction_better:.1%} |"
            )
    return lines


def comparison_report(report: CalibrationReport) -> str:
    """comparison.md: each model against the first, per label (and top label), pooled metrics.

    Differences are model - reference on all cases; the interval is the report's interval (BCa or
    percentile, `--interval`) of the paired case-level bootstrap; "better in" is the fraction of resamples in which the model is better
    (lower, or higher for Dice).
    """
    models = [model.name for model in report.models]
    lines = [
        "# Paired comparison with the reference model",
        "",
        f"Reference: `{models[0]}`. Pooled metrics over the ROI `{report.roi}` (Dice over all voxels); "
        f"difference = model - reference; {report.bootstrap.level:.0%} {_method(report)} interval of the paired "
        f"difference over {report.bootstrap.resamples} case-level bootstrap resamples (seed "
        f"{report.bootstrap.seed}), the same resampled cases for both models. An interval that excludes 0 "
        "means the difference is larger than case-to-case noise.",
    ]
    for label in report.label_names:
        lines += _comparison_lines(label, [model.labels[label] for model in report.models], models)
    if report.has_top_label:
        lines += _comparison_lines("top-label", [model.top_label for model in report.models], models)
    return "\n".join(lines) + "\n"
