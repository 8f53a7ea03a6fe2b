"""nnUNetv2_plan_and_preprocess -> nnUNetv2_train (a short SurgeryTrainer subclass) -> nnUNetv2_predict.

On CPU, on the tiny label and region datasets of conftest.py; checks the saved probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

TINY_TRAINER = '''
from nnunet_surgery.trainers import SurgeryTrainer


class TinySurgeryTrainer(SurgeryTrainer):
    """SurgeryTrainer on a schedule short enough for a test (class attributes, as users write them)."""

    num_epochs = 2
    num_iterations_per_epoch = 3
    num_val_iterations_per_epoch = 1
'''


@pytest.fixture
def ext_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my_trainers"
    folder.mkdir()
    (folder / "tiny_trainers.py").write_text(TINY_TRAINER)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["label_dataset", "region_dataset"])
def test_train_then_predict_saves_valid_probabilities(
    kind: str, ext_dir: Path, tmp_path: Path, request: pytest.FixtureRequest, run_nnunet
) -> None:
    dataset = request.getfixturevalue(kind)
    env = dataset.env(ext_dirs=(ext_dir,))
    train_env = {**env, "nnUNet_n_proc_DA": "0"}
    did = str(dataset.dataset_id)

    run_nnunet(
        ["nnUNetv2_train", did, "2d", "0", "-tr", "TinySurgeryTrainer", "-device", "cpu", "--npz"], train_env
    )
    output = dataset.root / "results" / dataset.raw.name / "TinySurgeryTrainer__nnUNetPlans__2d" / "fold_0"
    assert (output / "checkpoint_final.pth").is_file()
    debug = json.loads((output / "debug.json").read_text())
    assert debug["surgery_exponent"] == "20" and "surgery=True" in debug["loss"]
    assert any("TinySurgeryTrainer trains with" in p.read_text() for p in output.glob("training_log_*.txt"))
    assert list((output / "validation").glob("*.npz"))  # --npz

    if (
        kind == "region_dataset"
    ):  # --c: resume from the latest checkpoint (nnU-Net reloads the trainer by name)
        (output / "checkpoint_final.pth").rename(output / "checkpoint_latest.pth")
        resumed = run_nnunet(
            ["nnUNetv2_train", did, "2d", "0", "-tr", "TinySurgeryTrainer", "-device", "cpu", "--c"],
            train_env,
        )
        assert (output / "checkpoint_final.pth").is_file() and "TinySurgeryTrainer" in resumed.stdout
    if kind == "label_dataset":  # validation only, from the checkpoint: nnU-Net looks the trainer up again
        for npz in (output / "validation").glob("*.npz"):
            npz.unlink()
        run_nnunet(
            [
                "nnUNetv2_train",
                did,
                "2d",
                "0",
                "-tr",
                "TinySurgeryTrainer",
                "-device",
                "cpu",
                "--val",
                "--npz",
            ],
            train_env,
        )
        assert list((output / "validation").glob("*.npz"))

    pred = tmp_path / "pred"
    run_nnunet(
        [
            "nnUNetv2_predict",
            "-i",
            str(dataset.raw / "imagesTs"),
            "-o",
            str(pred),
            "-d",
            did,
            "-c",
            "2d",
            "-f",
            "0",
            "-tr",
            "TinySurgeryTrainer",
            "-device",
            "cpu",
            "--save_probabilities",
            "-npp",
            "1",
            "-nps",
            "1",
        ],
        env,
    )
    dataset_json = dataset.dataset_json()
    regions = kind == "region_dataset"
    channels = len(dataset_json["labels"]) - 1 if regions else len(dataset_json["labels"])
    cases = sorted(p.name[: -len(".nii.gz")] for p in (dataset.raw / "labelsTs").glob("*.nii.gz"))
    assert cases and sorted(p.stem for p in pred.glob("*.npz")) == cases
    for case in cases:
        seg, _ = SimpleITKIO().read_seg(str(dataset.raw / "labelsTs" / f"{case}.nii.gz"))
        with np.load(pred / f"{case}.npz", allow_pickle=False) as npz:
            probs = npz["probabilities"]
        assert probs.shape == (channels, *seg.shape[1:])
        assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1
        predicted, _ = SimpleITKIO().read_seg(str(pred / f"{case}.nii.gz"))
        if regions:  # nnU-Net's rule: each region above 0.5 paints its label, in regions_class_order
            expected = np.zeros(probs.shape[1:], dtype=predicted.dtype)
            for channel, label in enumerate(dataset_json["regions_class_order"]):
                expected[probs[channel] > 0.5] = label
            np.testing.assert_array_equal(predicted[0], expected)
        else:
            np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
            np.testing.assert_array_equal(predicted[0], probs.argmax(0))
