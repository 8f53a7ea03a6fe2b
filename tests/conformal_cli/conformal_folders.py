"""nnU-Net-style folders for `nnunet-surgery conformal`: references with a real geometry, each fold's
validation probabilities, and a test folder as `nnUNetv2_predict --save_probabilities` leaves it.

Every voxel gets logits whose reference label is drawn from their softmax (or, for regions, nested
memberships from their sigmoids); the saved probabilities are those of `sharpness * logits`, so a model is
over-confident by a known factor. The brute-force threshold is `tests/conformal/conformal_reference.py`'s,
the one independent reference of the conformal math.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformal"))

from nnunet_surgery.cli import main

LABELS = {
    "labels": {"background": 0, "organ": 1, "lesion": 2},
    "regions": {"background": 0, "whole": [1, 2], "core": 2},
}
REGIONS_CLASS_ORDER = [1, 2]
SPACING = (0.8, 1.25, 2.5)
ORIGIN = (-10.0, 4.0, 7.5)
DIRECTION = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)


def run_conformal(*arguments: str) -> int:
    """`nnunet-surgery conformal *arguments` in this process, without progress output; the exit code."""
    return main(["conformal", *arguments, "--no-progress"])


def fit_predictor(dataset: ConformalDataset, output: Path, alpha: str, *extra: str) -> dict:
    """`conformal fit` of the dataset's calibration folds at `alpha` into `output` (-np 1); its content."""
    arguments = [
        str(dataset.gt),
        *map(str, dataset.folds),
        "-djfile",
        str(dataset.dataset_json),
        "-o",
        str(output),
    ]
    assert run_conformal("fit", *arguments, "--alpha", alpha, "-np", "1", *extra) == 0
    return json.loads(output.read_text())


def write_image(path: Path, labels: np.ndarray) -> None:
    """A label image (z, y, x) as NIfTI with the geometry SPACING, ORIGIN, DIRECTION."""
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path), True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _draw(rng: np.random.Generator, kind: str, shape: tuple[int, ...], sharpness: float):
    """(labels (*shape), saved probabilities (C, *shape) float32)."""
    if kind == "regions":
        whole, core = rng.normal(0.0, 2.0, (2, *shape))
        q1, q2 = _sigmoid(whole), _sigmoid(whole) * _sigmoid(core)
        u = rng.random(shape)
        labels = np.where(u < q2, 2, np.where(u < q1, 1, 0))
        logits = np.stack([np.log(q1) - np.log1p(-q1), np.log(q2) - np.log1p(-q2)])
        return labels, _sigmoid(sharpness * logits).astype(np.float32)
    logits = rng.normal(0.0, 2.0, (3, *shape))
    logits[0] += 1.5  # mostly background
    truth = np.exp(logits - logits.max(axis=0)) / np.exp(logits - logits.max(axis=0)).sum(axis=0)
    labels = np.minimum((rng.random(shape)[None] > truth.cumsum(axis=0)).sum(axis=0), 2)
    saved = np.exp(sharpness * (logits - logits.max(axis=0)))
    return labels, (saved / saved.sum(axis=0)).astype(np.float32)


@dataclass
class ConformalDataset:
    """A built dataset: paths, and per case the arrays written."""

    root: Path
    gt: Path
    folds: list[Path]
    test: Path
    gt_test: Path
    dataset_json: Path
    kind: str
    references: dict[str, np.ndarray]  # case -> (z, y, x) int labels
    probabilities: dict[str, np.ndarray]  # case -> (C, z, y, x) float32, as saved

    @property
    def calibration_cases(self) -> list[str]:
        return sorted(case for fold in self.folds for case in (p.stem for p in fold.glob("*.npz")))

    @property
    def test_cases(self) -> list[str]:
        return sorted(p.stem for p in self.test.glob("*.npz"))


@pytest.fixture
def conformal_dataset(tmp_path: Path):
    """Factory: conformal_dataset(kind="labels", n_calibration=12, n_test=3, folds=2, seed=0, empty=1)."""

    def build(
        kind: str = "labels",
        n_calibration: int = 12,
        n_test: int = 3,
        folds: int = 2,
        seed: int = 0,
        empty: int = 1,
        shape: tuple[int, int, int] = (4, 6, 5),
    ) -> ConformalDataset:
        rng = np.random.default_rng(seed)
        root = tmp_path / f"{kind}_{seed}"
        gt, test, gt_test = root / "gt", root / "test", root / "gt_test"
        fold_dirs = [root / f"fold_{k}" / "validation" for k in range(folds)]
        for folder in (gt, test, gt_test, *fold_dirs):
            folder.mkdir(parents=True)
        dataset_json = root / "dataset.json"
        content = {"labels": LABELS[kind], "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
        if kind == "regions":
            content["regions_class_order"] = REGIONS_CLASS_ORDER
        dataset_json.write_text(json.dumps(content))
        references, probabilities = {}, {}
        for index in range(n_calibration + n_test):
            case = f"case_{index:03d}"
            labels, saved = _draw(rng, kind, shape, 1.6)
            if index < empty:  # a case without any foreground: empty references for every label
                labels = np.zeros_like(labels)
            references[case], probabilities[case] = labels, saved
            write_image(gt / f"{case}.nii.gz", labels)
            folder = fold_dirs[index % folds] if index < n_calibration else test
            np.savez_compressed(folder / f"{case}.npz", probabilities=saved)
            if folder == test:  # nnUNetv2_predict writes the segmentation beside the probabilities
                write_image(test / f"{case}.nii.gz", labels)
                write_image(gt_test / f"{case}.nii.gz", labels)  # the test set's references, for the report
        return ConformalDataset(
            root, gt, fold_dirs, test, gt_test, dataset_json, kind, references, probabilities
        )

    return build
