"""Bad input: one-line error naming the file and the problem, exit status 2, no output written."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from report_cli import run_report_command

pytestmark = pytest.mark.usefixtures("no_plots")
PREFIX = "nnunet-surgery report: error: "


def _run(folders, out, *extra: str, preds=None) -> int:
    return run_report_command(folders, out, "-np", "1", *extra, preds=preds)


def _fails(capsys, folders, tmp_path, *needles: str, extra: tuple[str, ...] = ()) -> str:
    out = tmp_path / "report"
    assert _run(folders, out, *extra) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith(PREFIX), error
    for needle in needles:
        assert needle in error, (needle, error)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")], "temporary output left behind"
    return error


def _replace(folders, case: str, array, model: int = 0) -> str:
    path = folders.preds[model] / f"{case}.npz"
    np.savez_compressed(path, probabilities=array)
    return str(path)


def _probabilities(folders, case: str = "case_002", model: int = 0) -> np.ndarray:
    return folders.probabilities[model][case].copy()


def test_case_missing_in_a_prediction_folder(build, tmp_path, capsys):
    folders = build()
    (folders.preds[1] / "case_001.npz").unlink()
    _fails(capsys, folders, tmp_path, str(folders.preds[1]), "case_001", "no CASE.npz prediction")


def test_prediction_without_reference(build, tmp_path, capsys):
    folders = build()
    (folders.gt / "case_001.nii.gz").unlink()
    _fails(capsys, folders, tmp_path, str(folders.preds[0]), "case_001", "no reference")


def test_spatial_shape_mismatch(build, tmp_path, capsys):
    folders = build()
    path = _replace(folders, "case_002", _probabilities(folders)[:, :, :-1])
    _fails(capsys, folders, tmp_path, path, "does not match the reference")


def test_axis_order_mismatch(build, tmp_path, capsys):
    folders = build()
    path = _replace(
        folders, "case_000", np.ascontiguousarray(_probabilities(folders, "case_000").transpose(0, 3, 2, 1))
    )
    _fails(capsys, folders, tmp_path, path, "axis order mismatch")


def test_missing_channel_axis(build, tmp_path, capsys):
    folders = build()
    path = _replace(folders, "case_002", _probabilities(folders)[1])
    _fails(capsys, folders, tmp_path, path, "axis count differs")


def test_channel_count_does_not_fit_dataset_json(build, tmp_path, capsys):
    folders = build()
    p = _probabilities(folders)
    path = _replace(folders, "case_002", np.concatenate([p * 0.5, p[:1] * 0.5]))
    _fails(capsys, folders, tmp_path, path, "has 3 channels but dataset.json needs 2")


def test_region_channel_count(build, tmp_path, capsys):
    folders = build("regions", ((3, 8, 8), (2, 8, 8)))
    path = _replace(folders, "case_001", np.concatenate([_probabilities(folders, "case_001")] * 2))
    _fails(capsys, folders, tmp_path, path, "needs 2 (one per region)")


@pytest.mark.parametrize(("value", "needle"), [(np.nan, "NaN or inf"), (np.inf, "NaN or inf")])
def test_non_finite_probabilities(build, tmp_path, capsys, value, needle):
    folders = build()
    p = _probabilities(folders)
    p[1, 0, 3, 3] = value
    _fails(capsys, folders, tmp_path, _replace(folders, "case_002", p), needle)


def test_probabilities_outside_unit_interval(build, tmp_path, capsys):
    folders = build()
    p = _probabilities(folders)
    p[0, 0, 0, 0], p[1, 0, 0, 0] = -0.25, 1.25
    _fails(capsys, folders, tmp_path, _replace(folders, "case_002", p), "must lie in [0, 1]")


def test_softmax_channels_not_summing_to_one(build, tmp_path, capsys):
    folders = build()
    p = _probabilities(folders) * 0.8
    _fails(capsys, folders, tmp_path, _replace(folders, "case_002", p), "sum to 1")


def test_corrupt_npz(build, tmp_path, capsys):
    folders = build()
    path = folders.preds[0] / "case_001.npz"
    path.write_bytes(path.read_bytes()[:60])
    _fails(capsys, folders, tmp_path, str(path), "corrupt npz")


def test_file_that_is_not_a_zip(build, tmp_path, capsys):
    folders = build()
    path = folders.preds[0] / "case_001.npz"
    path.write_bytes(b"this is not an archive at all")
    _fails(capsys, folders, tmp_path, str(path), "not an npz")


def test_npz_holding_a_pickled_object_array(build, tmp_path, capsys):
    folders = build()
    path = folders.preds[0] / "case_001.npz"
    np.savez(path, probabilities=np.array([{"a": 1}, None], dtype=object))
    _fails(capsys, folders, tmp_path, str(path), "pickled object array")


def test_pickle_renamed_to_npz(build, tmp_path, capsys):
    folders = build()
    path = folders.preds[0] / "case_001.npz"
    path.write_bytes(pickle.dumps({"probabilities": [0.5]}))
    _fails(capsys, folders, tmp_path, str(path), "pickle")


def test_npz_without_probabilities_key(build, tmp_path, capsys):
    folders = build()
    path = folders.preds[0] / "case_001.npz"
    np.savez(path, softmax=_probabilities(folders, "case_001"))
    _fails(capsys, folders, tmp_path, str(path), "no array 'probabilities'")


def test_integer_probabilities(build, tmp_path, capsys):
    folders = build()
    path = _replace(folders, "case_002", (_probabilities(folders) > 0.5).astype(np.uint8))
    _fails(capsys, folders, tmp_path, path, "floating-point")


def test_empty_reference_folder(build, tmp_path, capsys):
    folders = build()
    for path in folders.gt.iterdir():
        path.unlink()
    _fails(capsys, folders, tmp_path, str(folders.gt), "empty reference folder")


def test_empty_prediction_folder(build, tmp_path, capsys):
    folders = build()
    for path in folders.preds[1].glob("*.npz"):
        path.unlink()
    _fails(
        capsys, folders, tmp_path, str(folders.preds[1]), "empty prediction folder", "--save_probabilities"
    )


def test_unknown_label_in_reference(build, tmp_path, capsys):
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    folders = build()
    path = folders.gt / "case_001.nii.gz"
    io = SimpleITKIO()
    seg, properties = io.read_seg(str(path))
    seg[0, 0, 0, 0] = 7
    io.write_seg(seg[0].astype(np.uint8), str(path), properties)
    _fails(capsys, folders, tmp_path, str(path), "label value(s) [7]")


def test_corrupt_reference_file(build, tmp_path, capsys):
    folders = build()
    path = folders.gt / "case_002.nii.gz"
    path.write_bytes(b"broken")
    _fails(capsys, folders, tmp_path, str(path), "cannot read")


def test_dataset_json_without_file_ending(build, tmp_path, capsys):
    folders = build()
    content = json.loads(folders.dataset_json.read_text())
    del content["file_ending"]
    folders.dataset_json.write_text(json.dumps(content))
    _fails(capsys, folders, tmp_path, str(folders.dataset_json), "file_ending")


def test_truth_missing_a_case_and_truth_shape_mismatch(build, tmp_path, capsys):
    folders = build(truth=True)
    (folders.truth / "case_000.npz").unlink()
    _fails(capsys, folders, tmp_path, str(folders.truth), "case_000", extra=("--truth", str(folders.truth)))
    np.savez_compressed(folders.truth / "case_000.npz", probabilities=folders.truth_maps["case_000"][:1])
    _fails(capsys, folders, tmp_path, "case_000.npz", "channels", extra=("--truth", str(folders.truth)))


def test_wrong_number_of_names(build, tmp_path, capsys):
    folders = build()
    _fails(capsys, folders, tmp_path, "--names", extra=("--names", "only_one"))


def test_an_error_in_the_last_case_leaves_no_output(build, tmp_path, capsys):
    folders = build(shapes=((3, 8, 8),) * 5)
    p = _probabilities(folders, "case_004", model=1)
    p[0, 0, 0, 0] = np.nan
    path = _replace(folders, "case_004", p, model=1)
    _fails(capsys, folders, tmp_path, path, "NaN")


def test_out_dir_with_an_older_report_is_refused_unless_overwrite(build, tmp_path, capsys):
    folders = build(n_models=1)
    out = tmp_path / "report"
    out.mkdir()
    (out / "calibration.json").write_text("{}")
    (out / "reliability_stale.png").write_bytes(b"old")
    (out / "notes.txt").write_text("keep me")
    assert _run(folders, out) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith(PREFIX) and str(out) in error and "--overwrite" in error and error.count("\n") == 1
    )
    assert (out / "calibration.json").read_text() == "{}"
    assert _run(folders, out, "--overwrite") == 0
    assert json.loads((out / "calibration.json").read_text())["bins"] == 20
    assert not (out / "reliability_stale.png").exists() and (out / "notes.txt").read_text() == "keep me"
    shutil.rmtree(out)


def test_bad_roi_and_bins_are_argument_errors(build, tmp_path, capsys):
    folders = build(n_models=1)
    with pytest.raises(SystemExit) as exit_info:
        _run(folders, tmp_path / "report", "--roi", "band:-1")
    assert exit_info.value.code == 2
    assert "band width" in capsys.readouterr().err
    _fails(capsys, folders, tmp_path, "--bins", extra=("--bins", "0"))
