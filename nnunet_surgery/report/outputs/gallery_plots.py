"""The gallery (`gallery/CASE.png`: image, reference contour, each model's probability as a heat map on
one colour scale) and the per-case ECE plots (`case_ece_<label>.png`: one dot per case and model)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from nnunet_surgery.report.scoring import CalibrationReport
from nnunet_surgery.report.scoring.gallery_choice import GalleryCase

__all__ = ["GALLERY_FOLDER", "case_ece_file_name", "write_case_ece_plots", "write_gallery"]

GALLERY_FOLDER = "gallery"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _window(image: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    return float(low), float(high if high > low else low + 1)


def plot_gallery_case(path: Path, entry: GalleryCase) -> None:
    """One figure: the image with the reference contour, then one heat map per model (shared 0-1 colour
    bar), each titled with the model's case ECE of the label."""
    plt = _pyplot()
    cut, selection = entry.slice, entry.selection
    panels = 1 + len(entry.models)
    figure, axes = plt.subplots(1, panels, figsize=(3.2 * panels + 0.8, 3.6), squeeze=False)
    axes = axes[0]
    low, high = _window(cut.image)
    axes[0].imshow(cut.image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    axes[0].set_title(f"image, slice {cut.index}", fontsize=9)
    heat = None
    for ax, model, probability, ece in zip(
        axes[1:], entry.models, cut.probabilities, selection.ece, strict=True
    ):
        ax.imshow(cut.image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        heat = ax.imshow(probability, cmap="inferno", vmin=0.0, vmax=1.0, alpha=0.85, interpolation="nearest")
        ax.set_title(f"{model}\ncase ECE {ece:.4f}", fontsize=9)
    for ax in axes:
        if cut.reference.any():
            ax.contour(cut.reference.astype(float), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"{selection.case}: p({selection.label}), {selection.reason}", fontsize=10)
    if heat is not None:
        figure.colorbar(heat, ax=list(axes), fraction=0.02, pad=0.02, label=f"p({selection.label})")
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def write_gallery(folder: Path, cases: tuple[GalleryCase, ...]) -> list[Path]:
    """`folder/gallery/CASE.png` for every gallery case (nothing without cases)."""
    if not cases:
        return []
    (folder / GALLERY_FOLDER).mkdir(exist_ok=True)
    paths = []
    for entry in cases:
        path = folder / GALLERY_FOLDER / f"{entry.selection.case}.png"
        plot_gallery_case(path, entry)
        paths.append(path)
    return paths


def case_ece_file_name(label: str) -> str:
    return f"case_ece_{re.sub(r'[^A-Za-z0-9._-]+', '_', label).strip('._') or 'label'}.png"


def write_case_ece_plots(folder: Path, report: CalibrationReport) -> list[Path]:
    """`case_ece_<label>.png` per label: each model's case ECEs as dots (one per case), the same case joined
    across models, and the pooled ECE as a bar."""
    plt = _pyplot()
    paths = []
    cases = list(report.roi_voxels)
    for label in report.label_names:
        figure, ax = plt.subplots(figsize=(1.6 * len(report.models) + 2.4, 4.0))
        values = np.array([[m.labels[label].cases[c].metrics.ece for c in cases] for m in report.models])
        positions = np.arange(len(report.models))
        for column in values.T:
            if np.all(np.isfinite(column)):
                ax.plot(positions, column, color="0.8", linewidth=0.6, zorder=1)
        for index, model in enumerate(report.models):
            finite = values[index][np.isfinite(values[index])]
            ax.scatter(np.full(finite.size, index), finite, s=14, zorder=2, label=model.name)
            pooled = model.labels[label].pooled.metrics.ece
            if math.isfinite(pooled):
                ax.hlines(pooled, index - 0.3, index + 0.3, colors="black", linewidth=1.5, zorder=3)
        ax.set_xticks(positions, [m.name for m in report.models], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("case ECE (bar: pooled ECE)")
        ax.set_title(f"{label}: ECE per case ({len(cases)} cases)", fontsize=10)
        ax.set_xlim(-0.6, len(report.models) - 0.4)
        figure.tight_layout()
        path = folder / case_ece_file_name(label)
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths
