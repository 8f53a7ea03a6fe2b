"""The report's intervals through `calibration.resampling` (docs/calibration.md#bca): `--interval percentile`
reproduces the percentile interval of the resampled case sums, BCa (the default) contains every estimate,
the bias-aware estimators sit beside the plug-in ones, and the resampling memory is bounded."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_cli import run_report_process
from report_images import write_image

from nnunet_surgery.calibration import fine_factor, label_stats
from nnunet_surgery.calibration.estimators import debiased_ece, squared_error
from nnunet_surgery.calibration.metrics import label_metric_arrays
from nnunet_surgery.calibration.smooth import smooth_ece
from nnunet_surgery.report import build_report

pytestmark = [pytest.mark.usefixtures("no_plots"), pytest.mark.filterwarnings("ignore::FutureWarning")]

N_BINS = 20
METRICS = ("nll", "ece", "mce", "ace", "brier", "dice")


def _case_sums(folders, model: int) -> dict[str, np.ndarray]:
    """Each case's sums of the tumor label, straight from the arrays written (label_stats, one call per
    case, no chunks): (n, ...) arrays in case order."""
    rows = {name: [] for name in ("count", "sum_confidence", "sum_target", "nll", "brier", "tp", "fp", "fn")}
    for case in sorted(folders.references):
        p = folders.probabilities[model][case][1].ravel()
        y = folders.references[case].ravel() == 1
        stats = label_stats(p, y, N_BINS)
        predicted = folders.probabilities[model][case].argmax(axis=0).ravel() == 1
        for name in ("count", "sum_confidence", "sum_target"):
            rows[name].append(getattr(stats.reliability, name))
        rows["nll"].append(stats.nll_sum)
        rows["brier"].append(stats.brier_sum)
        rows["tp"].append(np.sum(predicted & y))
        rows["fp"].append(np.sum(predicted & ~y))
        rows["fn"].append(np.sum(~predicted & y))
    return {name: np.asarray(values, dtype=np.float64) for name, values in rows.items()}


def _resampled_metrics(sums: dict[str, np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
    """The pooled metrics of each resample: the drawn cases' sums added in case order."""
    resampled = {}
    for name, values in sums.items():
        total = np.zeros((weights.shape[0], *values.shape[1:]))
        for case in range(values.shape[0]):
            total += weights[:, case].reshape((-1,) + (1,) * (values.ndim - 1)) * values[case]
        resampled[name] = total
    return label_metric_arrays(*(resampled[name] for name in sums))


def test_percentile_option_is_the_percentile_interval_of_the_resampled_case_sums(build, tmp_path):
    folders = build("binary", ((3, 9, 8), (2, 10, 7), (4, 6, 6), (3, 8, 8), (2, 7, 9), (3, 6, 10)))
    resamples, seed = 300, 11
    built = build_report(
        folders.gt, folders.preds, folders.dataset_json, bootstrap=resamples, seed=seed, interval="percentile"
    )
    report = json.loads(json.dumps(_report_json(built)))
    assert report["bootstrap"]["method"] == "percentile"
    n = len(folders.references)
    # the report's draws: numpy's generator, R x n case indices, counted per resample
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    weights = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)
    sums = [_case_sums(folders, model) for model in range(2)]
    values = [_resampled_metrics(model_sums, weights) for model_sums in sums]
    tumor = [report["models"][f"model_{model}"]["labels"]["tumor"] for model in range(2)]
    for name in METRICS:
        for model in range(2):
            kept = values[model][name][~np.isnan(values[model][name])]
            expected = [float(v) for v in np.percentile(kept, [2.5, 97.5])]
            assert tumor[model]["pooled_ci95"][name] == expected, name
        difference = values[1][name] - values[0][name]
        kept = difference[~np.isnan(difference)]
        paired = tumor[1]["paired"]["metrics"][name]
        assert paired["ci95"] == [float(v) for v in np.percentile(kept, [2.5, 97.5])], name
        better = difference > 0 if name == "dice" else difference < 0
        assert paired["fraction_better"] == float(np.mean(better))


def _calibrated_folders(root, n_cases: int, seed: int):
    """A binary dataset whose probabilities are exactly those the labels were drawn from (calibrated),
    spread over (0, 1), with a per-case shift of the probabilities so that cases differ."""
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    gt, pred = root / "gt", root / "model"
    gt.mkdir(parents=True)
    pred.mkdir()
    (root / "dataset.json").write_text(
        json.dumps(
            {"labels": {"background": 0, "tumor": 1}, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
        )
    )
    for case in range(n_cases):
        p = np.clip(rng.beta(0.7, 0.7, size=(4, 16, 16)) + rng.uniform(-0.05, 0.05), 0.001, 0.999)
        labels = (rng.random(p.shape) < p).astype(np.uint8)
        write_image(gt / f"case_{case:03d}.nii.gz", labels)
        probabilities = np.stack([1.0 - p, p]).astype(np.float32)
        probabilities[0] = 1.0 - probabilities[1]
        np.savez_compressed(pred / f"case_{case:03d}.npz", probabilities=probabilities)
    return SimpleNamespace(gt=gt, preds=[pred], dataset_json=root / "dataset.json")


@pytest.mark.parametrize("n_cases", [8, 24])
def test_bca_intervals_contain_every_estimate_of_a_calibrated_model(tmp_path, n_cases):
    folders = _calibrated_folders(tmp_path / "data", n_cases, seed=n_cases)
    report = build_report(
        folders.gt,
        [folders.preds[0], folders.preds[0]],
        folders.dataset_json,
        names=["a", "b"],
        bootstrap=300,
    )
    json_report = json.loads(json.dumps(_report_json(report)))
    for model in ("a", "b"):
        for entry in (
            json_report["models"][model]["labels"]["tumor"],
            json_report["models"][model]["top_label"],
        ):
            for scope, intervals in (
                ("pooled", entry["pooled_ci95"]),
                ("case_mean", entry["case_mean_ci95"]),
            ):
                for name, (low, high) in intervals.items():
                    value = entry[scope][name]
                    assert low <= value <= high, (model, scope, name, value, low, high)
    label = json_report["models"]["a"]["labels"]["tumor"]
    for name in ("ce_l2sq", "ce_l2sq_debiased", "ece_debiased", "smooth_ece"):
        assert name in label["pooled"] and name in json_report["metric_definitions"]
        assert (name in label["pooled_ci95"]) == (name != "smooth_ece")
    # the bias-aware estimates sit below the plug-in ones on a calibrated model (the bin noise removed)
    assert label["pooled"]["ece_debiased"] < label["pooled"]["ece"]
    assert label["pooled"]["ce_l2sq_debiased"] < label["pooled"]["ce_l2sq"]
    for paired in json_report["models"]["b"]["labels"]["tumor"]["paired"]["metrics"].values():
        assert paired["difference"] == 0.0 and paired["ci95"] == [0.0, 0.0]


def _report_json(report):
    from nnunet_surgery.report.outputs import report_json

    return report_json(report)


def test_estimators_are_those_of_the_pooled_sums(build, tmp_path):
    folders = build("binary", ((3, 9, 8), (2, 10, 7), (4, 6, 6)))
    report = build_report(folders.gt, folders.preds[:1], folders.dataset_json, bootstrap=0)
    pooled = report.models[0].labels["tumor"].pooled
    p = np.concatenate([folders.probabilities[0][case][1].ravel() for case in sorted(folders.references)])
    y = np.concatenate([folders.references[case].ravel() == 1 for case in sorted(folders.references)])
    stats = label_stats(p, y, N_BINS, fine_factor=fine_factor(N_BINS))
    bins = (stats.reliability.count, stats.reliability.sum_confidence, stats.reliability.sum_target)
    assert pooled.estimators.ce_l2sq == pytest.approx(float(squared_error(*bins)), rel=1e-12)
    assert pooled.estimators.ce_l2sq == pytest.approx(pooled.variants.ce_rms**2, rel=1e-12)
    fine = stats.fine
    expected_smooth = smooth_ece(fine.count, fine.sum_confidence, fine.sum_target).value
    assert pooled.estimators.smooth_ece == pytest.approx(float(expected_smooth), rel=1e-9)
    # the case-level variance of each bin's gap, from scratch: k/(k-1) sum_c (G_cb - n_cb g_b)^2 / n_b^2
    cases = [
        label_stats(folders.probabilities[0][case][1].ravel(), folders.references[case].ravel() == 1, N_BINS)
        for case in sorted(folders.references)
    ]
    n_b = bins[0]
    gap = np.where(n_b > 0, (bins[2] - bins[1]) / np.maximum(n_b, 1), 0.0)
    spread = sum(
        (case.reliability.sum_target - case.reliability.sum_confidence - case.reliability.count * gap) ** 2
        for case in cases
    )
    variance = np.where(n_b > 0, 1.5 * spread / np.maximum(n_b, 1) ** 2, 0.0)
    assert pooled.estimators.ece_debiased == pytest.approx(float(debiased_ece(*bins, variance)), rel=1e-9)


def test_a_million_bins_with_the_bootstrap_is_refused_before_any_case_is_read(build, tmp_path):
    folders = build("binary", ((3, 9, 8), (2, 10, 7), (4, 6, 6)))
    code, error, peak = run_report_process(folders, tmp_path / "out", "--bins", "1048576")
    assert code == 2 and error.count("\n") == 0, error
    assert "--bins 1048576" in error and "--bootstrap" in error and "--bootstrap 0" in error, error
    assert not (tmp_path / "out").exists()
    code, _, normal_peak = run_report_process(folders, tmp_path / "normal")
    assert code == 0
    # refused before reading: no more memory than a normal 20-bin run (which reads and scores every case)
    assert peak <= normal_peak * 1.05, (peak, normal_peak)


def test_a_bootstrap_too_large_to_keep_is_refused_before_any_case_is_read(build, tmp_path, capsys):
    from report_cli import run_report_command

    from nnunet_surgery.report.scoring.aggregate import LABEL_INTERVAL_METRICS
    from nnunet_surgery.report.scoring.memory import KEPT_COPIES, KEPT_METRICS

    assert len(LABEL_INTERVAL_METRICS) == KEPT_METRICS
    folders = build("binary", ((3, 9, 8), (2, 10, 7)))
    largest = 256 * 2**20 // (8 * KEPT_METRICS * KEPT_COPIES)
    assert run_report_command(folders, tmp_path / "out", "--bootstrap", str(largest + 1)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--bootstrap {largest + 1}" in error and f"<= {largest}" in error, (
        error
    )
    assert not (tmp_path / "out").exists()
