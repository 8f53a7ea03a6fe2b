"""Validation folders whose probabilities are over-confident by a known temperature.

Every voxel gets true logits `z` (i.i.d. normal per channel); its reference label is drawn from the true
probabilities (softmax of `z`, or for nested regions a label whose region memberships have probabilities
sigmoid(z_r)), and the saved probabilities are softmax / sigmoid of `temperature * z`: temperature scaling
with T = `temperature` recovers the truth exactly, so the maximum-likelihood T converges to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

LABELS = {
    2: {"background": 0, "lesion": 1},
    4: {"background": 0, "organ": 1, "lesion": 2, "cyst": 3},
    "regions": {"background": 0, "whole": [1, 2], "core": 2},
}
REGIONS_CLASS_ORDER = [1, 2]


@dataclass
class Overconfident:
    """A built dataset: paths, and per case the arrays written."""

    root: Path
    gt: Path
    folds: list[Path]
    dataset_json: Path
    region_based: bool
    references: dict[str, np.ndarray]  # case -> spatial int labels
    probabilities: dict[str, np.ndarray]  # case -> (C, *spatial) float32, as saved
    logits: dict[str, np.ndarray]  # case -> (C, *spatial) float64 true logits


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    return shifted / shifted.sum(axis=0, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def _draw(rng: np.random.Generator, kind, shape: tuple[int, ...], spread: float):
    """True logits `(C, *shape)` and reference labels drawn from their probabilities."""
    if kind == "regions":
        # region 1 = labels {1, 2} with probability q1, region 2 = label 2 with probability q2 <= q1
        whole = rng.normal(0.0, spread, shape)
        core_given_whole = rng.normal(0.0, spread, shape)
        q1, q2 = sigmoid(whole), sigmoid(whole) * sigmoid(core_given_whole)
        u = rng.random(shape)
        labels = np.where(u < q2, 2, np.where(u < q1, 1, 0))
        logits = np.stack([np.log(q1) - np.log1p(-q1), np.log(q2) - np.log1p(-q2)])
        return logits, labels
    logits = rng.normal(0.0, spread, (kind, *shape))
    cumulative = softmax(logits).cumsum(axis=0)
    u = rng.random(shape)
    labels = (u[None] > cumulative).sum(axis=0)
    return logits, np.minimum(labels, kind - 1)


def write_reference(path: Path, labels: np.ndarray) -> None:
    """2D as PNG (nnU-Net's NaturalImage2DIO reads (1, 1, y, x)), 3D as NIfTI (SimpleITKIO: (1, z, y, x))."""
    if labels.ndim == 2:
        from PIL import Image

        Image.fromarray(labels.astype(np.uint8)).save(path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(labels.astype(np.uint8)), str(path), True)


@pytest.fixture
def overconfident(tmp_path: Path):
    """Factory: overconfident(kind, temperature, shapes, folds=1, spread=2.0, seed=0) -> Overconfident.

    `kind` is 2 or 4 (softmax channels) or "regions"; 2D shapes are written as PNG, 3D as NIfTI.
    """

    def _build(
        kind=2,
        temperature: float = 2.0,
        shapes: tuple[tuple[int, ...], ...] = ((12, 40, 40), (10, 40, 44), (8, 44, 40)),
        folds: int = 1,
        spread: float = 2.0,
        seed: int = 0,
    ) -> Overconfident:
        rng = np.random.default_rng(seed)
        root = tmp_path / f"data_{kind}_{temperature}_{seed}_{len(shapes[0])}d"
        gt = root / "gt"
        gt.mkdir(parents=True)
        ending = ".png" if len(shapes[0]) == 2 else ".nii.gz"
        dataset = {
            "labels": LABELS[kind],
            "file_ending": ending,
            "channel_names": {"0": "x"},
            "numTraining": 0,
        }
        if kind == "regions":
            dataset["regions_class_order"] = REGIONS_CLASS_ORDER
        dataset_json = root / "dataset.json"
        dataset_json.write_text(json.dumps(dataset))
        fold_folders = [root / f"fold_{k}" / "validation" for k in range(folds)]
        for folder in fold_folders:
            folder.mkdir(parents=True)
        references, probabilities, all_logits = {}, {}, {}
        for index, shape in enumerate(shapes):
            case = f"case_{index:03d}"
            logits, labels = _draw(rng, kind, shape, spread)
            scaled = temperature * logits
            saved = (sigmoid(scaled) if kind == "regions" else softmax(scaled)).astype(np.float32)
            spatial = saved.shape[1:] if len(shape) == 3 else (1, *saved.shape[1:])
            saved = saved.reshape(saved.shape[0], *spatial)
            write_reference(gt / f"{case}{ending}", labels)
            np.savez_compressed(fold_folders[index % folds] / f"{case}.npz", probabilities=saved)
            references[case], probabilities[case], all_logits[case] = labels, saved, logits
        return Overconfident(
            root, gt, fold_folders, dataset_json, kind == "regions", references, probabilities, all_logits
        )

    return _build


@pytest.fixture
def fitted(overconfident, tmp_path):
    """A 2-channel over-confident dataset (two 3D cases) and the CALIBRATOR.json fitted on it."""
    from recalibrate_cli import run_recalibrate

    data = overconfident(2, 2.0, ((4, 12, 14), (5, 10, 12)))
    calibrator = tmp_path / "calibrator.json"
    fit = [
        "fit",
        str(data.gt),
        *map(str, data.folds),
        "-djfile",
        str(data.dataset_json),
        "-o",
        str(calibrator),
    ]
    assert run_recalibrate(*fit) == 0
    return data, calibrator
