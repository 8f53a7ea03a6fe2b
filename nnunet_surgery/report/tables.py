"""calibration.csv (tidy: a row per model, label and scope) and calibration.md (paper-style tables)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from nnunet_surgery.report.summary import LABEL_METRICS, TOP_LABEL_METRICS, TRUTH_METRICS

__all__ = ["CSV_COLUMNS", "markdown_report", "write_csv", "write_markdown"]

CSV_COLUMNS = (
    "model",
    "label",
    "kind",
    "scope",
    *LABEL_METRICS,
    "n_voxels",
    *(f"truth_{key}" for key in TRUTH_METRICS),
)
# (column title, where the value comes from, lower is better)
_TABLE = (
    ("NLL", ("pooled", "nll"), True),
    ("ECE", ("pooled", "ece"), True),
    ("MCE", ("pooled", "mce"), True),
    ("Brier", ("pooled", "brier"), True),
    ("DSC", ("case_mean", "dice"), False),
)
_TRUTH_COLUMN = ("MAE to p*", ("truth", "pooled", "mae"), True)


def _csv_rows(summary: dict) -> list[dict]:
    rows = []
    kind = "region" if summary["region_based"] else "label"
    for model in summary["model_order"]:
        entry = summary["models"][model]
        for label, metrics in entry["labels"].items():
            for scope in ("pooled", "case_mean"):
                row = {"model": model, "label": label, "kind": kind, "scope": scope, **metrics[scope]}
                if "truth" in metrics:
                    row.update({f"truth_{key}": value for key, value in metrics["truth"][scope].items()})
                rows.append(row)
        if "top_label" in entry:
            for scope in ("pooled", "case_mean"):
                rows.append(
                    {
                        "model": model,
                        "label": "top_label",
                        "kind": "top_label",
                        "scope": scope,
                        **entry["top_label"][scope],
                    }
                )
    return rows


def write_csv(path: str | Path, summary: dict) -> None:
    """One row per model x label x scope (pooled, case_mean), plus top-label rows for softmax datasets."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore", restval="")
        writer.writeheader()
        for row in _csv_rows(summary):
            writer.writerow(
                {key: repr(value) if isinstance(value, float) else value for key, value in row.items()}
            )


def _lookup(entry: dict, path: tuple[str, ...]) -> float:
    for key in path:
        entry = entry[key]
    return float(entry)


def _formatter(values: list[float]):
    finite = [abs(v) for v in values if math.isfinite(v)]
    scientific = bool(finite) and 0 < max(finite) < 1e-3
    return lambda v: "n/a" if not math.isfinite(v) else (f"{v:.2e}" if scientific else f"{v:.4f}")


def _table(rows: list[tuple[str, dict]], columns: list[tuple[str, tuple[str, ...], bool]]) -> list[str]:
    lines = ["| Model | " + " | ".join(title for title, _, _ in columns) + " |"]
    lines.append("|---|" + "---:|" * len(columns))
    cells = {name: [] for name, _ in rows}
    for _, path, lower in columns:
        values = [_lookup(entry, path) for _, entry in rows]
        fmt = _formatter(values)
        finite = [v for v in values if math.isfinite(v)]
        best = fmt(min(finite) if lower else max(finite)) if finite else None
        for (name, _), value in zip(rows, values):
            text = fmt(value)
            cells[name].append(f"**{text}**" if text == best and len(rows) > 1 else text)
    lines += [f"| {name} | " + " | ".join(cells[name]) + " |" for name, _ in rows]
    return lines


def _mean_over_labels(labels: dict) -> dict:
    def mean(path: tuple[str, ...]) -> float:
        values = [_lookup(entry, path) for entry in labels.values()]
        finite = [v for v in values if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else math.nan

    mean_entry: dict = {"pooled": {}, "case_mean": {}}
    for _, path, _ in (*_TABLE, _TRUTH_COLUMN):
        if path[0] == "truth" and not all("truth" in entry for entry in labels.values()):
            continue
        node = mean_entry
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = mean(path)
    return mean_entry


def markdown_report(summary: dict) -> str:
    """Paper-style tables: a row per model; NLL, ECE, MCE, Brier pooled over ROI voxels, DSC as case mean."""
    models = summary["model_order"]
    first = summary["models"][models[0]]
    has_truth = all("truth" in entry for entry in first["labels"].values())
    columns = [*_TABLE, _TRUTH_COLUMN] if has_truth else list(_TABLE)
    lines = [
        "# Calibration report",
        "",
        f"ROI: `{summary['roi']}`; {summary['bins']} equal-width bins. NLL, ECE, MCE and Brier pooled over all ROI "
        "voxels of the dataset (one-vs-rest per label); DSC: mean over cases (nnU-Net's convention, all voxels)"
        + ("; MAE to p*: mean |p - p*| against the true probabilities" if has_truth else "")
        + ". Best of each column in bold.",
    ]
    label_names = summary["label_names"]
    if len(label_names) > 1:
        rows = [(model, _mean_over_labels(summary["models"][model]["labels"])) for model in models]
        lines += ["", "## Mean over labels", "", *_table(rows, columns)]
    for label in label_names:
        rows = [(model, summary["models"][model]["labels"][label]) for model in models]
        lines += ["", f"## {label}", "", *_table(rows, columns)]
    if "top_label" in first and len(label_names) > 1:
        rows = [(model, summary["models"][model]["top_label"]) for model in models]
        top_columns = [(key.upper(), ("pooled", key), True) for key in TOP_LABEL_METRICS]
        lines += [
            "",
            "## Top-label (confidence max p, outcome argmax == reference)",
            "",
            *_table(rows, top_columns),
        ]
    return "\n".join(lines) + "\n"


def write_markdown(path: str | Path, summary: dict) -> None:
    """Write `markdown_report(summary)`."""
    Path(path).write_text(markdown_report(summary))
