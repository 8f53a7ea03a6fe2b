"""PNG preview of a generated dataset's test cases: image, true p*, sampled label, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunet_surgery.synthetic.dataset import class_names

__all__ = ["render_preview"]

_LABEL_COLOURS = ["black", "tab:orange", "tab:red", "tab:purple", "tab:cyan"]


def _foreground_probability(truth: np.ndarray, regions: bool) -> np.ndarray:
    """P(label > 0): the first region, or 1 - the background channel."""
    return truth[0] if regions else 1.0 - truth[0]


def render_preview(dataset_dir: Path, output_png: Path, *, num_cases: int = 4) -> Path:
    """Render the first `num_cases` test cases of a synthetic dataset to a PNG.

    Columns: the image, the true foreground probability p*(label > 0) with its 0.5 contour, the
    sampled label with the same contour, and p* of the deepest level when there is more than one.
    3D cases show the axial slice (first axis) with the most foreground probability.

    Args:
        dataset_dir: a folder written by `generate_dataset` (needs imagesTs, labelsTs and truthTs).
        output_png: the PNG to write.
        num_cases: how many test cases to show (>= 1).

    Returns:
        `output_png`.
    """
    if num_cases < 1:
        raise ValueError(f"num_cases must be >= 1, but got {num_cases}")
    dataset_dir = Path(dataset_dir)
    truth_files = sorted((dataset_dir / "truthTs").glob("*.npz"))[:num_cases]
    if not truth_files:
        raise FileNotFoundError(f"{dataset_dir / 'truthTs'} holds no .npz; expected a generated dataset")
    synthetic = json.loads((dataset_dir / "dataset.json").read_text())["synthetic"]
    regions, num_classes = bool(synthetic["regions"]), int(synthetic["num_classes"])
    columns = 3 if num_classes == 1 else 4
    figure = Figure(figsize=(3.2 * columns, 3.0 * len(truth_files)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(truth_files), columns, squeeze=False)
    label_map = ListedColormap(_LABEL_COLOURS[: num_classes + 1])
    io = SimpleITKIO()
    for row, truth_file in zip(axes, truth_files):
        case = truth_file.stem
        image = io.read_images([str(dataset_dir / "imagesTs" / f"{case}_0000.nii.gz")])[0][0]
        labels = io.read_seg(str(dataset_dir / "labelsTs" / f"{case}.nii.gz"))[0][0]
        with np.load(truth_file) as npz:
            truth = npz["probabilities"]
        foreground = _foreground_probability(truth, regions)
        z = int(np.argmax(foreground.reshape(foreground.shape[0], -1).sum(axis=1)))
        # (data, colour map, value limits, draw the p* = 0.5 contour, title)
        panels = [
            (image[z], "gray", None, False, f"{case}: image"),
            (foreground[z], "viridis", (0.0, 1.0), True, "true p*(label > 0), 0.5 contour"),
            (labels[z], label_map, (-0.5, num_classes + 0.5), True, "sampled label"),
            (truth[-1][z], "viridis", (0.0, 1.0), False, f"true p*({class_names(num_classes)[-1]})"),
        ][:columns]
        for ax, (data, cmap, limits, contour, title) in zip(row, panels):
            vmin, vmax = limits if limits else (None, None)
            shown = ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if contour:
                ax.contour(foreground[z], levels=[0.5], colors="white", linewidths=0.6)
            if limits == (0.0, 1.0):
                figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    figure.tight_layout()
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_png)
    return output_png
