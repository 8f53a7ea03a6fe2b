"""Estimator variants in the report, against independent computations on the pooled voxels: the exact
equal-mass split of the sorted confidences, torchmetrics' L2 calibration error, and MONAI's per-image
CalibrationErrorMetric (docs/calibration.md#estimator-variants)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnunet_surgery.calibration import fine_factor
from nnunet_surgery.report import build_report

N_BINS = 10


def _pooled_voxels(folders, model: int, channel: int, label: int) -> tuple[np.ndarray, np.ndarray]:
    cases = sorted(folders.references)
    p = np.concatenate([folders.probabilities[model][case][channel].ravel() for case in cases])
    y = np.concatenate([(folders.references[case] == label).ravel() for case in cases])
    return p, y


def _exact_equal_mass_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[float, np.ndarray]:
    """ECE over the exact equal-mass split: rank r of the sorted p in bin floor(n_bins (r + 1/2) / N)."""
    order = np.argsort(p, kind="stable")
    ranks = np.empty(p.size, dtype=np.int64)
    ranks[order] = np.arange(p.size)
    bins = (n_bins * (2 * ranks + 1)) // (2 * p.size)
    ece = sum(
        (bins == b).sum() / p.size * abs(y[bins == b].mean() - p[bins == b].astype(np.float64).mean())
        for b in np.unique(bins)
    )
    return float(ece), bins


def test_equal_mass_ece_is_the_exact_split_up_to_its_documented_bound(build, no_plots):
    folders = build("binary", ((4, 16, 16), (3, 12, 20)))
    report = build_report(folders.gt, folders.preds, folders.dataset_json, n_bins=N_BINS, bootstrap=0)
    for model in range(2):
        p, y = _pooled_voxels(folders, model, 1, 1)
        exact, bins = _exact_equal_mass_ece(p, y, N_BINS)
        # samples whose fine bin also holds a sample of another exact bin may move (2 |y - p| each at most)
        fine = np.floor(p.astype(np.float64) * N_BINS * fine_factor(N_BINS)).astype(np.int64)
        mixed = [f for f in np.unique(fine) if np.unique(bins[fine == f]).size > 1]
        straddling = int(np.isin(fine, mixed).sum())
        ours = report.models[model].labels["tumor"].pooled.variants.ece_equal_mass
        assert abs(ours - exact) <= 2 * straddling / p.size + 1e-12, (ours, exact, straddling)


def test_rms_calibration_error_matches_torchmetrics_l2(build, no_plots):
    from torchmetrics.functional.classification import binary_calibration_error

    folders = build("binary", ((4, 16, 16), (3, 12, 20)))
    report = build_report(folders.gt, folders.preds, folders.dataset_json, n_bins=N_BINS, bootstrap=0)
    for model in range(2):
        p, y = _pooled_voxels(folders, model, 1, 1)
        assert p.max() < 1.0  # torchmetrics bins p = 1.0 apart
        expected = binary_calibration_error(
            torch.from_numpy(p), torch.from_numpy(y.astype(np.int64)), N_BINS, "l2"
        )
        ours = report.models[model].labels["tumor"].pooled.variants.ce_rms
        assert ours == pytest.approx(float(expected), rel=1e-5)


def test_classwise_is_the_mean_over_labels(build, no_plots):
    folders = build("multiclass")
    report = build_report(folders.gt, folders.preds, folders.dataset_json, bootstrap=0)
    for model in report.models:
        labels = list(model.labels.values())
        assert model.classwise.ece == pytest.approx(np.mean([label.pooled.metrics.ece for label in labels]))
        assert model.classwise.ce_rms == pytest.approx(
            np.mean([label.pooled.variants.ce_rms for label in labels])
        )


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_monai_preset_reproduces_monais_calibration_error_metric(build, no_plots, kind):
    from monai.metrics import CalibrationErrorMetric

    folders = build(kind, ((3, 10, 12), (2, 8, 8), (4, 6, 9)))
    if kind == "binary":  # half the voxels exactly on a bin edge k/20, where MONAI's (lo, hi] bins differ
        for model, maps in enumerate(folders.probabilities):
            for case, probabilities in maps.items():
                foreground = probabilities[1].copy()
                foreground.ravel()[::2] = np.round(foreground.ravel()[::2] * 20).astype(
                    np.float32
                ) / np.float32(20)
                maps[case] = np.stack([1 - foreground, foreground])
                np.savez_compressed(folders.preds[model] / f"{case}.npz", probabilities=maps[case])
    report = build_report(folders.gt, folders.preds, folders.dataset_json, bootstrap=0, preset="monai")
    n_channels = 3 if kind == "multiclass" else 2
    for model in range(2):
        metric = CalibrationErrorMetric(num_bins=20, include_background=False)  # "expected", reduction "mean"
        for case, reference in sorted(folders.references.items()):
            probabilities = torch.from_numpy(folders.probabilities[model][case])[None]
            onehot = torch.stack([torch.from_numpy(reference == c) for c in range(n_channels)])[None].float()
            metric(y_pred=probabilities, y=onehot)
        ours = report.models[model].monai
        assert ours.mean == pytest.approx(float(metric.aggregate()), abs=1e-6)
        per_label = metric.aggregate("mean_batch").numpy()
        for index, label in enumerate(report.label_names):
            assert ours.per_label[label] == pytest.approx(float(per_label[index]), abs=1e-6)
    if kind == "binary":  # our own bins give another per-image ECE on this data: the preset is not a no-op
        assert report.models[0].labels["tumor"].case_mean.ece != pytest.approx(
            report.models[0].monai.mean, abs=1e-4
        )
