"""`nnunet-surgery demo`: the whole job on a tiny schedule, then resume, refusal and bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnunet_surgery.demo import STOCK_TRAINER, DemoError, DemoSettings, recalibrated_name, run_demo

TINY = [
    "--epochs",
    "1",
    "--iterations",
    "2",
    "--val-iterations",
    "1",
    "--num-train",
    "6",
    "--num-test",
    "2",
    "--shape",
    "64",
    "64",
    "-device",
    "cpu",
]


def demo(out: Path, *extra: str, tiny: list[str] = TINY) -> subprocess.CompletedProcess:
    env = {**os.environ, "nnUNet_def_n_proc": "2"}
    return subprocess.run(
        [sys.executable, "-m", "nnunet_surgery.cli", "demo", "-o", str(out), *tiny, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )


@pytest.mark.slow
def test_demo_runs_resumes_and_refuses_other_settings(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = demo(out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Epoch 0" in first.stdout  # nnU-Net's progress reaches the user

    report = json.loads((out / "report" / "calibration.json").read_text())
    trainers = DemoSettings().trainers
    assert set(report["models"]) == {*trainers, *map(recalibrated_name, trainers)}
    # each model's conformal masks, with the predictor fitted on its own validation fold
    assert set(report["conformal"]["models"]) == set(report["models"])
    for model, scored in report["conformal"]["models"].items():
        assert scored["predictor"] == str(out / "conformal" / f"{model}.json") and scored["alpha"] == 0.1
    for trainer in trainers:  # fitted on the validation fold; the test maps keep their argmax
        calibrator = json.loads((out / "calibrators" / f"{trainer}.json").read_text())
        assert calibrator["method"] == "temperature" and calibrator["temperature"] > 0
        assert calibrator["fit"]["nll_after"] <= calibrator["fit"]["nll_before"]
        # temperature keeps the order of the logits, so the class chosen after recalibration is the top
        # class before it; only where two classes were tied to float32 rounding (margin below ~1e-7 T,
        # seen once: 0.49999237 / 0.5000076 at T = 1000 became 0.5 / 0.5) may the maps pick the other
        tie = 1e-6 * max(1.0, calibrator["temperature"])
        for saved in (out / "predictions" / trainer).glob("*.npz"):
            recalibrated = out / "predictions" / recalibrated_name(trainer) / saved.name
            with np.load(saved) as before, np.load(recalibrated) as after:
                p_before = before["probabilities"].astype(np.float64)
                chosen = np.take_along_axis(p_before, after["probabilities"].argmax(0)[None], 0)[0]
                assert (chosen >= p_before.max(0) - tie).all()
                top_two = np.sort(p_before, 0)[-2:]
                clear = top_two[1] - top_two[0] > tie
                assert clear.mean() > 0.99  # and there, the very same class
    for model in report["models"].values():
        lesion = model["labels"]["lesion"]
        assert set(lesion["pooled"]) >= {"nll", "ece", "mce", "ace", "brier"}
        assert 0 <= lesion["truth"]["pooled"]["mae"] <= 1
    for trainer in trainers:  # one folder of NIfTI maps per test case
        cases = sorted(p.name[: -len(".npz")] for p in (out / "predictions" / trainer).glob("*.npz"))
        assert sorted(p.name for p in (out / "maps" / trainer).iterdir()) == cases
        assert (out / "maps" / trainer / cases[0] / "lesion_probability.nii.gz").is_file()
    assert 1 <= len(list((out / "report" / "gallery").glob("*.png"))) <= 2 + len(report["models"])
    assert "| SurgeryTrainer |" in first.stdout and (out / "report" / "reliability_lesion.png").is_file()
    checkpoint = (
        out
        / "nnUNet_results"
        / "Dataset991_SyntheticLesions"
        / "Demo_SurgeryTrainer__nnUNetPlans__2d"
        / "fold_0"
        / "checkpoint_final.pth"
    )
    mtime = checkpoint.stat().st_mtime

    again = demo(out)  # same settings: resumes, keeps every finished step
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout and "finished before, kept" in again.stdout
    assert checkpoint.stat().st_mtime == mtime

    other = demo(out, "--seed", "1")  # other settings: refused, nothing touched
    assert other.returncode == 2
    assert other.stderr.strip().count("\n") == 0 and "seed" in other.stderr and str(out) in other.stderr
    assert checkpoint.stat().st_mtime == mtime


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "shape", "labels", "configuration"),
    [
        ("organs", ["64", "64"], {"organ": 1, "lesion": 2}, "2d"),
        ("regions", ["16", "32", "32", "--3d"], {"organ": [1, 2], "lesion": 2}, "3d_fullres"),
    ],
    ids=["organs-2d", "regions-3d"],
)
def test_demo_runs_the_organ_and_region_datasets_in_2d_and_3d(
    tmp_path: Path, dataset: str, shape: list[str], labels: dict, configuration: str
) -> None:
    import SimpleITK as sitk

    out = tmp_path / "demo"
    tiny = [*TINY[: TINY.index("--shape") + 1], *shape, "-device", "cpu"]
    run = demo(out, "--dataset", dataset, "--trainers", "SurgeryTrainer", tiny=tiny)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    raw = next((out / "nnUNet_raw").iterdir())
    meta = json.loads((raw / "dataset.json").read_text())
    assert {k: v for k, v in meta["labels"].items() if k != "background"} == labels
    assert (out / "nnUNet_results" / raw.name / f"Demo_SurgeryTrainer__nnUNetPlans__{configuration}").is_dir()
    # the report read the truth beside nnU-Net's predictions: their layouts agree
    report = json.loads((out / "report" / "calibration.json").read_text())
    assert report["region_based"] is (dataset == "regions")
    assert report["label_names"] == ["organ", "lesion"]
    for model in report["models"].values():
        for name in ("organ", "lesion"):
            assert 0 <= model["labels"][name]["truth"]["pooled"]["mae"] <= 1
    # the maps keep the reference's geometry, anisotropic spacing included
    case = sorted((out / "maps" / "SurgeryTrainer").iterdir())[0]
    probability = sitk.ReadImage(str(case / "lesion_probability.nii.gz"))
    reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case.name}.nii.gz"))
    assert probability.GetSize() == reference.GetSize()
    assert probability.GetSpacing() == reference.GetSpacing()
    if configuration == "3d_fullres":
        assert reference.GetSpacing() == (1.0, 1.0, 2.5)


def test_demo_refuses_a_folder_that_holds_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DemoError, match="not empty"):
        run_demo(tmp_path, DemoSettings(), log=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DemoSettings(trainers=("NoSuchTrainer",)), "--trainers"),
        (DemoSettings(trainers=(STOCK_TRAINER, STOCK_TRAINER)), "--trainers"),
        (DemoSettings(epochs=0), "epochs"),
        (DemoSettings(num_train=3), "num_train"),
        (DemoSettings(shape=(16, 16)), "shape"),
        (DemoSettings(shape=(8, 32, 32)), "shape"),
        (DemoSettings(dataset="brains"), "--dataset"),
    ],
)
def test_demo_rejects_bad_settings_before_writing(
    tmp_path: Path, settings: DemoSettings, message: str
) -> None:
    out = tmp_path / "demo"
    with pytest.raises(DemoError, match=message):
        run_demo(out, settings, log=lambda line: None)
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "message"), [("{not json", "cannot read this demo run's settings"), ("[1, 2]", "got list")]
)
def test_demo_refuses_a_corrupt_or_foreign_demo_json_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    from nnunet_surgery.cli import main

    (tmp_path / "demo.json").write_text(content)
    assert main(["demo", "-o", str(tmp_path), "-device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and str(tmp_path / "demo.json") in error, error
    assert [p.name for p in tmp_path.iterdir()] == ["demo.json"]


def test_demo_refuses_an_output_folder_under_a_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from nnunet_surgery.cli import main

    (tmp_path / "file").write_text("not a folder")
    assert main(["demo", "-o", str(tmp_path / "file" / "demo"), "-device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "cannot create or write the output folder" in error, error


@pytest.mark.parametrize("blocker", ["trainers", "trainers/demo_trainers.py"])
def test_demo_trainer_module_that_cannot_be_written_is_a_one_line_error(tmp_path: Path, blocker: str) -> None:
    """A file where the trainer folder goes, or a folder where its module goes: a ReportError (the demo
    command's one-line error) naming the path, and no partial file left behind."""
    from nnunet_surgery.demo import DemoRun
    from nnunet_surgery.errors import ReportError

    run = DemoRun(tmp_path, DemoSettings(trainers=("SurgeryTrainer",), device="cpu"))
    if blocker == "trainers":
        (tmp_path / blocker).write_text("not a folder")
    else:
        (tmp_path / blocker).mkdir(parents=True)
    with pytest.raises(ReportError) as caught:
        run.write_trainers()
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / blocker) in message, message
    assert not list(tmp_path.rglob(".*.partial"))


@pytest.mark.parametrize(
    "arguments", [["--3d", "--shape", "64", "64"], ["--shape", "16", "32", "32"], ["--shape", "64"]]
)
def test_demo_refuses_a_shape_of_the_wrong_dimension_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, arguments: list[str]
) -> None:
    from nnunet_surgery.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "-device", "cpu", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--shape" in error, error
    assert not out.exists()
