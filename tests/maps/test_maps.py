"""`nnunet-surgery maps`: geometry of the reference, values of the npz in the reader's axis order, regions,
ensembles (mean / std / entropy / mutual information against numpy and scipy), and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.stats import entropy as scipy_entropy

from nnunet_surgery.cli import main

LABELS = {"background": 0, "liver": 1, "lesion": 2}
REGION_LABELS = {"background": 0, "whole": [1, 2], "core": 2}
# a rotation about z by 30 degrees, then a flip of y: non-identity, orthonormal
_C, _S = np.cos(np.pi / 6), np.sin(np.pi / 6)
DIRECTION = (_C, -_S, 0.0, -_S, -_C, 0.0, 0.0, 0.0, 1.0)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def _dataset(root: Path, labels: dict, ending: str = ".nii.gz", **extra) -> Path:
    content = {
        "labels": labels,
        "file_ending": ending,
        "channel_names": {"0": "CT"},
        "numTraining": 0,
        **extra,
    }
    path = root / "dataset.json"
    path.write_text(json.dumps(content))
    return path


def _write_reference(path: Path, shape_zyx: tuple[int, ...], spacing, origin, direction) -> None:
    image = sitk.GetImageFromArray(np.zeros(shape_zyx, dtype=np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), True)


def _models(
    root: Path, cases: dict[str, tuple[int, ...]], members: int, channels: int, regions: bool, seed=0
):
    """`members` folders of CASE.npz; returns the folders and {case: (members, C, *spatial) array}."""
    rng = np.random.default_rng(seed)
    folders = [root / f"fold_{m}" for m in range(members)]
    arrays = {}
    for folder in folders:
        folder.mkdir()
    for case, spatial in cases.items():
        stack = []
        for folder in folders:
            logits = rng.normal(0, 2, (channels, *spatial))
            p = (1 / (1 + np.exp(-logits))).astype(np.float32) if regions else _softmax(logits)
            p[:, 0, 0, 0] = 1.0 if regions else p[:, 0, 0, 0]  # a saturated voxel
            np.savez_compressed(folder / f"{case}.npz", probabilities=p)
            stack.append(p)
        arrays[case] = np.stack(stack)
    return folders, arrays


def _maps(*args: str) -> int:
    return main(["maps", *args, "--no-progress"])


def _read(path: Path) -> tuple[sitk.Image, np.ndarray]:
    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def test_one_model_3d_anisotropic_rotated(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    cases = {"case_a": (5, 7, 9), "case_b": (4, 6, 8)}
    geometry = ((0.7, 1.3, 2.5), (10.0, -20.0, 30.5), DIRECTION)
    for case, shape in cases.items():
        _write_reference(gt / f"{case}.nii.gz", shape, *geometry)
    folders, arrays = _models(tmp_path, cases, 1, 3, regions=False)
    out = tmp_path / "maps"
    assert (
        _maps(str(folders[0]), "-ref", str(gt), "-djfile", str(_dataset(tmp_path, LABELS)), "-o", str(out))
        == 0
    )
    for case, shape in cases.items():
        assert sorted(p.name for p in (out / case).iterdir()) == sorted(
            ["liver_probability.nii.gz", "lesion_probability.nii.gz", "entropy.nii.gz"]
        )
        reference = sitk.ReadImage(str(gt / f"{case}.nii.gz"))
        p = arrays[case][0]
        for channel, name in ((1, "liver"), (2, "lesion")):
            image, values = _read(out / case / f"{name}_probability.nii.gz")
            assert image.GetSize() == reference.GetSize() and values.shape == shape
            np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-6)
            np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), rtol=1e-6)
            np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
            assert values.dtype == np.float32
            np.testing.assert_array_equal(values, p[channel])  # the npz channel, in the reader's axis order
        _, h = _read(out / case / "entropy.nii.gz")
        np.testing.assert_allclose(h, scipy_entropy(p.astype(np.float64), axis=0), rtol=1e-5, atol=1e-6)


def test_2d_nifti_and_png_references(tmp_path):
    for ending, make in (
        (
            ".nii.gz",
            lambda path: _write_reference(path, (12, 10), (0.5, 0.8), (3.0, 4.0), (0.0, 1.0, 1.0, 0.0)),
        ),
        (
            ".png",
            lambda path: __import__("PIL.Image").Image.fromarray(np.zeros((12, 10), np.uint8)).save(path),
        ),
    ):
        root = tmp_path / ending.strip(".")
        gt = root / "gt"
        gt.mkdir(parents=True)
        make(gt / f"case{ending}")
        folders, arrays = _models(root, {"case": (1, 12, 10)}, 1, 2, regions=False)
        labels = {"background": 0, "lesion": 1}
        out = root / "maps"
        assert (
            _maps(
                str(folders[0]),
                "-ref",
                str(gt),
                "-djfile",
                str(_dataset(root, labels, ending)),
                "-o",
                str(out),
            )
            == 0
        )
        image, values = _read(out / "case" / "lesion_probability.nii.gz")
        assert image.GetDimension() == 2 and values.shape == (12, 10)
        np.testing.assert_array_equal(values, arrays["case"][0, 1, 0])
        if ending == ".nii.gz":
            reference = sitk.ReadImage(str(gt / f"case{ending}"))
            assert image.GetSpacing() == pytest.approx(reference.GetSpacing())
            assert image.GetOrigin() == pytest.approx(reference.GetOrigin())
            assert image.GetDirection() == pytest.approx(reference.GetDirection())
        else:
            assert image.GetSpacing() == (1.0, 1.0)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return scipy_entropy(np.stack([p, 1 - p]), axis=0)


def test_region_ensemble_against_numpy(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    cases = {"case": (4, 6, 5)}
    _write_reference(
        gt / "case_0000.nii.gz", cases["case"], (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), DIRECTION
    )  # an image
    folders, arrays = _models(tmp_path, cases, 3, 2, regions=True)
    dataset = _dataset(tmp_path, REGION_LABELS, regions_class_order=[1, 2])
    out = tmp_path / "maps"
    assert (
        _maps(*map(str, folders), "-ref", str(gt), "-djfile", str(dataset), "-o", str(out), "-np", "2") == 0
    )
    members = arrays["case"].astype(np.float64)  # (M, R, z, y, x)
    mean = members.mean(axis=0)
    for region, name in enumerate(("whole", "core")):
        np.testing.assert_allclose(
            _read(out / "case" / f"{name}_probability.nii.gz")[1], mean[region], rtol=1e-6
        )
        np.testing.assert_allclose(
            _read(out / "case" / f"{name}_std.nii.gz")[1],
            members[:, region].std(axis=0),
            rtol=1e-5,
            atol=1e-6,
        )
    total = sum(_binary_entropy(mean[r]) for r in range(2))
    expected_information = total - np.mean(
        [sum(_binary_entropy(m[r]) for r in range(2)) for m in members], axis=0
    )
    np.testing.assert_allclose(_read(out / "case" / "entropy.nii.gz")[1], total, rtol=1e-5, atol=1e-6)
    information = _read(out / "case" / "mutual_information.nii.gz")[1]
    np.testing.assert_allclose(information, expected_information, rtol=1e-4, atol=1e-6)
    assert information.min() >= 0


def test_softmax_ensemble_mutual_information(tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    cases = {"case": (3, 5, 4)}
    _write_reference(gt / "case.nii.gz", cases["case"], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), DIRECTION)
    folders, arrays = _models(tmp_path, cases, 5, 3, regions=False, seed=3)
    out = tmp_path / "maps"
    assert (
        _maps(*map(str, folders), "-ref", str(gt), "-djfile", str(_dataset(tmp_path, LABELS)), "-o", str(out))
        == 0
    )
    members = arrays["case"].astype(np.float64)
    mean = members.mean(axis=0)
    expected = scipy_entropy(mean, axis=0) - np.mean([scipy_entropy(m, axis=0) for m in members], axis=0)
    np.testing.assert_allclose(
        _read(out / "case" / "mutual_information.nii.gz")[1], expected, rtol=1e-4, atol=1e-6
    )


def _one_line(capsys, *expected: str) -> None:
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and error.startswith("nnunet-surgery maps: error:"), error
    for text in expected:
        assert text in error, (text, error)


def _two_cases(root: Path, members: int):
    """References gt/case_a and gt/case_b (3x4x5), `members` softmax model folders of them and the dataset.json
    of LABELS; returns gt, the folders, {case: array} and the dataset.json path."""
    gt = root / "gt"
    gt.mkdir()
    cases = {"case_a": (3, 4, 5), "case_b": (3, 4, 5)}
    for case, shape in cases.items():
        _write_reference(gt / f"{case}.nii.gz", shape, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), DIRECTION)
    folders, arrays = _models(root, cases, members, 3, regions=False)
    return gt, folders, arrays, _dataset(root, LABELS)


def test_bad_inputs_get_one_line_and_write_nothing(tmp_path, capsys):
    gt, folders, arrays, dataset_json = _two_cases(tmp_path, members=2)
    cases = {case: array.shape[2:] for case, array in arrays.items()}
    dataset = str(dataset_json)
    out = tmp_path / "maps"
    base = ["-ref", str(gt), "-djfile", dataset, "-o", str(out)]
    (folders[1] / "case_b.npz").rename(tmp_path / "moved.npz")
    assert _maps(*map(str, folders), *base) == 2
    _one_line(capsys, "fold_1", "same cases")
    (tmp_path / "moved.npz").rename(folders[1] / "case_b.npz")
    np.savez_compressed(folders[0] / "case_b.npz", probabilities=arrays["case_b"][0][:2])
    assert _maps(*map(str, folders), *base, "-np", "1") == 2
    _one_line(capsys, "case_b.npz", "2 channels")
    # the whole run is staged: case_a, finished before case_b failed, is not left behind, nor OUT_DIR
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    np.savez_compressed(folders[0] / "case_b.npz", probabilities=arrays["case_b"][0])
    assert _maps(*map(str, folders), *base) == 0
    written = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = arrays["case_b"][0].copy()
    bad[0, 0, 0, 0] = np.nan
    np.savez_compressed(folders[0] / "case_b.npz", probabilities=bad)
    assert _maps(*map(str, folders), *base, "-np", "2", "--overwrite") == 2
    _one_line(capsys, "case_b.npz", "NaN")
    # the earlier maps untouched, whole, and no staging left behind
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == written
    assert not [p for p in (*out.iterdir(), *tmp_path.iterdir()) if p.name.startswith(".")]
    (gt / "case_b.nii.gz").unlink()
    assert _maps(*map(str, folders), *base) == 2
    _one_line(capsys, "no reference", "case_b")
    _write_reference(gt / "case_b.nii.gz", cases["case_b"], (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), DIRECTION)
    np.savez_compressed(folders[0] / "case_b.npz", probabilities=arrays["case_b"][0])
    assert _maps(*map(str, folders), *base) == 2
    _one_line(capsys, "already holds maps of case_a", "--overwrite")
    assert (
        _maps(*map(str, folders), "-ref", str(gt), "-djfile", dataset, "-o", str(gt / "case_a.nii.gz" / "x"))
        == 2
    )
    _one_line(capsys, "OUT_DIR lies inside the input")
    assert _maps(*map(str, folders), *base, "--overwrite") == 0
    assert len(list((out / "case_a").iterdir())) == 2 * 2 + 2


def test_a_write_failing_midway_keeps_the_previous_maps_and_leaves_no_staging(tmp_path, capsys, monkeypatch):
    """The second map file of case_b fails to write (a full disk): one line naming case_b's folder, exit 2;
    case_b's maps of the earlier run are still there, whole, and no staging folder is left."""
    import dataclasses

    import nnunet_surgery.maps.export as export

    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    out = tmp_path / "maps"
    args = [*map(str, folders), "-ref", str(gt), "-djfile", str(dataset), "-o", str(out)]
    assert _maps(*args) == 0
    before = {p.name: p.read_bytes() for p in (out / "case_b").iterdir()}
    assert len(before) == (len(LABELS) - 1) + 1  # the foreground labels' maps and the entropy

    real = export.read_geometry

    def failing_geometry(reader_class, path):
        geometry = real(reader_class, path)
        if not Path(path).name.startswith("case_b"):
            return geometry
        written = []

        def write(array, target):
            if written:
                raise OSError(28, "No space left on device")
            written.append(target)
            geometry.write(array, target)

        return dataclasses.replace(geometry, write=write)

    monkeypatch.setattr(export, "read_geometry", failing_geometry)
    assert _maps(*args, "--overwrite", "-np", "1") == 2
    _one_line(capsys, str(out / "case_b"), "No space left on device")
    assert {p.name: p.read_bytes() for p in (out / "case_b").iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["case_a", "case_b"]


@pytest.mark.parametrize("reader", ["NibabelIO", "NibabelIOWithReorient"])
def test_nibabel_readers_round_trip(tmp_path, reader):
    import nibabel
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIO, NibabelIOWithReorient

    gt = tmp_path / "gt"
    gt.mkdir()
    affine = np.array([[0.0, -1.5, 0.0, 10.0], [0.8, 0.0, 0.0, -5.0], [0.0, 0.0, -2.0, 7.0], [0, 0, 0, 1.0]])
    nibabel.save(nibabel.Nifti1Image(np.zeros((6, 5, 4), np.uint8), affine), str(gt / "case.nii.gz"))
    io = {"NibabelIO": NibabelIO, "NibabelIOWithReorient": NibabelIOWithReorient}[reader]()
    spatial = io.read_seg(str(gt / "case.nii.gz"))[0].shape[1:]
    folders, arrays = _models(tmp_path, {"case": spatial}, 1, 2, regions=False)
    dataset = _dataset(tmp_path, {"background": 0, "lesion": 1}, overwrite_image_reader_writer=reader)
    out = tmp_path / "maps"
    assert _maps(str(folders[0]), "-ref", str(gt), "-djfile", str(dataset), "-o", str(out)) == 0
    written = out / "case" / "lesion_probability.nii.gz"
    np.testing.assert_allclose(nibabel.load(str(written)).affine, affine, atol=1e-6)
    # read back as nnU-Net reads the reference: the npz channel, voxel for voxel
    np.testing.assert_allclose(io.read_images((str(written),))[0][0], arrays["case"][0, 1], rtol=1e-7)


def test_the_reference_positional_as_in_report_or_as_the_earlier_ref_option(tmp_path, capsys):
    """`maps GT_FOLDER PRED_FOLDER...` writes what `maps PRED_FOLDER... -ref GT_FOLDER` wrote, file for file;
    the reference alone, without a prediction folder, is a one-line error."""
    gt, folders, _, dataset_json = _two_cases(tmp_path, members=2)
    dataset = str(dataset_json)
    positional, option = tmp_path / "positional", tmp_path / "option"
    assert _maps(str(gt), *map(str, folders), "-djfile", dataset, "--output", str(positional)) == 0
    assert _maps(*map(str, folders), "-ref", str(gt), "-djfile", dataset, "-o", str(option)) == 0
    written = sorted(p.relative_to(positional) for p in positional.rglob("*.nii.gz"))
    assert written and written == sorted(p.relative_to(option) for p in option.rglob("*.nii.gz"))
    for path in written:
        np.testing.assert_array_equal(_read(positional / path)[1], _read(option / path)[1])
    capsys.readouterr()
    assert _maps(str(gt), "-djfile", dataset, "-o", str(tmp_path / "none")) == 2
    _one_line(capsys, "PRED_FOLDER", "at least one prediction folder")
    assert not (tmp_path / "none").exists()
