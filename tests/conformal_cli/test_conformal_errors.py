"""Bad input to `nnunet-surgery conformal fit|apply`: one line naming the argument or file, exit status 2,
nothing written (the CONFORMAL.json or OUT_FOLDER absent, or the previous one untouched)."""

from __future__ import annotations

import json

import pytest
from conformal_folders import run_conformal


def _fit_arguments(dataset, output) -> list[str]:
    return [
        str(dataset.gt),
        *map(str, dataset.folds),
        "-djfile",
        str(dataset.dataset_json),
        "-o",
        str(output),
    ]


def _refused(capsys, *arguments: str) -> str:
    assert run_conformal(*arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(
        f"nnunet-surgery conformal {arguments[0]}: error: "
    )
    return error


@pytest.mark.parametrize("alpha", ["0", "1", "1.5", "-0.1", "nan"])
def test_alpha_outside_the_open_unit_interval(conformal_dataset, tmp_path, capsys, alpha):
    dataset = conformal_dataset("labels", n_calibration=4, n_test=0)
    output = tmp_path / "c.json"
    assert "--alpha" in _refused(capsys, "fit", *_fit_arguments(dataset, output), "--alpha", alpha)
    assert not output.exists()


def test_unknown_label_names(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=4, n_test=0)
    output = tmp_path / "c.json"
    error = _refused(capsys, "fit", *_fit_arguments(dataset, output), "--alpha", "0.1", "--labels", "tumour")
    assert "--labels" in error and "lesion" in error
    assert not output.exists()


def test_an_existing_predictor_is_kept_unless_overwrite(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=4, n_test=0)
    output = tmp_path / "c.json"
    output.write_text("mine")
    assert "--overwrite" in _refused(capsys, "fit", *_fit_arguments(dataset, output), "--alpha", "0.3")
    assert output.read_text() == "mine"


def test_invalid_probabilities_name_the_file_and_write_nothing(conformal_dataset, tmp_path, capsys):
    import numpy as np

    dataset = conformal_dataset("labels", n_calibration=4, n_test=0)
    bad = sorted(dataset.folds[1].glob("*.npz"))[0]
    np.savez_compressed(bad, probabilities=np.full_like(dataset.probabilities[bad.stem], 0.7))  # sums to 2.1
    output = tmp_path / "c.json"
    assert bad.name in _refused(capsys, "fit", *_fit_arguments(dataset, output), "--alpha", "0.3")
    assert not output.exists()


def _tamper(content: dict, edit: str) -> None:
    label = content["labels"]["lesion"]
    if edit == "threshold":
        label["threshold"] = min(1.0, label["threshold"] + 0.05)
    elif edit == "threshold float64":
        label["threshold"] = label["threshold"] + 1e-12
    elif edit == "alpha":
        content["alpha"] = 0.3
    elif edit == "curve":
        label["risk_curve"]["mean_fnr"][50] += 0.01
    elif edit == "n":
        label["n"] += 5
    elif edit == "missing":
        del label["threshold"]
    elif edit == "channel":
        label["channel"] = 1  # lesion is channel 2 of the dataset it was fitted on
    elif edit == "format":
        content["format"] = "a calibrator"


@pytest.mark.parametrize(
    "edit",
    ["threshold", "threshold float64", "alpha", "curve", "n", "missing", "channel", "format", "not json"],
)
def test_a_tampered_predictor_is_refused_and_nothing_written(conformal_dataset, tmp_path, capsys, edit):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=1)
    predictor = tmp_path / "c.json"
    assert run_conformal("fit", *_fit_arguments(dataset, predictor), "--alpha", "0.2", "-np", "1") == 0
    capsys.readouterr()
    if edit == "not json":
        predictor.write_text(predictor.read_text()[:-20])
    else:
        content = json.loads(predictor.read_text())
        _tamper(content, edit)
        predictor.write_text(json.dumps(content))
    out = tmp_path / "masks"
    error = _refused(capsys, "apply", str(predictor), str(dataset.test), "-o", str(out))
    assert str(predictor) in error
    assert not out.exists()


def test_output_inside_the_prediction_folder_or_around_it(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=1)
    predictor = tmp_path / "c.json"
    assert run_conformal("fit", *_fit_arguments(dataset, predictor), "--alpha", "0.2", "-np", "1") == 0
    capsys.readouterr()
    before = sorted(p.name for p in dataset.test.iterdir())
    for out in (dataset.test, dataset.test / "masks", dataset.test.parent):
        assert "OUT_FOLDER" in _refused(
            capsys, "apply", str(predictor), str(dataset.test), "-o", str(out), "--overwrite"
        )
    assert sorted(p.name for p in dataset.test.iterdir()) == before


def test_a_prediction_without_its_segmentation(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_calibration=12, n_test=2)
    predictor = tmp_path / "c.json"
    assert run_conformal("fit", *_fit_arguments(dataset, predictor), "--alpha", "0.2", "-np", "1") == 0
    capsys.readouterr()
    sorted(dataset.test.glob("*.nii.gz"))[0].unlink()
    out = tmp_path / "masks"
    assert "segmentation" in _refused(capsys, "apply", str(predictor), str(dataset.test), "-o", str(out))
    assert not out.exists()


def test_a_predictor_of_another_dataset_is_refused_by_the_report(conformal_dataset, tmp_path, capsys):
    regions = conformal_dataset("regions", n_calibration=12, n_test=2)
    labels = conformal_dataset("labels", n_calibration=12, n_test=2, seed=1)
    predictor = tmp_path / "c.json"
    assert run_conformal("fit", *_fit_arguments(regions, predictor), "--alpha", "0.2", "-np", "1") == 0
    capsys.readouterr()
    from nnunet_surgery.cli import main

    out = tmp_path / "report"
    arguments = [str(labels.gt_test), str(labels.test), "-djfile", str(labels.dataset_json), "-o", str(out)]
    assert main(["report", *arguments, "--conformal", str(predictor), "--no-progress"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(predictor) in error
    assert not out.exists()
