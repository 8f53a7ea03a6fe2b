"""The nnU-Net raw dataset on disk: layout, dataset.json, the truth's shape, determinism, safe writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nnunetv2.experiment_planning.verify_dataset_integrity import check_cases, verify_labels
from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.utilities.label_handling.label_handling import LabelManager

import nnunet_surgery.synthetic.dataset as dataset_module
from nnunet_surgery.synthetic import generate_dataset
from nnunet_surgery.synthetic.cases import generate_case
from nnunet_surgery.synthetic.probability import class_probabilities


def _arrays(folder: Path) -> dict[str, bytes]:
    """Every array of a dataset folder, as bytes, keyed by relative path."""
    io = SimpleITKIO()
    out = {}
    for path in sorted(folder.rglob("*.nii.gz")):
        out[str(path.relative_to(folder))] = io.read_images([str(path)])[0].tobytes()
    for path in sorted(folder.rglob("*.npz")):
        with np.load(path) as npz:
            out[str(path.relative_to(folder))] = npz["probabilities"].tobytes()
    return out


def test_2d_dataset_layout_json_and_truth_shape(tmp_path: Path) -> None:
    folder = generate_dataset(tmp_path, 991, num_train=3, num_test=2, shape=(128, 128), seed=5)
    assert folder == tmp_path / "Dataset991_SyntheticLesions"
    names = {p.name for p in folder.iterdir()}
    assert names == {"dataset.json", "imagesTr", "labelsTr", "imagesTs", "labelsTs", "truthTs"}
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        f"train_00{i}_0000.nii.gz" for i in range(3)
    ]
    assert sorted(p.name for p in (folder / "truthTs").iterdir()) == ["test_000.npz", "test_001.npz"]
    assert not list(tmp_path.glob(".*")), "no staging folder is left behind"

    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "lesion": 1}
    assert meta["channel_names"] == {"0": "synthetic MR"}
    assert meta["numTraining"] == 3 and meta["file_ending"] == ".nii.gz"
    assert "regions_class_order" not in meta
    assert meta["synthetic"]["seed"] == 5 and meta["synthetic"]["truth"]["channels"] == [
        "background",
        "lesion",
    ]

    io = SimpleITKIO()
    seg, seg_props = io.read_seg(str(folder / "labelsTs" / "test_000.nii.gz"))
    image, image_props = io.read_images([str(folder / "imagesTs" / "test_000_0000.nii.gz")])
    assert seg.shape == image.shape == (1, 1, 128, 128)
    assert seg_props["spacing"] == image_props["spacing"] == [999.0, 1.0, 1.0]
    with np.load(folder / "truthTs" / "test_000.npz") as npz:
        assert list(npz.keys()) == ["probabilities"]
        truth = npz["probabilities"]
    # (C, *spatial) with spatial the label file's shape as nnU-Net reads it, without the channel axis
    assert truth.dtype == np.float32 and truth.shape == (2, *seg.shape[1:])
    np.testing.assert_allclose(truth.sum(axis=0), 1.0, atol=1e-6)

    # the files hold exactly the in-memory case
    case = generate_case(5, "test", 0, (128, 128), 1)
    assert np.array_equal(image[0, 0], case.image)
    assert np.array_equal(seg[0, 0], case.labels)
    assert np.array_equal(truth[:, 0], class_probabilities(case.cumulative).astype(np.float32))


def test_region_dataset_has_nested_regions_and_one_sigmoid_channel_per_region(tmp_path: Path) -> None:
    folder = generate_dataset(
        tmp_path, 992, "Regions", num_train=2, num_test=1, shape=(64, 64), num_classes=2, regions=True
    )
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "lesion": [1, 2], "core": 2}
    assert meta["regions_class_order"] == [1, 2]
    manager = LabelManager(meta["labels"], meta["regions_class_order"])
    assert manager.has_regions and manager.all_regions == [(1, 2), 2]

    seg = SimpleITKIO().read_seg(str(folder / "labelsTs" / "test_000.nii.gz"))[0]
    with np.load(folder / "truthTs" / "test_000.npz") as npz:
        truth = npz["probabilities"]
    assert truth.shape == (len(manager.foreground_regions), *seg.shape[1:]) == (2, 1, 64, 64)
    assert np.all(truth[0] >= truth[1]), "core lies inside lesion"
    case = generate_case(0, "test", 0, (64, 64), 2)
    assert np.array_equal(truth[:, 0], case.cumulative.astype(np.float32))


def test_3d_dataset_truth_shape_matches_the_label_file(tmp_path: Path) -> None:
    folder = generate_dataset(tmp_path, 993, num_train=1, num_test=1, shape=(20, 24, 28), num_classes=2)
    seg, props = SimpleITKIO().read_seg(str(folder / "labelsTs" / "test_000.nii.gz"))
    assert seg.shape == (1, 20, 24, 28) and props["spacing"] == [1.0, 1.0, 1.0]
    with np.load(folder / "truthTs" / "test_000.npz") as npz:
        assert npz["probabilities"].shape == (3, 20, 24, 28)
    assert json.loads((folder / "dataset.json").read_text())["labels"] == {
        "background": 0,
        "lesion": 1,
        "core": 2,
    }


@pytest.mark.parametrize("regions", [False, True])
def test_nnunet_integrity_checks_pass(tmp_path: Path, regions: bool) -> None:
    # nnU-Net's own per-case checks (verify_dataset_integrity runs these in a process pool)
    folder = generate_dataset(
        tmp_path, num_train=3, num_test=0, shape=(48, 48), num_classes=2, regions=regions
    )
    meta = json.loads((folder / "dataset.json").read_text())
    image = str(folder / "imagesTr" / "train_000_0000.nii.gz")
    reader = determine_reader_writer_from_dataset_json(meta, image)
    assert reader is SimpleITKIO
    expected = LabelManager(meta["labels"], meta.get("regions_class_order")).all_labels
    assert expected == [0, 1, 2]
    for i in range(3):
        label = str(folder / "labelsTr" / f"train_{i:03d}.nii.gz")
        assert verify_labels(label, reader, expected)
        assert check_cases([str(folder / "imagesTr" / f"train_{i:03d}_0000.nii.gz")], label, 1, reader)


def test_generation_is_deterministic_given_the_seed(tmp_path: Path) -> None:
    options = {"num_train": 2, "num_test": 2, "shape": (48, 48), "num_classes": 2}
    first = _arrays(generate_dataset(tmp_path / "a", seed=3, **options))
    second = _arrays(generate_dataset(tmp_path / "b", seed=3, **options))
    assert first.keys() == second.keys() and len(first) == 2 * 2 + 2 * 2 + 2
    assert first == second
    other = _arrays(generate_dataset(tmp_path / "c", seed=4, **options))
    assert all(other[key] != first[key] for key in first)
    json_a = (tmp_path / "a" / "Dataset991_SyntheticLesions" / "dataset.json").read_text()
    assert json_a == (tmp_path / "b" / "Dataset991_SyntheticLesions" / "dataset.json").read_text()


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    folder = generate_dataset(tmp_path, num_train=1, num_test=1, shape=(32, 32), seed=0)
    with pytest.raises(
        FileExistsError, match="Dataset991_SyntheticLesions already exists; pass overwrite=True"
    ):
        generate_dataset(tmp_path, num_train=1, num_test=1, shape=(32, 32), seed=1)
    before = _arrays(folder)
    assert (
        generate_dataset(tmp_path, num_train=2, num_test=1, shape=(32, 32), seed=1, overwrite=True) == folder
    )
    after = _arrays(folder)
    assert after != before and "imagesTr/train_001_0000.nii.gz" in after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset991_SyntheticLesions"]


def test_refuses_an_id_used_by_another_dataset(tmp_path: Path) -> None:
    (tmp_path / "Dataset991_Other").mkdir()
    with pytest.raises(ValueError, match=r"dataset_id 991 is already used by .*Dataset991_Other"):
        generate_dataset(tmp_path, num_train=1, num_test=0, shape=(32, 32), overwrite=True)


def test_an_error_leaves_no_half_written_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = generate_dataset(tmp_path, num_train=1, num_test=1, shape=(32, 32))
    before = _arrays(folder)
    real_write_case = dataset_module._write_case
    calls = []

    def failing_write_case(*args: object, **kwargs: object) -> str:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real_write_case(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "_write_case", failing_write_case)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(tmp_path, num_train=4, num_test=1, shape=(32, 32), overwrite=True)
    calls.clear()
    with pytest.raises(RuntimeError, match="disk full"):
        generate_dataset(tmp_path, 994, num_train=4, num_test=1, shape=(32, 32))
    # the old dataset is untouched, the new one never appears, and no staging folder remains
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset991_SyntheticLesions"]
    assert _arrays(folder) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset_id": 0}, "dataset_id must be an integer in 1..999"),
        ({"name": "bad name"}, "name must be letters"),
        ({"num_train": 0}, "num_train must be >= 1"),
        ({"num_test": -1}, "num_test must be >= 0"),
        ({"shape": (64,)}, "shape must be 2 or 3 integers >= 16"),
        ({"shape": (8, 64)}, "shape must be 2 or 3 integers >= 16"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"regions": True}, "regions=True needs num_classes >= 2"),
    ],
)
def test_rejects_bad_arguments_with_one_line_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        generate_dataset(tmp_path, **kwargs)
    assert "\n" not in str(error.value)
    assert not any(tmp_path.iterdir())
