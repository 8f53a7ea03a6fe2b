"""The folder of one demo run: where every step's result lies (the layout in `nnunet_surgery.demo`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.demo.settings import FOLD, DemoSettings, demo_trainer_name

__all__ = ["RunFolders"]


@dataclass(frozen=True)
class RunFolders:
    """The paths of a demo run in `out` (absolute), for its settings."""

    out: Path
    settings: DemoSettings

    @property
    def settings_file(self) -> Path:
        """demo.json: the settings of this run (a rerun must match them: it resumes)."""
        return self.out / "demo.json"

    @property
    def raw(self) -> Path:
        return self.out / "nnUNet_raw"

    @property
    def dataset(self) -> Path:
        """The raw dataset: imagesTr, labelsTr, imagesTs, labelsTs, truthTs, dataset.json."""
        return self.raw / self.settings.dataset_folder_name

    @property
    def dataset_json(self) -> Path:
        return self.dataset / "dataset.json"

    @property
    def preprocessed(self) -> Path:
        return self.out / "nnUNet_preprocessed"

    @property
    def plans(self) -> Path:
        """nnU-Net's preprocessed data of the run's configuration."""
        return self.preprocessed / self.dataset.name / f"nnUNetPlans_{self.settings.configuration}"

    @property
    def results(self) -> Path:
        return self.out / "nnUNet_results"

    @property
    def trainers(self) -> Path:
        """The short-schedule trainer module's folder (first on `nnUNet_extTrainer`)."""
        return self.out / "trainers"

    @property
    def trainer_module(self) -> Path:
        return self.trainers / "demo_trainers.py"

    @property
    def logs(self) -> Path:
        """The full output of every command, one `STEP.log` each."""
        return self.out / "logs"

    def results_folder(self, trainer: str) -> Path:
        """nnU-Net's training output of `trainer` (fold FOLD): checkpoints and `validation/`."""
        configuration = self.settings.configuration
        name = f"{demo_trainer_name(trainer)}__nnUNetPlans__{configuration}"
        return self.results / self.dataset.name / name / f"fold_{FOLD}"

    def validation(self, trainer: str) -> Path:
        """The validation fold's probabilities (`nnUNetv2_train --npz`): what recalibration fits on."""
        return self.results_folder(trainer) / "validation"

    def predictions(self, model: str) -> Path:
        """`CASE.npz` of the test cases: `nnUNetv2_predict` of a trainer, or its recalibrated copy."""
        return self.out / "predictions" / model

    def calibrator(self, trainer: str) -> Path:
        return self.out / "calibrators" / f"{trainer}.json"

    def maps(self, trainer: str) -> Path:
        """`maps/TRAINER/CASE/`: probability and entropy NIfTI files of the test cases."""
        return self.out / "maps" / trainer

    @property
    def report(self) -> Path:
        return self.out / "report"
