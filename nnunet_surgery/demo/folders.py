"""The folder of one demo run: where every step's result lies (the layout in `nnunet_surgery.demo`)."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.demo.settings import FOLD, DemoSettings, demo_trainer_name, recalibrated_name

__all__ = ["RunFolders"]


class RunFolders:
    """The paths of a demo run in `out` (absolute), for its settings.

    Attributes:
        settings_file: demo.json, the settings of this run (a rerun must match them: it resumes).
        raw, preprocessed, results: nnU-Net's folders (`nnUNet_raw`, ...).
        dataset: the raw dataset (imagesTr, labelsTr, imagesTs, labelsTs, truthTs, `dataset_json`).
        plans: nnU-Net's preprocessed data of the run's configuration.
        trainers: the folder of the short-schedule `trainer_module` (first on `nnUNet_extTrainer`).
        logs: the full output of every command, one `STEP.log` each.
        report: the report of the test predictions.
    """

    def __init__(self, out: Path, settings: DemoSettings) -> None:
        self.out, self.settings = out, settings
        self.settings_file = out / "demo.json"
        self.raw = out / "nnUNet_raw"
        self.preprocessed = out / "nnUNet_preprocessed"
        self.results = out / "nnUNet_results"
        self.dataset = self.raw / settings.dataset_folder_name
        self.dataset_json = self.dataset / "dataset.json"
        self.plans = self.preprocessed / self.dataset.name / f"nnUNetPlans_{settings.configuration}"
        self.trainers = out / "trainers"
        self.trainer_module = self.trainers / "demo_trainers.py"
        self.logs = out / "logs"
        self.report = out / "report"

    def results_folder(self, trainer: str) -> Path:
        """nnU-Net's training output of `trainer` (fold FOLD): checkpoints and `validation/`."""
        name = f"{demo_trainer_name(trainer)}__nnUNetPlans__{self.settings.configuration}"
        return self.results / self.dataset.name / name / f"fold_{FOLD}"

    def checkpoint(self, trainer: str, which: str = "final") -> Path:
        """`checkpoint_final.pth` (a finished training) or `checkpoint_latest.pth` (one to continue)."""
        return self.results_folder(trainer) / f"checkpoint_{which}.pth"

    def validation(self, trainer: str) -> Path:
        """The validation fold's probabilities (`nnUNetv2_train --npz`): what recalibration fits on."""
        return self.results_folder(trainer) / "validation"

    def predictions(self, model: str) -> Path:
        """`CASE.npz` of the test cases: `nnUNetv2_predict` of a trainer, or its recalibrated copy."""
        return self.out / "predictions" / model

    def calibrator(self, trainer: str) -> Path:
        return self.out / "calibrators" / f"{trainer}.json"

    def recalibrated_validation(self, trainer: str) -> Path:
        """The validation fold's probabilities recalibrated (`TRAINER+temperature`'s calibration cases)."""
        return self.out / "validation" / recalibrated_name(trainer)

    def conformal(self, model: str) -> Path:
        """`conformal/MODEL.json`: the model's conformal predictor, fitted on its validation fold."""
        return self.out / "conformal" / f"{model}.json"

    def maps(self, trainer: str) -> Path:
        """`maps/TRAINER/CASE/`: probability and entropy NIfTI files of the test cases."""
        return self.out / "maps" / trainer
