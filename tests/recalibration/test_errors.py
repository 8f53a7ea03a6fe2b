"""Every bad input of `recalibrate fit` / `apply`: one line naming the file or argument, exit 2, nothing
written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from recalibrate_cli import run_recalibrate

SHAPES = ((4, 12, 14), (5, 10, 12))


def _one_line_error(capsys, *expected: str) -> str:
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    assert error.startswith("nnunet-surgery recalibrate "), error
    for text in expected:
        assert text in error, (text, error)
    return error


def _fit_args(data, output: Path, *folders: Path) -> list[str]:
    folders = folders or tuple(data.folds)
    return ["fit", str(data.gt), *map(str, folders), "-djfile", str(data.dataset_json), "-o", str(output)]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- fit ---------------------------------------------------------------------------------------------------


def _break_prediction_without_reference(data, tmp_path):
    shutil.copy(data.folds[0] / "case_000.npz", data.folds[0] / "case_999.npz")
    return (), ("case_999", "no reference")


def _break_case_in_two_folders(data, tmp_path):
    shutil.copy(data.folds[0] / "case_000.npz", data.folds[1] / "case_000.npz")
    return (), ("case_000", "also in")


def _break_missing_folder(data, tmp_path):
    return (tmp_path / "nowhere",), ("nowhere", "does not exist")


def _break_nan(data, tmp_path):
    saved = data.probabilities["case_001"].copy()
    saved[0, 0, 0, 0] = np.nan
    np.savez_compressed(data.folds[-1] / "case_001.npz", probabilities=saved)
    return (), ("case_001.npz", "NaN")


def _break_channels(data, tmp_path):
    saved = data.probabilities["case_000"]
    np.savez_compressed(
        data.folds[0] / "case_000.npz", probabilities=np.concatenate([saved, saved[:1]]) / 1.5
    )
    return (), ("case_000.npz", "3 channels", "needs 2")


def _break_pickle(data, tmp_path):
    np.savez(data.folds[0] / "case_000.npz", probabilities=np.array([{"a": 1}], dtype=object))
    return (), ("case_000.npz", "pickle")


@pytest.mark.parametrize(
    "breaker",
    [
        _break_prediction_without_reference,
        _break_case_in_two_folders,
        _break_missing_folder,
        _break_nan,
        _break_channels,
        _break_pickle,
    ],
    ids=lambda f: f.__name__.removeprefix("_break_"),
)
def test_fit_refuses_bad_inputs(overconfident, tmp_path, capsys, breaker):
    data = overconfident(2, 2.0, SHAPES, folds=2)
    folders, expected = breaker(data, tmp_path)
    output = tmp_path / "out" / "calibrator.json"
    assert run_recalibrate(*_fit_args(data, output, *(folders or data.folds))) == 2
    _one_line_error(capsys, "fit: error", *expected)
    assert not (tmp_path / "out").exists()


def test_fit_refuses_a_bad_dataset_json_and_roi(overconfident, tmp_path, capsys):
    data = overconfident(2, 2.0, SHAPES)
    output = tmp_path / "calibrator.json"
    args = _fit_args(data, output)
    args[args.index("-djfile") + 1] = str(tmp_path / "missing.json")
    assert run_recalibrate(*args) == 2
    _one_line_error(capsys, "missing.json")
    assert run_recalibrate(*_fit_args(data, output), "--roi", f"mask:{tmp_path / 'no_masks'}") == 2
    _one_line_error(capsys, "no_masks", "mask folder")
    assert not output.exists()


def test_fit_refuses_an_empty_region_of_interest(overconfident, tmp_path, capsys):
    data = overconfident(2, 2.0, SHAPES)
    masks = tmp_path / "masks"
    masks.mkdir()
    for case, labels in data.references.items():
        sitk.WriteImage(
            sitk.GetImageFromArray(np.zeros_like(labels, dtype=np.uint8)), str(masks / f"{case}.nii.gz")
        )
    output = tmp_path / "calibrator.json"
    assert run_recalibrate(*_fit_args(data, output), "--roi", f"mask:{masks}") == 2
    _one_line_error(capsys, "no voxels")
    assert not output.exists()


def test_fit_keeps_an_existing_calibrator_and_checks_the_output_first(overconfident, tmp_path, capsys):
    data = overconfident(2, 2.0, SHAPES)
    output = tmp_path / "calibrator.json"
    output.write_text("mine")
    assert run_recalibrate(*_fit_args(data, output)) == 2
    _one_line_error(capsys, str(output), "--overwrite")
    assert output.read_text() == "mine"
    assert run_recalibrate(*_fit_args(data, tmp_path)) == 2  # a folder
    _one_line_error(capsys, "must be a file")
    # an output under a file: refused before any case is read (the NaN case is never reached)
    _break_nan(data, tmp_path)
    assert run_recalibrate(*_fit_args(data, output / "sub" / "calibrator.json")) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert run_recalibrate(*_fit_args(data, output), "--overwrite") == 2
    _one_line_error(capsys, "NaN")
    assert output.read_text() == "mine"


# --- apply -------------------------------------------------------------------------------------------------


def _edit(content: dict, change) -> dict:
    content = json.loads(json.dumps(content))
    change(content)
    return content


CALIBRATOR_EDITS = {
    "report-json": (lambda c: c.clear() or c.update({"models": []}), "not a calibrator"),
    "version": (lambda c: c.update(version=2), "version 2"),
    "method": (lambda c: c.update(method="platt"), "'method'"),
    "nan-temperature": (lambda c: c.update(temperature=float("nan")), "non-finite number (NaN)"),
    "negative-temperature": (
        lambda c: c.update(temperature=-1.0),
        "'temperature' must be a finite number in",
    ),
    "no-layout": (lambda c: c.pop("layout"), "'layout'"),
}


@pytest.mark.parametrize("edit", sorted(CALIBRATOR_EDITS))
def test_apply_refuses_a_calibrator_of_the_wrong_kind(fitted, tmp_path, capsys, edit):
    data, calibrator = fitted
    change, expected = CALIBRATOR_EDITS[edit]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_edit(json.loads(calibrator.read_text()), change)))
    out = tmp_path / "out"
    assert run_recalibrate("apply", str(bad), str(data.folds[0]), "-o", str(out)) == 2
    _one_line_error(capsys, "apply: error", str(bad), expected)
    assert not out.exists()


@pytest.mark.parametrize("content", ["not json {", "[1, 2]", ""])
def test_apply_refuses_a_file_that_is_no_calibrator(fitted, tmp_path, capsys, content):
    data, _ = fitted
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert run_recalibrate("apply", str(bad), str(data.folds[0]), "-o", str(tmp_path / "out")) == 2
    _one_line_error(capsys, str(bad))
    assert not (tmp_path / "out").exists()


def test_apply_refuses_maps_of_another_layout(fitted, overconfident, tmp_path, capsys):
    _, calibrator = fitted
    four = overconfident(4, 2.0, SHAPES, seed=9)
    assert run_recalibrate("apply", str(calibrator), str(four.folds[0]), "-o", str(tmp_path / "a")) == 2
    _one_line_error(capsys, "case_000.npz", "4 channels", "fitted on 2 softmax channels")
    regions = overconfident("regions", 2.0, SHAPES, seed=9)
    assert run_recalibrate("apply", str(calibrator), str(regions.folds[0]), "-o", str(tmp_path / "b")) == 2
    _one_line_error(capsys, "sum to 1", "fitted on softmax labels")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_apply_writes_nothing_when_one_case_is_bad(fitted, tmp_path, capsys):
    data, calibrator = fitted
    saved = data.probabilities["case_001"].copy()
    saved[1, 0, 0, 0] = np.nan
    np.savez_compressed(data.folds[0] / "case_001.npz", probabilities=saved)
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    for processes in ("1", "2"):
        assert (
            run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(out), "-np", processes)
            == 2
        )
        _one_line_error(capsys, "case_001.npz", "NaN")
        assert _snapshot(tmp_path) == before and not out.exists()


def test_apply_refuses_bad_folders(fitted, tmp_path, capsys):
    data, calibrator = fitted
    folder = data.folds[0]
    assert run_recalibrate("apply", str(calibrator), str(folder), "-o", str(folder)) == 2
    _one_line_error(capsys, "OUT_FOLDER is the input")
    assert (
        run_recalibrate("apply", str(calibrator), str(tmp_path / "nowhere"), "-o", str(tmp_path / "o")) == 2
    )
    _one_line_error(capsys, "nowhere", "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_recalibrate("apply", str(calibrator), str(empty), "-o", str(tmp_path / "o")) == 2
    _one_line_error(capsys, "empty", "no *.npz")
    assert run_recalibrate("apply", str(calibrator), str(folder), "-o", str(calibrator / "sub")) == 2
    _one_line_error(capsys, "lies inside the input")
    assert not (tmp_path / "o").exists()
