"""End-to-end numbers of calibration.json against independent references: sklearn (NLL, Brier),
torchmetrics (ECE, MCE, top-label ECE), nnU-Net's own evaluation (Dice), plain numpy (ACE, truth)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnunet_surgery.report import generate_report

N_BINS = 20
pytestmark = [pytest.mark.usefixtures("no_plots"), pytest.mark.filterwarnings("ignore::FutureWarning")]


def _entries(folders) -> list[tuple[str, int, tuple[int, ...]]]:
    """(name, channel, label values) of each foreground label/region of the fixture."""
    if folders.kind == "regions":
        return [("whole", 0, (1, 2)), ("core", 1, (2,))]
    if folders.kind == "multiclass":
        return [("liver", 1, (1,)), ("lesion", 2, (2,))]
    name = "organ" if folders.kind == "ignore" else "tumor"
    return [(name, 1, (1,))]


def _voxels(folders, model: int, channel: int, members: tuple[int, ...], cases=None, roi=None):
    """Concatenated (p, y) over the cases, ignore label dropped, optionally inside a ROI function."""
    ps, ys = [], []
    for case in cases or sorted(folders.references):
        reference = folders.references[case]
        keep = reference != 2 if folders.kind == "ignore" else np.ones(reference.shape, dtype=bool)
        if roi is not None:
            keep &= roi(case, reference)
        ps.append(folders.probabilities[model][case][channel][keep])
        ys.append(np.isin(reference, members)[keep])
    return np.concatenate(ps), np.concatenate(ys)


def _reference_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    import torch
    from sklearn.metrics import brier_score_loss, log_loss
    from torchmetrics.functional.classification import binary_calibration_error

    p64 = p.astype(np.float64)
    ece, mce = (
        float(
            binary_calibration_error(
                torch.from_numpy(p64), torch.from_numpy(y.astype(np.int64)), N_BINS, norm
            )
        )
        for norm in ("l1", "max")
    )
    counts, _ = np.histogram(p64, bins=N_BINS, range=(0, 1))
    index = np.minimum((p64 * N_BINS).astype(int), N_BINS - 1)
    gaps = [abs(y[index == b].mean() - p64[index == b].mean()) for b in range(N_BINS) if counts[b]]
    return {
        "nll": log_loss(y, p64, labels=[0, 1]),
        "brier": brier_score_loss(y, p64),
        "ece": ece,
        "mce": mce,
        "ace": float(np.mean(gaps)),
    }


def _nnunet_dice(folders, model: int) -> dict[str, dict[str, float]]:
    """Per-case Dice from nnU-Net's compute_metrics on the seg files written beside the npz."""
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    keys = [members if len(members) > 1 else members[0] for _, _, members in _entries(folders)]
    ignore = 2 if folders.kind == "ignore" else None
    result = {}
    for case in sorted(folders.references):
        metrics = compute_metrics(
            str(folders.gt / f"{case}.nii.gz"),
            str(folders.preds[model] / f"{case}.nii.gz"),
            SimpleITKIO(),
            keys,
            ignore,
        )["metrics"]
        result[case] = {name: metrics[key]["Dice"] for (name, _, _), key in zip(_entries(folders), keys)}
    return result


def _same(a: float, b: float, rel: float = 1e-6) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=rel, abs=1e-9)


@pytest.mark.parametrize(
    ("kind", "shapes"),
    [
        ("binary", ((4, 12, 10), (3, 10, 12), (5, 8, 8))),
        ("binary", ((1, 16, 14), (1, 12, 12))),  # 2D as 3D: z = 1
        ("multiclass", ((4, 12, 10), (3, 10, 12))),
        ("regions", ((4, 12, 10), (3, 10, 12))),
        ("ignore", ((4, 12, 10), (3, 10, 12))),
    ],
)
def test_pooled_and_case_mean_metrics_and_dice_match_references(build, tmp_path, kind, shapes):
    folders = build(kind, shapes)
    generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "out", n_bins=N_BINS)
    report = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert report["bins"] == N_BINS and report["roi"] == "all"
    for model, folder in enumerate(folders.preds):
        entry = report["models"][folder.name]
        dice = _nnunet_dice(folders, model)
        for name, channel, members in _entries(folders):
            pooled = entry["labels"][name]["pooled"]
            expected = _reference_metrics(*_voxels(folders, model, channel, members))
            for key, value in expected.items():
                assert pooled[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (kind, name, key)
            per_case = {
                case: _reference_metrics(*_voxels(folders, model, channel, members, cases=[case]))
                for case in folders.references
            }
            for case, values in per_case.items():
                for key, value in values.items():
                    assert entry["cases"][case][name][key] == pytest.approx(value, rel=1e-6, abs=1e-9)
                assert _same(entry["cases"][case][name]["dice"], dice[case][name])
            case_mean = entry["labels"][name]["case_mean"]
            for key in expected:
                assert case_mean[key] == pytest.approx(np.mean([v[key] for v in per_case.values()]), rel=1e-6)
            assert _same(case_mean["dice"], float(np.nanmean([dice[c][name] for c in dice])))


def test_dice_equals_nnunet_evaluate_folder_summary(build, tmp_path):
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    folders = build("multiclass", ((4, 12, 10), (3, 10, 12), (2, 8, 8)), n_models=1)
    report = generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "out")
    summary = compute_metrics_on_folder(
        str(folders.gt), str(folders.preds[0]), None, SimpleITKIO(), ".nii.gz", [1, 2], num_processes=1
    )
    entry = report["models"]["model_0"]
    for label, name in ((1, "liver"), (2, "lesion")):
        assert entry["labels"][name]["case_mean"]["dice"] == pytest.approx(summary["mean"][label]["Dice"])
        for case_result in summary["metric_per_case"]:
            case = case_result["reference_file"].rsplit("/", 1)[1][: -len(".nii.gz")]
            assert _same(entry["cases"][case][name]["dice"], case_result["metrics"][label]["Dice"])


def test_top_label_ece_matches_torchmetrics_multiclass(build, tmp_path):
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    folders = build("multiclass", ((4, 12, 10), (3, 10, 12)), n_models=1)
    report = generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "out")
    cases = sorted(folders.references)
    p = np.concatenate([folders.probabilities[0][c].reshape(3, -1) for c in cases], axis=1)
    y = np.concatenate([folders.references[c].ravel() for c in cases]).astype(np.int64)
    expected = multiclass_calibration_error(
        torch.from_numpy(p.T.astype(np.float64)), torch.from_numpy(y), num_classes=3, n_bins=N_BINS, norm="l1"
    )
    assert report["models"]["model_0"]["top_label"]["pooled"]["ece"] == pytest.approx(
        float(expected), abs=1e-6
    )


def test_band_roi_scores_only_voxels_near_the_foreground(build, tmp_path):
    from scipy.ndimage import distance_transform_edt

    folders = build("binary", ((4, 12, 10), (3, 10, 12)), n_models=1)
    report = generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "out", roi="band:2")
    assert report["roi"] == "band:2"
    p, y = _voxels(folders, 0, 1, (1,), roi=lambda _, reference: distance_transform_edt(reference == 0) <= 2)
    pooled = report["models"]["model_0"]["labels"]["tumor"]["pooled"]
    assert pooled["n_voxels"] == p.size < sum(r.size for r in folders.references.values())
    for key, value in _reference_metrics(p, y).items():
        assert pooled[key] == pytest.approx(value, rel=1e-6, abs=1e-9)


def test_mask_roi_reads_masks_through_the_reader(build, tmp_path):
    import SimpleITK as sitk

    folders = build("binary", ((4, 12, 10), (3, 10, 12)), n_models=1)
    masks, arrays = folders.root / "masks", {}
    masks.mkdir()
    for case, reference in folders.references.items():
        arrays[case] = np.zeros(reference.shape, dtype=np.uint8)
        arrays[case][:, 2:-2, 1:-3] = 1
        sitk.WriteImage(sitk.GetImageFromArray(arrays[case]), str(masks / f"{case}.nii.gz"))
    report = generate_report(
        folders.gt, folders.preds, folders.dataset_json, tmp_path / "out", roi=f"mask:{masks}"
    )
    p, y = _voxels(folders, 0, 1, (1,), roi=lambda case, _: arrays[case] > 0)
    pooled = report["models"]["model_0"]["labels"]["tumor"]["pooled"]
    assert pooled["ece"] == pytest.approx(_reference_metrics(p, y)["ece"], rel=1e-6)
    assert pooled["n_voxels"] == p.size


def test_truth_metrics_match_their_definition(build, tmp_path):
    folders = build("multiclass", ((4, 12, 10), (3, 10, 12)), n_models=1, truth=True)
    report = generate_report(
        folders.gt, folders.preds, folders.dataset_json, tmp_path / "out", truth_folder=folders.truth
    )
    cases = sorted(folders.references)
    for name, channel in (("liver", 1), ("lesion", 2)):
        p = np.concatenate([folders.probabilities[0][c][channel].ravel() for c in cases]).astype(np.float64)
        t = np.concatenate([folders.truth_maps[c][channel].ravel() for c in cases]).astype(np.float64)
        index = np.minimum((p * N_BINS).astype(int), N_BINS - 1)
        ece = sum(abs(p[index == b].sum() - t[index == b].sum()) for b in range(N_BINS)) / p.size
        truth = report["models"]["model_0"]["labels"][name]["truth"]
        assert truth["pooled"]["mae"] == pytest.approx(np.abs(p - t).mean(), rel=1e-6)
        assert truth["pooled"]["ece"] == pytest.approx(ece, rel=1e-6)
        assert set(truth["case_mean"]) == {"mae", "ece", "ece_truth_self"}
    assert "MAE to p*" in (tmp_path / "out" / "calibration.md").read_text()


def test_two_processes_give_the_same_report_as_one(build, tmp_path):
    folders = build("regions", ((4, 12, 10), (3, 10, 12), (2, 6, 6)))
    one = generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "a", num_processes=1)
    two = generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "b", num_processes=2)
    assert json.dumps(one["models"], sort_keys=True) == json.dumps(two["models"], sort_keys=True)
