"""calibration.csv (tidy: a row per model, label and scope) and calibration.md (paper-style tables)."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_surgery.report.scoring import (
    CalibrationErrors,
    CalibrationReport,
    LabelMetrics,
    LabelSummary,
    TopLabelSummary,
    TruthMetrics,
)
from nnunet_surgery.report.scoring.metrics import field_names

__all__ = ["CSV_COLUMNS", "markdown_report", "write_csv", "write_markdown"]

TOP_LABEL = "top_label"
SCOPES = ("pooled", "case_mean")
CSV_COLUMNS = (
    "model",
    "label",
    "kind",
    "scope",
    *field_names(LabelMetrics),
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
        truth = summary.pooled.truth if pooled else summary.truth_case_mean
        row = {"model": model, "label": label, "kind": kind, "scope": scope, **asdict(metrics)}
        if pooled:
            row["n_voxels"] = summary.pooled.n_voxels
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
    """A column of the markdown tables: its title, how to read it (from a `LabelSummary`, or a
    `TopLabelSummary` for the top-label table), and whether lower is better."""

    title: str
    value: Callable[[LabelSummary | TopLabelSummary], float]
    lower_is_better: bool = True


_COLUMNS = (
    _Column("NLL", lambda label: label.pooled.metrics.nll),
    _Column("ECE", lambda label: label.pooled.metrics.ece),
    _Column("MCE", lambda label: label.pooled.metrics.mce),
    _Column("Brier", lambda label: label.pooled.metrics.brier),
    _Column("DSC", lambda label: label.case_mean.dice, lower_is_better=False),
)
_TRUTH_COLUMN = _Column("MAE to p*", lambda label: label.pooled.truth.mae)
_TOP_LABEL_COLUMNS = tuple(
    _Column(name.upper(), lambda summary, name=name: getattr(summary.pooled.errors, name))
    for name in field_names(CalibrationErrors)
)


def _formatter(values: list[float]) -> Callable[[float], str]:
    finite = [abs(v) for v in values if math.isfinite(v)]
    scientific = bool(finite) and 0 < max(finite) < 1e-3
    return lambda v: "n/a" if not math.isfinite(v) else (f"{v:.2e}" if scientific else f"{v:.4f}")


def _table(models: list[str], columns: list[_Column], values: list[list[float]]) -> list[str]:
    """A markdown table: a row per model, a column per `columns`; `values[column][model]`; best in bold."""
    lines = ["| Model | " + " | ".join(c.title for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    cells: list[list[str]] = [[] for _ in models]
    for spec, column in zip(columns, values):
        fmt = _formatter(column)
        finite = [v for v in column if math.isfinite(v)]
        best = fmt(min(finite) if spec.lower_is_better else max(finite)) if finite else None
        for row, value in zip(cells, column):
            text = fmt(value)
            row.append(f"**{text}**" if text == best and len(models) > 1 else text)
    return lines + [f"| {model} | " + " | ".join(row) + " |" for model, row in zip(models, cells)]


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def markdown_report(report: CalibrationReport) -> str:
    """Paper-style tables: a row per model; NLL, ECE, MCE, Brier pooled over ROI voxels, DSC as case mean."""
    models = [model.name for model in report.models]
    columns = [*_COLUMNS, _TRUTH_COLUMN] if report.has_truth else list(_COLUMNS)

    def label_values(label: str) -> list[list[float]]:
        return [[column.value(model.labels[label]) for model in report.models] for column in columns]

    lines = [
        "# Calibration report",
        "",
        f"ROI: `{report.roi}`; {report.n_bins} equal-width bins. NLL, ECE, MCE and Brier pooled over all ROI "
        "voxels of the dataset (one-vs-rest per label); DSC: mean over cases (nnU-Net's convention, all voxels)"
        + ("; MAE to p*: mean |p - p*| against the true probabilities" if report.has_truth else "")
        + ". Best of each column in bold.",
    ]
    per_label = {label: label_values(label) for label in report.label_names}
    if len(report.label_names) > 1:
        mean = [
            [
                _finite_mean([per_label[label][c][m] for label in report.label_names])
                for m in range(len(models))
            ]
            for c in range(len(columns))
        ]
        lines += ["", "## Mean over labels", "", *_table(models, columns, mean)]
    for label, values in per_label.items():
        lines += ["", f"## {label}", "", *_table(models, columns, values)]
    if report.has_top_label and len(report.label_names) > 1:
        top = list(_TOP_LABEL_COLUMNS)
        values = [[column.value(model.top_label) for model in report.models] for column in top]
        lines += [
            "",
            "## Top-label (confidence max p, outcome argmax == reference)",
            "",
            *_table(models, top, values),
        ]
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, report: CalibrationReport) -> None:
    """Write `markdown_report(report)`."""
    Path(path).write_text(markdown_report(report))
