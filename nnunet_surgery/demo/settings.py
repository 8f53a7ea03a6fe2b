"""What determines a demo run: its dataset, trainers and schedule (`DemoSettings`, stored in
OUT_DIR/demo.json), and the short-schedule trainer module the run trains."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from nnunet_surgery.cases import InputError
from nnunet_surgery.demo.datasets import DATASETS, SHAPE_2D, DatasetVariant

__all__ = [
    "CONFORMAL_ALPHA",
    "FOLD",
    "GALLERY_CASES",
    "RECALIBRATION",
    "STOCK_TRAINER",
    "DemoSettings",
    "demo_trainer_name",
    "demo_trainers",
    "recalibrated_name",
    "trainer_module",
]

#: The cross-validation fold every trainer trains (its validation cases are what recalibration fits on).
FOLD = "0"

#: nnU-Net's stock trainer (CE + Dice), the demo's reference besides the registered trainers.
STOCK_TRAINER = "nnUNetTrainer"
#: Test cases the report's gallery shows (those where the models differ most, and each model's worst).
GALLERY_CASES = 2
#: Post-hoc recalibration the demo fits for every trainer on its validation fold.
RECALIBRATION = "temperature"
#: alpha of the demo's conformal predictors: masks missing at most 10% of the lesion, on average over patients.
CONFORMAL_ALPHA = 0.1


def recalibrated_name(trainer: str) -> str:
    """Model name (and predictions folder) of `trainer` after post-hoc recalibration."""
    return f"{trainer}+{RECALIBRATION}"


def demo_trainers() -> tuple[str, ...]:
    """Trainers the demo can train: nnU-Net's stock `nnUNetTrainer`, then every registered trainer.

    Imports the trainers (torch, nnU-Net), so the CLI asks only once it runs, not to build `--help`.
    """
    from nnunet_surgery.trainers import REGISTRY

    return (STOCK_TRAINER, *REGISTRY.names())


@dataclass(frozen=True)
class DemoSettings:
    """Everything that determines a demo run's results (stored in OUT_DIR/demo.json)."""

    trainers: tuple[str, ...] = ("SurgeryTrainer", "nnUNetTrainer")
    epochs: int = 25
    iterations_per_epoch: int = 25
    val_iterations_per_epoch: int = 3
    num_train: int = 30
    num_test: int = 10
    shape: tuple[int, ...] = SHAPE_2D
    seed: int = 0
    device: str = "cpu"
    dataset: str = "lesions"

    @property
    def three_d(self) -> bool:
        """Whether the dataset is 3D (then trained as nnU-Net's 3d_fullres configuration)."""
        return len(self.shape) == 3

    @property
    def configuration(self) -> str:
        """nnU-Net configuration the demo plans, trains and predicts."""
        return "3d_fullres" if self.three_d else "2d"

    @property
    def variant(self) -> DatasetVariant:
        return DATASETS[self.dataset]

    @property
    def dataset_id(self) -> int:
        return self.variant.dataset_id + (3 if self.three_d else 0)

    @property
    def dataset_name(self) -> str:
        return f"{self.variant.name}{'3D' if self.three_d else ''}"

    @property
    def dataset_folder_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.dataset_name}"

    def validate(self) -> None:
        valid = demo_trainers()
        unknown = [t for t in self.trainers if t not in valid]
        if unknown or not self.trainers or len(set(self.trainers)) != len(self.trainers):
            raise InputError(
                f"--trainers must be distinct names from {', '.join(valid)}, but got {self.trainers}"
            )
        for name in ("epochs", "iterations_per_epoch", "val_iterations_per_epoch", "num_test"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, but got {getattr(self, name)}")
        if self.num_train < 5:
            raise InputError(f"num_train must be >= 5 (nnU-Net's 5-fold split), but got {self.num_train}")
        if self.dataset not in DATASETS:
            raise InputError(f"--dataset must be one of {', '.join(DATASETS)}, but got {self.dataset!r}")
        if len(self.shape) not in (2, 3) or min(self.shape) < (16 if len(self.shape) == 3 else 32):
            raise InputError(
                "shape must be two sizes >= 32 (2D, nnU-Net's 2d configuration) or three >= 16 (3D, "
                f"3d_fullres), but got {self.shape}"
            )

    def as_json(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def changed_from(self, stored: dict) -> list[str]:
        """Names of the settings that differ between these and `stored` (a demo.json), sorted."""
        current = self.as_json()
        return sorted(k for k in stored.keys() | current.keys() if stored.get(k) != current.get(k))


def demo_trainer_name(trainer: str) -> str:
    """Name of the short-schedule subclass the demo trains for `trainer` (results folders use it)."""
    return f"Demo_{trainer}"


def trainer_module(settings: DemoSettings) -> str:
    """The Python module of short-schedule subclasses the run trains (OUT_DIR/trainers/demo_trainers.py)."""
    lines = [
        '"""Short-schedule trainers of `nnunet-surgery demo` (generated; hyperparameters are class attributes)."""',
        "",
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer",
        "",
        "from nnunet_surgery import trainers",
        "from nnunet_surgery.trainers import ScheduleMixin",
        "",
    ]
    for trainer in settings.trainers:
        base = "ScheduleMixin, nnUNetTrainer" if trainer == "nnUNetTrainer" else f"trainers.{trainer}"
        lines += [
            "",
            f"class {demo_trainer_name(trainer)}({base}):",
            f"    num_epochs = {settings.epochs}",
            f"    num_iterations_per_epoch = {settings.iterations_per_epoch}",
            f"    num_val_iterations_per_epoch = {settings.val_iterations_per_epoch}",
            "",
        ]
    return "\n".join(lines)
