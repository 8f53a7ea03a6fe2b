"""Hostile inputs of `recalibrate fit` / `apply` (issue 29): a calibrator is a file people share, an npz can
lie about its size, an output can be an input. Each is refused in one line naming the file or argument,
exit 2, nothing written, memory near a valid run's."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hostile_files import UNREADABLE, lying_directory, make_unreadable, zip_bomb
from peak_memory import measured_run
from recalibrate_cli import run_recalibrate
from test_errors import SHAPES, _fit_args, _one_line_error, _snapshot

from nnunet_surgery.cases.dataset import image_file_endings
from nnunet_surgery.recalibration.calibrator import BIAS_LIMIT, TEMPERATURE_RANGE


def _vector(content: dict) -> None:
    content.update(method="vector", temperatures=[1.0, 2.0], biases=[0.0, 0.5])
    del content["temperature"]


# name -> (text of the calibrator, from the fitted one's content; the message's expected parts)
HOSTILE_CALIBRATORS = {
    "deep-nesting": (lambda c: '{"format": ' + "[" * 50_000 + "]" * 50_000 + "}", ("nests 50001 levels",)),
    "5000-digit-integer": (lambda c: json.dumps(c).replace('"version": 1', '"version": ' + "1" * 5000),
                           ("number literal of 5000 characters",)),
    "400-digit-temperature": (lambda c: {**c, "temperature": 10**399}, ("number literal of 400",)),
    "60-digit-temperature": (lambda c: {**c, "temperature": 10**59}, ("'temperature' must be a finite number in",)),
    "1e999-temperature": (lambda c: json.dumps(c).replace(f'"temperature": {c["temperature"]}', '"temperature": 1e999'),
                          ("too large",)),
    "tiny-temperature": (lambda c: {**c, "temperature": 1e-300}, ("'temperature'", f"{TEMPERATURE_RANGE[0]:g}")),
    "temperature-over-limit": (lambda c: {**c, "temperature": 1001.0}, ("'temperature'", "1000")),
    "bool-temperature": (lambda c: {**c, "temperature": True}, ("'temperature' must be a number",)),
    "huge-bias": (lambda c: _with(c, _vector, lambda v: v.update(biases=[0.0, 2 * BIAS_LIMIT])), ("'biases[1]'",)),
    "short-temperatures": (lambda c: _with(c, _vector, lambda v: v.update(temperatures=[1.0])), ("list of 2",)),
    "vector-keys-in-temperature": (lambda c: {**c, "biases": [0, 0]}, ("unknown key 'biases'",)),
    "unknown-key": (lambda c: {**c, "exec": "rm -rf /"}, ("unknown key 'exec'",)),
    "unknown-layout-key": (lambda c: _with(c, lambda v: v["layout"].update(path="/etc")), ("unknown key 'path'",)),
    "file-ending-npz": (lambda c: _with(c, lambda v: v["layout"].update(file_ending=".npz")), ("'file_ending'", ".npz")),
    "file-ending-path": (lambda c: _with(c, lambda v: v["layout"].update(file_ending="/../../secret.nii.gz")),
                         ("'file_ending'", "secret")),
    "file-ending-separator": (lambda c: _with(c, lambda v: v["layout"].update(file_ending="x/.nii.gz")), ("'file_ending'",)),
    "file-ending-newline": (lambda c: _with(c, lambda v: v["layout"].update(file_ending=".nii\n.gz")),
                            ("'file_ending'", ".nii\\n.gz")),
    "names-count": (lambda c: _with(c, lambda v: v["layout"].update(names=["a", "b"])), ("must hold 1 names",)),
    "channels-huge": (lambda c: _with(c, lambda v: v["layout"].update(n_channels=10**9)), ("'n_channels'",)),
    "fit-wrong-type": (lambda c: _with(c, lambda v: v["fit"].update(cases="many")), ("fit 'cases'",)),
    "fit-unknown-key": (lambda c: _with(c, lambda v: v["fit"].update(command="x")), ("unknown key 'command'",)),
    "nan-bias": (lambda c: json.dumps(_with(c, _vector)).replace("0.5", "NaN"), ("non-finite number (NaN)",)),
}  # fmt: skip


def _with(content: dict, *changes) -> dict:
    content = json.loads(json.dumps(content))
    for change in changes:
        change(content)
    return content


@pytest.mark.parametrize("name", sorted(HOSTILE_CALIBRATORS))
def test_apply_validates_the_calibrator_whole(fitted, tmp_path, capsys, name):
    data, calibrator = fitted
    make, expected = HOSTILE_CALIBRATORS[name]
    content = make(json.loads(calibrator.read_text()))
    bad = tmp_path / "hostile.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(content))
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    assert run_recalibrate("apply", str(bad), str(data.folds[0]), "-o", str(out)) == 2
    _one_line_error(capsys, "apply: error", str(bad), *expected)
    assert _snapshot(tmp_path) == before and not out.exists()


def test_every_nnunet_image_ending_is_accepted_and_the_copy_never_overwrites_the_npz(fitted, tmp_path):
    data, calibrator = fitted
    content = json.loads(calibrator.read_text())
    assert ".npz" not in image_file_endings() and ".nii.gz" in image_file_endings()
    for ending in image_file_endings():
        content["layout"]["file_ending"] = ending
        calibrator.write_text(json.dumps(content))
        out = tmp_path / f"out{ending.replace('.', '_')}"
        assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(out)) == 0
        assert sorted(p.name for p in out.iterdir()) == [f"{case}.npz" for case in sorted(data.probabilities)]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((2, 0, 4, 4), "holds no voxels"), ((2,), "(C, *spatial)"), ((3, 2, 2, 2), "3 channels")],
)
def test_apply_refuses_maps_of_unusable_shapes(fitted, tmp_path, capsys, shape, expected):
    _, calibrator = fitted
    folder = tmp_path / "odd"
    folder.mkdir()
    np.savez_compressed(folder / "case.npz", probabilities=np.full(shape, 0.5, np.float32))
    assert run_recalibrate("apply", str(calibrator), str(folder), "-o", str(tmp_path / "o")) == 2
    _one_line_error(capsys, "case.npz", expected)
    assert not (tmp_path / "o").exists()


def test_a_segmentation_name_that_is_no_file_is_an_error(fitted, tmp_path, capsys):
    data, calibrator = fitted
    (data.folds[0] / "case_001.nii.gz").symlink_to(tmp_path / "nowhere")
    assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "o")) == 2
    _one_line_error(capsys, "case_001.nii.gz", "not a readable file")
    assert not (tmp_path / "o").exists()


# --- npz archives that lie about their size ----------------------------------------------------------------


def test_a_lying_zip_directory_is_refused_from_the_header_in_one_line(fitted, tmp_path):
    data, calibrator = fitted
    folder = tmp_path / "lying"
    folder.mkdir()
    lying_directory(folder / "case_000.npz", (2, 2**29 - 1024))  # ~4 GiB declared, 4 KB held
    valid = measured_run(
        "recalibrate", "apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "v")
    )
    lying = measured_run("recalibrate", "apply", str(calibrator), str(folder), "-o", str(tmp_path / "o"))
    assert valid.rc == 0
    assert lying.rc == 2 and lying.stderr.count("\n") == 1, lying.stderr
    assert "case_000.npz" in lying.stderr and "compressed bytes can hold" in lying.stderr, lying.stderr
    assert lying.peak_mib < valid.peak_mib + 32, (lying.peak_mib, valid.peak_mib)
    assert not (tmp_path / "o").exists()


def test_a_zip_bomb_costs_the_memory_of_its_array_once(fitted, tmp_path):
    """256 MiB of zeros in 260 KB: refused (softmax sums of 0) after reading it into one array, checked a
    chunk at a time, never whole (the whole-array check peaked at 3.5x the array)."""
    data, calibrator = fitted
    folder = tmp_path / "bomb"
    folder.mkdir()
    shape = (2, 32, 1024, 1024)
    zip_bomb(folder / "case_000.npz", shape)
    assert os.path.getsize(folder / "case_000.npz") < (1 << 20)
    valid = measured_run(
        "recalibrate", "apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "v")
    )
    bomb = measured_run("recalibrate", "apply", str(calibrator), str(folder), "-o", str(tmp_path / "o"))
    array_mib = 4 * np.prod(shape) / 2**20
    assert bomb.rc == 2 and bomb.stderr.count("\n") == 1 and "sum to 1" in bomb.stderr, bomb.stderr
    assert bomb.peak_mib < valid.peak_mib + 1.25 * array_mib, (bomb.peak_mib, valid.peak_mib)
    assert not (tmp_path / "o").exists()


# --- outputs that are inputs -------------------------------------------------------------------------------


def test_fit_never_overwrites_its_inputs(overconfident, tmp_path, capsys):
    data = overconfident(2, 2.0, SHAPES, folds=2)
    before = _snapshot(data.root)
    for output, relation in (
        (data.dataset_json, "is the input"),
        (data.folds[0] / "calibrator.json", "lies inside the input"),
        (data.gt / "c.json", "lies inside the input"),
    ):
        for overwrite in ((), ("--overwrite",)):
            assert run_recalibrate(*_fit_args(data, output), *overwrite) == 2
            _one_line_error(capsys, "fit: error", "-o CALIBRATOR.json", relation)
    assert _snapshot(data.root) == before


def test_apply_never_deletes_its_calibrator_or_predictions(fitted, tmp_path, capsys):
    data, calibrator = fitted
    before = _snapshot(tmp_path)
    for out, relation in (
        (tmp_path, "holds the input"),  # the folder holding the calibrator
        (data.folds[0].parent, "holds the input"),
        (data.folds[0] / "sub", "lies inside the input"),
    ):
        assert (
            run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(out), "--overwrite") == 2
        )
        _one_line_error(capsys, "apply: error", "OUT_FOLDER", relation)
        assert _snapshot(tmp_path) == before


# --- cases named but unreadable, skipped files said, repeated folders, messages ----------------------------


@pytest.mark.parametrize("kind", UNREADABLE)
def test_fit_and_apply_refuse_a_named_but_unreadable_case(fitted, tmp_path, capsys, kind):
    data, calibrator = fitted
    make_unreadable(data.folds[0] / "case_009.npz", kind, tmp_path / "missing.npz")
    assert run_recalibrate(*_fit_args(data, tmp_path / "c2.json")) == 2
    _one_line_error(capsys, "fit: error", "case_009.npz", "case_009")
    assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "o")) == 2
    _one_line_error(capsys, "apply: error", "case_009.npz")
    assert not (tmp_path / "c2.json").exists() and not (tmp_path / "o").exists()


def test_hidden_files_are_left_out_and_said(fitted, tmp_path, capsys):
    data, calibrator = fitted
    (data.folds[0] / "._case_000.npz").write_bytes(b"AppleDouble")
    assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "o")) == 0
    err = capsys.readouterr().err
    assert "left out 1 hidden prediction file(s) (._case_000.npz)" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o" / "._case_000.npz").exists()


def test_apply_says_which_files_it_does_not_copy(fitted, tmp_path, capsys):
    data, calibrator = fitted
    for name in ("case_000.pkl", "case_001.pkl", "plans.json", "case_000.nii.gz"):
        (data.folds[0] / name).write_bytes(b"x")
    assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "o")) == 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "3 file(s) not copied (case_000.pkl, case_001.pkl, plans.json)" in err, (
        err
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "case_000.nii.gz",
        "case_000.npz",
        "case_001.npz",
    ]


def test_fit_names_a_folder_given_twice(overconfident, tmp_path, capsys):
    data = overconfident(2, 2.0, SHAPES)
    folder = data.folds[0]
    assert run_recalibrate(*_fit_args(data, tmp_path / "c.json", folder, folder / ".." / folder.name)) == 2
    _one_line_error(capsys, "VAL_PRED_FOLDER is given twice", str(folder))


def test_a_file_name_with_a_newline_is_shown_escaped(fitted, tmp_path, capsys):
    data, calibrator = fitted
    np.savez_compressed(data.folds[0] / "bad\ncase.npz", probabilities=np.full((2, 1, 3, 3), np.nan, "f4"))
    assert run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", str(tmp_path / "o")) == 2
    _one_line_error(capsys, "bad\\ncase.npz", "NaN")


def test_an_unknown_option_is_told_by_the_subcommand(fitted, capsys):
    data, calibrator = fitted
    with pytest.raises(SystemExit) as exited:
        run_recalibrate("apply", str(calibrator), str(data.folds[0]), "-o", "x", "--roi", "all")
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: nnunet-surgery recalibrate apply"), err
    assert err[-1] == "nnunet-surgery recalibrate apply: error: unrecognized arguments: --roi all", err
