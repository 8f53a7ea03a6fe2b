"""`recalibrate apply`: the recalibrated maps are the calibrator's function of the saved ones, argmax and
thresholds are kept, segmentations are copied byte for byte, pickles are left alone, and the output
folder appears only whole."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from recalibrate_cli import run_recalibrate
from scipy.special import expit, logit, softmax

SHAPES = ((6, 20, 24), (5, 24, 20))


def _fitted(overconfident, tmp_path: Path, kind, method: str = "temperature"):
    data = overconfident(kind, 2.0, SHAPES, seed=1)
    calibrator_json = tmp_path / f"calibrator_{kind}_{method}.json"
    code = run_recalibrate(
        "fit",
        str(data.gt),
        *map(str, data.folds),
        "-djfile",
        str(data.dataset_json),
        "-o",
        str(calibrator_json),
        "--method",
        method,
    )
    assert code == 0
    return data, calibrator_json


def _load(path: Path) -> np.ndarray:
    with np.load(path) as archive:
        return archive["probabilities"]


@pytest.mark.parametrize("kind", [2, 4, "regions"])
def test_apply_is_the_scaled_softmax_or_sigmoid(overconfident, tmp_path, kind):
    data, calibrator_json = _fitted(overconfident, tmp_path, kind)
    temperature = json.loads(calibrator_json.read_text())["temperature"]
    out = tmp_path / "recalibrated"
    assert run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(out)) == 0
    for case, saved in data.probabilities.items():
        result = _load(out / f"{case}.npz")
        assert result.shape == saved.shape and result.dtype == saved.dtype
        p = saved.astype(np.float64)
        if data.region_based:
            expected = expit(logit(p) / temperature)
            np.testing.assert_array_equal(result > 0.5, saved > 0.5)
        else:
            expected = softmax(np.log(p) / temperature, axis=0)
            np.testing.assert_array_equal(result.argmax(axis=0), saved.argmax(axis=0))
        np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-7)
        # less confident: the scaled probabilities are closer to the uniform / 0.5 than the saved ones
        centre = 0.5 if data.region_based else 1 / saved.shape[0]
        assert np.abs(result - centre).mean() < np.abs(saved - centre).mean()


def test_vector_apply_uses_each_channels_temperature_and_bias(overconfident, tmp_path):
    data, calibrator_json = _fitted(overconfident, tmp_path, 4, "vector")
    content = json.loads(calibrator_json.read_text())
    temperatures, biases = np.array(content["temperatures"]), np.array(content["biases"])
    assert biases[0] == 0.0 and len(temperatures) == 4
    out = tmp_path / "recalibrated"
    assert run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(out)) == 0
    saved = data.probabilities["case_000"]
    logits = (
        np.log(saved.astype(np.float64)) / temperatures[:, None, None, None] + biases[:, None, None, None]
    )
    np.testing.assert_allclose(_load(out / "case_000.npz"), softmax(logits, axis=0), rtol=1e-6, atol=1e-7)


def test_apply_copies_segmentations_and_never_touches_pickles(overconfident, tmp_path):
    data, calibrator_json = _fitted(overconfident, tmp_path, 2)
    folder = data.folds[0]
    for case in data.references:
        (folder / f"{case}.nii.gz").write_bytes(b"segmentation bytes of " + case.encode())
        (folder / f"{case}.pkl").write_bytes(pickle.dumps({"never": "loaded"}))
    (folder / "summary.json").write_text("{}")
    out = tmp_path / "recalibrated"
    assert run_recalibrate("apply", str(calibrator_json), str(folder), "-o", str(out)) == 0
    names = sorted(entry.name for entry in out.iterdir())
    cases = sorted(data.references)
    assert names == sorted([f"{c}.npz" for c in cases] + [f"{c}.nii.gz" for c in cases])
    for case in cases:
        assert (out / f"{case}.nii.gz").read_bytes() == (folder / f"{case}.nii.gz").read_bytes()


def test_apply_refuses_an_existing_folder_unless_overwrite(overconfident, tmp_path, capsys):
    data, calibrator_json = _fitted(overconfident, tmp_path, 2)
    out = tmp_path / "recalibrated"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(out)) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(out) in error and "--overwrite" in error
    assert sorted(entry.name for entry in out.iterdir()) == ["keep.txt"]
    assert (
        run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(out), "--overwrite") == 0
    )
    assert sorted(entry.name for entry in out.iterdir()) == sorted(f"{c}.npz" for c in data.references)
    assert not [entry for entry in tmp_path.iterdir() if entry.name.startswith(".recalibrated")]


def test_apply_with_processes_writes_the_same_maps(overconfident, tmp_path):
    data, calibrator_json = _fitted(overconfident, tmp_path, 4)
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(one)) == 0
    assert run_recalibrate("apply", str(calibrator_json), str(data.folds[0]), "-o", str(two), "-np", "2") == 0
    for case in data.references:
        np.testing.assert_array_equal(_load(one / f"{case}.npz"), _load(two / f"{case}.npz"))
