"""Reliability diagrams: one PNG per label, every model overlaid, with a bin-count histogram below."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import BinnedStats, bin_edges, reliability_curve
from nnunet_surgery.report.scoring import CalibrationReport

__all__ = [
    "TOP_LABEL_DIAGRAM",
    "Curve",
    "plot_reliability",
    "reliability_file_names",
    "write_reliability_diagrams",
]

#: Stem of the top-label diagram's file (`reliability_top-label.png`); the hyphen keeps it apart from a
#: label named `top_label`, whose diagram is `reliability_top_label.png`.
TOP_LABEL_DIAGRAM = "top-label"


@dataclass(frozen=True)
class Curve:
    """One model's curve in a reliability diagram: its name, pooled per-bin statistics and ECE."""

    model: str
    stats: BinnedStats
    ece: float


def reliability_file_names(stems: list[str]) -> list[str]:
    """`reliability_<stem>.png` per stem, in order: characters outside [A-Za-z0-9._-] replaced, clashes
    numbered (`_2`, `_3`, ...), so every diagram gets its own file."""
    files: list[str] = []
    for name in stems:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "label"
        candidate, number = f"reliability_{stem}.png", 2
        while candidate in files:
            candidate, number = f"reliability_{stem}_{number}.png", number + 1
        files.append(candidate)
    return files


def plot_reliability(path: str | Path, title: str, curves: list[Curve]) -> None:
    """Draw one reliability diagram (bins from the curves' statistics, all of one bin count).

    Args:
        path: PNG file to write.
        title: figure title.
        curves: one per model.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, (upper, lower) = plt.subplots(
        2, 1, figsize=(6.0, 7.0), sharex=True, gridspec_kw={"height_ratios": [3, 1.3], "hspace": 0.08}
    )
    figure.subplots_adjust(left=0.13, right=0.97, top=0.94, bottom=0.08)
    upper.plot([0, 1], [0, 1], linestyle="--", color="0.5", linewidth=1, label="perfect calibration")
    max_count = 1
    edges = bin_edges(curves[0].stats.n_bins)
    for curve in curves:
        confidence, outcome = reliability_curve(curve.stats)
        count = curve.stats.count
        filled = count > 0
        ece_text = "n/a" if not math.isfinite(curve.ece) else f"{curve.ece:.4f}"
        (line,) = upper.plot(
            confidence[filled],
            outcome[filled],
            marker="o",
            markersize=4,
            linewidth=1.5,
            label=f"{curve.model} (ECE {ece_text})",
        )
        lower.stairs(
            np.where(filled, count, np.nan), edges, baseline=None, color=line.get_color(), linewidth=1.5
        )
        max_count = max(max_count, int(count.max(initial=0)))
    upper.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency (mean outcome)", title=title)
    upper.set_aspect("auto")
    upper.grid(alpha=0.3)
    upper.legend(loc="upper left", fontsize=8)
    lower.set_yscale("log")
    lower.set(
        xlim=(0, 1),
        ylim=(0.8, max_count * 2),
        xlabel="confidence (mean predicted probability)",
        ylabel="voxels per bin",
    )
    lower.grid(alpha=0.3, which="major")
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_reliability_diagrams(folder: str | Path, report: CalibrationReport) -> list[str]:
    """One `reliability_<label>.png` per label (and `reliability_top-label.png` for softmax datasets).

    Returns:
        The file names written.
    """
    folder = Path(folder)
    diagrams = [
        (
            label,
            f"{label}: one-vs-rest",
            [
                Curve(m.name, m.labels[label].reliability, m.labels[label].pooled.metrics.ece)
                for m in report.models
            ],
        )
        for label in report.label_names
    ]
    if report.has_top_label:
        curves = [
            Curve(m.name, m.top_label.reliability, m.top_label.pooled.errors.ece) for m in report.models
        ]
        diagrams.append((TOP_LABEL_DIAGRAM, "top-label (max p vs argmax correct)", curves))
    files = reliability_file_names([stem for stem, _, _ in diagrams])
    for file, (_, title, curves) in zip(files, diagrams):
        plot_reliability(folder / file, f"{title} (pooled, ROI {report.roi}, {report.n_bins} bins)", curves)
    return files
