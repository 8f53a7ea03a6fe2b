"""Reliability diagrams: one PNG per label, every model overlaid, with a bin-count histogram below."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

__all__ = ["plot_reliability", "reliability_file_names", "write_reliability_diagrams"]


def reliability_file_names(names: list[str]) -> dict[str, str]:
    """`reliability_<name>.png` per name, with characters outside [A-Za-z0-9._-] replaced and clashes numbered."""
    files: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "label"
        candidate, number = f"reliability_{stem}.png", 2
        while candidate in taken:
            candidate, number = f"reliability_{stem}_{number}.png", number + 1
        taken.add(candidate)
        files[name] = candidate
    return files


def plot_reliability(
    path: str | Path, title: str, curves: list[tuple[str, dict, float]], edges: list[float]
) -> None:
    """Draw one reliability diagram.

    Args:
        path: PNG file to write.
        title: figure title.
        curves: (model name, reliability entry with `count`, `mean_confidence`, `mean_outcome`, ECE) per model.
        edges: the B + 1 bin edges.
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
    for model, reliability, ece in curves:
        confidence = np.asarray(reliability["mean_confidence"], dtype=float)
        outcome = np.asarray(reliability["mean_outcome"], dtype=float)
        count = np.asarray(reliability["count"], dtype=float)
        filled = count > 0
        ece_text = "n/a" if not math.isfinite(ece) else f"{ece:.4f}"
        (line,) = upper.plot(
            confidence[filled],
            outcome[filled],
            marker="o",
            markersize=4,
            linewidth=1.5,
            label=f"{model} (ECE {ece_text})",
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


def write_reliability_diagrams(folder: str | Path, summary: dict) -> list[str]:
    """One `reliability_<label>.png` per label (and `reliability_top_label.png` for softmax datasets).

    Returns:
        The file names written.
    """
    folder = Path(folder)
    models = summary["model_order"]
    entries = {
        label: [summary["models"][m]["labels"][label] for m in models] for label in summary["label_names"]
    }
    titles = {label: f"{label}: one-vs-rest" for label in entries}
    top_key = "top-label"
    if all("top_label" in summary["models"][m] for m in models):
        entries[top_key] = [summary["models"][m]["top_label"] for m in models]
        titles[top_key] = "top-label (max p vs argmax correct)"
    files = reliability_file_names(list(entries))
    for label, per_model in entries.items():
        curves = [(m, entry["reliability"], entry["pooled"]["ece"]) for m, entry in zip(models, per_model)]
        title = f"{titles[label]} (pooled, ROI {summary['roi']}, {summary['bins']} bins)"
        plot_reliability(folder / files[label], title, curves, summary["bin_edges"])
    return list(files.values())
