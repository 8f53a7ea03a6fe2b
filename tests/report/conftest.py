"""Tiny nnU-Net-style folders (references, CASE.npz + CASE.pkl + CASE.nii.gz predictions) in tmp_path."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from report_images import write_image

LABELS = {
    "binary": {"background": 0, "tumor": 1},
    "multiclass": {"background": 0, "liver": 1, "lesion": 2},
    "regions": {"background": 0, "whole": [1, 2], "core": 2},
    "ignore": {"background": 0, "organ": 1, "ignore": 2},
}
REGIONS = {"regions": [1, 2]}


@dataclass
class Folders:
    """A built dataset: paths plus the arrays written, for independent reference computations."""

    root: Path
    kind: str
    gt: Path
    preds: list[Path]
    dataset_json: Path
    references: dict[str, np.ndarray]  # case -> (z, y, x) int labels
    probabilities: list[dict[str, np.ndarray]]  # model -> case -> (C, z, y, x) float32
    truth: Path | None = None
    truth_maps: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> dict:
        return LABELS[self.kind]


def _reference(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    reference = np.zeros(shape, dtype=np.uint8)
    _, y, x = shape
    y0, x0 = rng.integers(0, y // 3), rng.integers(0, x // 3)
    reference[:, y0 : y0 + y // 2, x0 : x0 + x // 2] = 1
    if kind in ("multiclass", "regions", "ignore"):
        reference[:, y0 + 1 : y0 + y // 4 + 1, x0 + 1 : x0 + x // 4 + 1] = 2
    return reference


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    return (shifted / shifted.sum(axis=0, keepdims=True)).astype(np.float32)


def probabilities_for(
    reference: np.ndarray, kind: str, rng: np.random.Generator | None, scale: float
) -> np.ndarray:
    """Softmax (label kinds) or sigmoid-per-region (regions) maps that lean towards the reference."""
    noise = (lambda shape: rng.normal(scale=scale, size=shape)) if rng is not None else (lambda shape: 0.0)
    if kind == "regions":
        inside = np.stack([np.isin(reference, [1, 2]), reference == 2]).astype(float)
        logits = 2.0 * inside - 1.0 + noise(inside.shape)
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    n_channels = 3 if kind in ("multiclass",) else 2
    target = np.where(reference == 2, 0, reference) if kind == "ignore" else reference
    onehot = np.stack([target == c for c in range(n_channels)]).astype(float)
    return _softmax(2.0 * onehot + noise(onehot.shape))


@pytest.fixture
def build(tmp_path: Path):
    """Factory: build(kind, shapes, n_models=2, truth=False, seed=0) -> Folders."""

    def _build(
        kind: str = "binary",
        shapes: tuple[tuple[int, int, int], ...] = ((4, 12, 10), (3, 10, 12), (5, 8, 8)),
        n_models: int = 2,
        truth: bool = False,
        seed: int = 0,
    ) -> Folders:
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
        from nnunetv2.utilities.label_handling.label_handling import LabelManager

        rng = np.random.default_rng(seed)
        root = tmp_path / f"data_{kind}_{seed}"
        gt = root / "gt"
        gt.mkdir(parents=True)
        dataset = {
            "labels": LABELS[kind],
            "file_ending": ".nii.gz",
            "channel_names": {"0": "CT"},
            "numTraining": 0,
        }
        if kind in REGIONS:
            dataset["regions_class_order"] = REGIONS[kind]
        dataset_json = root / "dataset.json"
        dataset_json.write_text(json.dumps(dataset))
        manager = LabelManager(LABELS[kind], REGIONS.get(kind))
        references = {}
        for index, shape in enumerate(shapes):
            case = f"case_{index:03d}"
            references[case] = _reference(rng, shape, kind)
            write_image(gt / f"{case}.nii.gz", references[case])
        preds, probabilities = [], []
        io = SimpleITKIO()
        for model in range(n_models):
            folder = root / f"model_{model}"
            folder.mkdir()
            maps = {}
            for case, reference in references.items():
                maps[case] = probabilities_for(reference, kind, rng, scale=1.0 + model)
                np.savez_compressed(folder / f"{case}.npz", probabilities=maps[case])
                (folder / f"{case}.pkl").write_bytes(pickle.dumps({"never": "loaded"}))
                segmentation = np.asarray(manager.convert_probabilities_to_segmentation(maps[case]))
                _, properties = io.read_seg(str(gt / f"{case}.nii.gz"))
                io.write_seg(segmentation.astype(np.uint8), str(folder / f"{case}.nii.gz"), properties)
            preds.append(folder)
            probabilities.append(maps)
        result = Folders(root, kind, gt, preds, dataset_json, references, probabilities)
        if truth:
            result.truth = root / "truth"
            result.truth.mkdir()
            for case, reference in references.items():
                result.truth_maps[case] = probabilities_for(reference, kind, None, 0.0)
                np.savez_compressed(result.truth / f"{case}.npz", probabilities=result.truth_maps[case])
        return result

    return _build


@pytest.fixture
def no_plots(monkeypatch):
    """Skip the PNG rendering (slow on 2 cores) in tests that check numbers only."""
    monkeypatch.setattr(
        "nnunet_surgery.report.outputs.writer.write_reliability_diagrams", lambda folder, report: []
    )
