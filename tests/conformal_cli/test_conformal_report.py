"""`nnunet-surgery report --conformal CONFORMAL.json`: per model, the achieved mean FNR, pooled FNR and mask
sizes relative to nnU-Net's argmax segmentation and to the reference, recomputed here from the arrays,
with case-bootstrap intervals around them; in calibration.json and calibration.md."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conformal_folders import fit_predictor

from nnunet_surgery.cli import main


def _expected(dataset, probabilities: dict, threshold: float, channel: int) -> dict[str, float]:
    """The four metrics from the arrays: masks {p >= t} against references and argmax segmentations."""
    fnrs, mask, segmentation, reference, missed = [], 0, 0, 0, 0
    for case in dataset.test_cases:
        p = probabilities[case]
        inside = p[channel] >= np.float32(threshold)
        truth = dataset.references[case] == channel
        fnrs.append(np.count_nonzero(truth & ~inside) / truth.sum() if truth.any() else 0.0)
        mask += inside.sum()
        segmentation += (p.argmax(axis=0) == channel).sum()
        reference += truth.sum()
        missed += (truth & ~inside).sum()
    return {
        "mean_fnr": float(np.mean(fnrs)),
        "pooled_fnr": missed / reference,
        "size_to_segmentation": mask / segmentation,
        "size_to_reference": mask / reference,
    }


def _test_set(dataset, out) -> list[str]:
    """`report`'s arguments for the test cases (one model: the test folder) into `out`."""
    return [str(dataset.gt_test), str(dataset.test), "-djfile", str(dataset.dataset_json), "-o", str(out)]


@pytest.mark.parametrize("bootstrap", ["0", "200"])
def test_report_scores_each_models_conformal_masks(conformal_dataset, tmp_path, bootstrap):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=6)
    predictor = tmp_path / "conformal.json"
    fitted = fit_predictor(dataset, predictor, "0.2")["labels"]
    sharp = tmp_path / "sharp"  # a second model: the same cases, probabilities sharpened (p^2, renormalised)
    sharp.mkdir()
    sharpened = {}
    for case in dataset.test_cases:
        squared = dataset.probabilities[case].astype(np.float64) ** 2
        sharpened[case] = (squared / squared.sum(axis=0)).astype(np.float32)
        np.savez_compressed(sharp / f"{case}.npz", probabilities=sharpened[case])
    out = tmp_path / "report"
    arguments = [str(dataset.gt_test), str(dataset.test), str(sharp), "-djfile", str(dataset.dataset_json)]
    arguments += ["-o", str(out), "--names", "plain", "sharp", "--bootstrap", bootstrap, "-np", "1"]
    assert main(["report", *arguments, "--conformal", str(predictor), "--no-progress"]) == 0
    section = json.loads((out / "calibration.json").read_text())["conformal"]
    assert section["n_cases"] == len(dataset.test_cases)
    assert sorted(section["models"]) == ["plain", "sharp"]
    for model, probabilities in (("plain", dataset.probabilities), ("sharp", sharpened)):
        assert section["models"][model]["alpha"] == 0.2
        assert section["models"][model]["predictor"] == str(predictor)
        for name, channel in (("organ", 1), ("lesion", 2)):
            threshold = fitted[name]["threshold"]
            scored = section["models"][model]["labels"][name]
            assert scored["threshold"] == threshold
            expected = _expected(dataset, probabilities, threshold, channel)
            for metric, value in expected.items():
                assert scored[metric]["value"] == pytest.approx(value, rel=1e-12)
                if bootstrap == "0":
                    assert scored[metric]["ci95"] is None
                else:
                    low, high = scored[metric]["ci95"]
                    assert low <= scored[metric]["value"] <= high and low < high
    markdown = (out / "calibration.md").read_text()
    assert "## Conformal masks" in markdown
    assert markdown.count("| plain |") >= 2 and markdown.count("| sharp |") >= 2


def test_one_predictor_per_model(conformal_dataset, tmp_path):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=3)
    loose, strict = tmp_path / "loose.json", tmp_path / "strict.json"
    fit_predictor(dataset, loose, "0.3")
    fit_predictor(dataset, strict, "0.1")
    out = tmp_path / "report"
    arguments = [
        str(dataset.gt_test),
        str(dataset.test),
        str(dataset.test),
        "-djfile",
        str(dataset.dataset_json),
    ]
    arguments += ["-o", str(out), "--names", "a", "b", "--bootstrap", "0", "-np", "1"]
    assert main(["report", *arguments, "--conformal", str(loose), str(strict), "--no-progress"]) == 0
    models = json.loads((out / "calibration.json").read_text())["conformal"]["models"]
    assert (models["a"]["alpha"], models["b"]["alpha"]) == (0.3, 0.1)
    for name in ("organ", "lesion"):
        # the same probabilities: the stricter alpha gives the lower threshold and the larger mask
        a, b = models["a"]["labels"][name], models["b"]["labels"][name]
        assert b["threshold"] < a["threshold"]
        assert b["size_to_reference"]["value"] > a["size_to_reference"]["value"]
        assert b["mean_fnr"]["value"] <= a["mean_fnr"]["value"]


def test_another_number_of_predictors_than_models(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=2)
    predictor = tmp_path / "c.json"
    fit_predictor(dataset, predictor, "0.3")
    out = tmp_path / "report"
    arguments = _test_set(dataset, out)
    conformal = ["--conformal", str(predictor), str(predictor)]
    assert main(["report", *arguments, *conformal, "--no-progress"]) == 2
    assert "--conformal" in capsys.readouterr().err and not out.exists()


def test_an_infeasible_predictor_is_marked_in_the_table(conformal_dataset, tmp_path):
    dataset = conformal_dataset("labels", n_calibration=6, n_test=2, empty=0)  # 1/(6+1) > 0.1
    predictor = tmp_path / "c.json"
    fit_predictor(dataset, predictor, "0.1")
    out = tmp_path / "report"
    arguments = _test_set(dataset, out)
    assert (
        main(["report", *arguments, "--bootstrap", "0", "--conformal", str(predictor), "--no-progress"]) == 0
    )
    scored = json.loads((out / "calibration.json").read_text())["conformal"]["models"]["test"]["labels"]
    for label in scored.values():  # threshold 0: every voxel, nothing missed
        assert not label["feasible"] and label["threshold"] == 0.0 and label["mean_fnr"]["value"] == 0.0
    assert "0 (infeasible: n = 6 < 1/alpha - 1)" in (out / "calibration.md").read_text()
