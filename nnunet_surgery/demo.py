"""The main job: synthetic dataset -> plan/preprocess -> train -> predict -> calibration report.

Every step is one of nnU-Net's own commands (or ours) run in a subprocess with nnU-Net's environment
variables pointing into the output folder, so the demo shows exactly what a user runs by hand:

    OUT_DIR/
      demo.json                    the settings of this run (a rerun must match them: it resumes)
      nnUNet_raw/Dataset99X_Synthetic.../       imagesTr, labelsTr, imagesTs, labelsTs, truthTs
      nnUNet_preprocessed/, nnUNet_results/      nnU-Net's folders
      trainers/demo_trainers.py    short-schedule subclasses (class attributes), on nnUNet_extTrainer
      predictions/TRAINER/         nnUNetv2_predict --save_probabilities output
      calibrators/TRAINER.json     nnunet-surgery recalibrate fit on the trainer's validation fold
      predictions/TRAINER+temperature/   nnunet-surgery recalibrate apply output
      report/                      nnunet-surgery report output (tables, reliability diagrams, gallery/)
      maps/TRAINER/CASE/           nnunet-surgery maps output: probability and entropy NIfTI files
      logs/                        the full output of every command
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_surgery.cases.errors import InputError
from nnunet_surgery.cases.staging import write_text_atomic

__all__ = [
    "DATASETS",
    "RECALIBRATION",
    "STOCK_TRAINER",
    "DatasetVariant",
    "DemoError",
    "DemoSettings",
    "demo_trainers",
    "recalibrated_name",
    "run_demo",
]

FOLD = "0"

#: nnU-Net's stock trainer (CE + Dice), the demo's reference besides the registered trainers.
STOCK_TRAINER = "nnUNetTrainer"
#: Test cases the report's gallery shows (those where the models differ most, and each model's worst).
GALLERY_CASES = 2
#: Post-hoc recalibration the demo fits for every trainer on its validation fold.
RECALIBRATION = "temperature"


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
class DatasetVariant:
    """One built-in synthetic dataset (`nnunet_surgery.synthetic.generate_dataset` arguments).

    Attributes:
        dataset_id: nnU-Net dataset id of its 2D version; the 3D version adds 3.
        name: dataset name of its 2D version; the 3D version appends "3D".
        num_classes: foreground labels K.
        regions: region-based (one sigmoid channel per nested region, as BraTS).
        labelled_organ: the organ is label 1, the lesions inside it label 2.
    """

    dataset_id: int
    name: str
    num_classes: int
    regions: bool
    labelled_organ: bool


#: The demo's datasets: binary lesions (the default), an organ with lesions (3-class softmax), and the same
#: as two nested regions (organ = {1, 2}, lesion = {2}, `regions_class_order`).
DATASETS: dict[str, DatasetVariant] = {
    "lesions": DatasetVariant(991, "SyntheticLesions", 1, regions=False, labelled_organ=False),
    "organs": DatasetVariant(992, "SyntheticOrgans", 2, regions=False, labelled_organ=True),
    "regions": DatasetVariant(993, "SyntheticRegions", 2, regions=True, labelled_organ=True),
}
#: Default image size of the 2D datasets and of the 3D ones (z, y, x), and the 3D voxel spacing: thick
#: slices, as most clinical 3D scans; nnU-Net plans these as its 3d_fullres configuration.
SHAPE_2D = (96, 96)
SHAPE_3D = (16, 32, 32)
SPACING_3D = (2.5, 1.0, 1.0)


# nnU-Net's per-epoch lines, after its timestamp ("2026-01-01 12:00:00.000000: Epoch 3")
_PROGRESS = re.compile(r"^(\d{4}-\d\d-\d\d [\d:.]+: )?(Epoch \d+|train_loss|val_loss|Pseudo dice|Epoch time)")


#: The demo's earlier name of `InputError` (a demo run that cannot go on, in one line naming what was wrong).
DemoError = InputError


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


def _trainer_module(settings: DemoSettings) -> str:
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


class DemoRun:
    """One demo run in `out_dir`; every step is skipped when its result is already there (resume)."""

    def __init__(self, out_dir: Path, settings: DemoSettings, log=print) -> None:
        self.out = out_dir.resolve()
        self.settings = settings
        self.log = log
        self.raw = self.out / "nnUNet_raw"
        self.dataset = self.raw / settings.dataset_folder_name
        self.configuration = settings.configuration

    # set-up -------------------------------------------------------------------------------------------------
    def claim_output_dir(self) -> bool:
        """Create OUT_DIR, or check that it holds a run with the same settings; True if resuming."""
        state = self.out / "demo.json"
        settings = self.settings.as_json()
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"-o {self.out}: exists and is not a folder")
        if state.is_file():
            try:
                previous = json.loads(state.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise InputError(
                    f"{state}: cannot read this demo run's settings ({error}); choose a new folder"
                ) from None
            if not isinstance(previous, dict):
                raise InputError(
                    f"{state}: expected the JSON object of a demo run's settings, but got {type(previous).__name__}; "
                    "choose a new folder"
                )
            changed = self.settings.changed_from(previous)
            if changed:
                raise InputError(
                    f"-o {self.out}: holds a demo run with other settings ({', '.join(changed)}); "
                    f"use another output folder or the same settings to resume"
                )
            return True
        if self.out.is_dir() and any(self.out.iterdir()):
            raise InputError(f"-o {self.out}: folder is not empty and holds no demo run; choose a new folder")
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(state, json.dumps(settings, indent=2, sort_keys=True), "the demo's settings")
        except OSError as error:
            raise InputError(
                f"-o {self.out}: cannot create or write the output folder ({error.strerror or error})"
            ) from None
        return False

    def env(self) -> dict[str, str]:
        from nnunet_surgery.trainer_folder import trainers_dir

        env = dict(os.environ)
        env.update(
            nnUNet_raw=str(self.raw),
            nnUNet_preprocessed=str(self.out / "nnUNet_preprocessed"),
            nnUNet_results=str(self.out / "nnUNet_results"),
            nnUNet_extTrainer=os.pathsep.join((str(self.out / "trainers"), str(trainers_dir()))),
            nnUNet_def_n_proc=env.get("nnUNet_def_n_proc", str(min(os.cpu_count() or 1, 4))),
            # nnU-Net's default of 12 augmentation workers swamps a small machine; 0 (in-process) is slower still
            nnUNet_n_proc_DA=env.get("nnUNet_n_proc_DA", str(min(os.cpu_count() or 1, 12))),
            PYTHONUNBUFFERED="1",
        )
        return env

    def command(self, step: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        """Run a console script of this environment, its output to logs/STEP.log, progress lines to the log."""
        executable = Path(sys.executable).parent / args[0]
        log_path = self.out / "logs" / f"{step}.log"
        log_path.parent.mkdir(exist_ok=True)
        started = time.monotonic()
        with open(log_path, "w") as log_file:
            log_file.write(f"$ {' '.join(args)}\n")
            process = subprocess.Popen(
                [str(executable), *args[1:]],
                env=env or self.env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            assert process.stdout is not None
            for line in process.stdout:
                log_file.write(line)
                if _PROGRESS.match(line.strip()):
                    self.log(f"    {line.strip()}")
            code = process.wait()
        if code != 0:
            tail = log_path.read_text().strip().splitlines()[-1:] or [""]
            raise InputError(f"{args[0]} failed (exit {code}, see {log_path}): {tail[0][:300]}")
        self.log(f"    done in {time.monotonic() - started:.0f} s (log: {log_path.relative_to(self.out)})")

    # steps --------------------------------------------------------------------------------------------------
    def make_dataset(self) -> None:
        from nnunet_surgery.synthetic import generate_dataset

        if (self.dataset / "dataset.json").is_file():
            self.log(f"[dataset] {self.dataset.relative_to(self.out)} exists, kept")
            return
        s = self.settings
        variant = s.variant
        self.log(
            f"[dataset] generating {s.dataset}: {s.num_train} training and {s.num_test} test cases of "
            f"{s.shape} (seed {s.seed})"
        )
        generate_dataset(
            self.raw,
            s.dataset_id,
            s.dataset_name,
            num_train=s.num_train,
            num_test=s.num_test,
            shape=s.shape,
            seed=s.seed,
            num_classes=variant.num_classes,
            regions=variant.regions,
            labelled_organ=variant.labelled_organ,
            spacing=SPACING_3D if s.three_d else None,
        )

    def preprocess(self) -> None:
        marker = self.out / "nnUNet_preprocessed" / self.dataset.name / f"nnUNetPlans_{self.configuration}"
        if (self.out / "logs" / "preprocess.done").is_file() and marker.is_dir():
            self.log("[preprocess] done before, kept")
            return
        self.log("[preprocess] nnUNetv2_plan_and_preprocess")
        nproc = self.env()["nnUNet_def_n_proc"]
        self.command(
            "preprocess",
            [
                "nnUNetv2_plan_and_preprocess",
                "-d",
                str(self.settings.dataset_id),
                "-c",
                self.configuration,
                "-np",
                nproc,
            ],
        )
        (self.out / "logs" / "preprocess.done").touch()

    def write_trainers(self) -> None:
        folder = self.out / "trainers"
        try:
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise InputError(
                f"{folder}: cannot create the demo's trainer folder ({error.strerror or error})"
            ) from None
        write_text_atomic(folder / "demo_trainers.py", _trainer_module(self.settings), "the demo's trainers")

    def results_folder(self, trainer: str) -> Path:
        return (
            self.out
            / "nnUNet_results"
            / self.dataset.name
            / f"{demo_trainer_name(trainer)}__nnUNetPlans__{self.configuration}"
            / f"fold_{FOLD}"
        )

    def validation_complete(self, trainer: str) -> bool:
        """Whether nnU-Net's validation wrote the probabilities (`--npz`) of every validation case."""
        folder = self.results_folder(trainer) / "validation"
        return (folder / "summary.json").is_file() and any(folder.glob("*.npz"))

    def train(self, trainer: str, index: int) -> None:
        """`nnUNetv2_train ... --npz`: the validation fold's probabilities are what recalibration fits on."""
        name = demo_trainer_name(trainer)
        folder = self.results_folder(trainer)
        s = self.settings
        args = [
            "nnUNetv2_train",
            str(s.dataset_id),
            self.configuration,
            FOLD,
            "-tr",
            name,
            "-device",
            s.device,
            "--npz",
        ]
        if (folder / "checkpoint_final.pth").is_file():
            if self.validation_complete(trainer):
                self.log(f"[train {index}/{len(s.trainers)}] {name}: finished before, kept")
            else:
                self.log(f"[train {index}/{len(s.trainers)}] {name}: validation with --npz")
                self.command(f"validate_{name}", [*args, "--val"])
            return
        resume = (folder / "checkpoint_latest.pth").is_file()
        self.log(
            f"[train {index}/{len(s.trainers)}] {name}: {s.epochs} epochs x {s.iterations_per_epoch} iterations "
            f"on {s.device}{' (resuming)' if resume else ''}"
        )
        self.command(f"train_{name}", [*args, *(["--c"] if resume else [])])

    def predict(self, trainer: str) -> Path:
        name = demo_trainer_name(trainer)
        target = self.out / "predictions" / trainer
        if (target / ".complete").is_file():
            self.log(f"[predict] {name}: done before, kept")
            return target
        self.log(
            f"[predict] {name}: nnUNetv2_predict --save_probabilities on {self.settings.num_test} test cases"
        )
        partial = target.with_name(f".{trainer}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        self.command(
            f"predict_{name}",
            [
                "nnUNetv2_predict",
                "-i",
                str(self.dataset / "imagesTs"),
                "-o",
                str(partial),
                "-d",
                str(self.settings.dataset_id),
                "-c",
                self.configuration,
                "-f",
                FOLD,
                "-tr",
                name,
                "-device",
                self.settings.device,
                "--save_probabilities",
                "-npp",
                "1",
                "-nps",
                "1",
            ],
        )
        (partial / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        return target

    def calibrate(self, trainer: str) -> Path:
        """`nnunet-surgery recalibrate fit` on the trainer's validation fold (out-of-fold probabilities)."""
        target = self.out / "calibrators" / f"{trainer}.json"
        if target.is_file():
            self.log(f"[recalibrate] {trainer}: calibrator fitted before, kept")
            return target
        target.parent.mkdir(exist_ok=True)
        self.log(f"[recalibrate] {trainer}: fit {RECALIBRATION} scaling on validation fold {FOLD}")
        self.command(
            f"recalibrate_fit_{trainer}",
            [
                "nnunet-surgery",
                "recalibrate",
                "fit",
                str(self.dataset / "labelsTr"),
                str(self.results_folder(trainer) / "validation"),
                "-djfile",
                str(self.dataset / "dataset.json"),
                "-o",
                str(target),
                "--method",
                RECALIBRATION,
                "-np",
                "1",
                "--overwrite",
            ],
        )
        return target

    def recalibrate(self, trainer: str, calibrator: Path, predictions: Path) -> Path:
        """`nnunet-surgery recalibrate apply` to the trainer's test-set predictions."""
        target = predictions.with_name(recalibrated_name(trainer))
        if target.is_dir():
            self.log(f"[recalibrate] {recalibrated_name(trainer)}: done before, kept")
            return target
        self.log(f"[recalibrate] {recalibrated_name(trainer)}: apply to the test predictions")
        self.command(
            f"recalibrate_apply_{trainer}",
            [
                "nnunet-surgery",
                "recalibrate",
                "apply",
                str(calibrator),
                str(predictions),
                "-o",
                str(target),
                "-np",
                "1",
            ],
        )
        return target

    def maps(self, trainer: str, predictions: Path) -> Path:
        """`nnunet-surgery maps` of the trainer's test predictions: NIfTI files to open in a viewer."""
        target = self.out / "maps" / trainer
        self.log(f"[maps] {trainer}: probability and entropy maps of the test cases")
        self.command(
            f"maps_{trainer}",
            [
                "nnunet-surgery",
                "maps",
                str(predictions),
                "-ref",
                str(self.dataset / "labelsTs"),
                "-djfile",
                str(self.dataset / "dataset.json"),
                "-o",
                str(target),
                "-np",
                "1",
                "--overwrite",
            ],
        )
        return target

    def report(self, predictions: list[Path], names: list[str], *, gallery: bool = True) -> Path:
        """`nnunet-surgery report` of the test predictions against labelsTs and truthTs, into OUT_DIR/report;
        with `gallery`, also the image gallery of the cases where the models differ most."""
        report_dir = self.out / "report"
        self.log("[report] nnunet-surgery report (with the true probabilities of the test cases)")
        args = [
            "nnunet-surgery",
            "report",
            str(self.dataset / "labelsTs"),
            *map(str, predictions),
            "-djfile",
            str(self.dataset / "dataset.json"),
            "-o",
            str(report_dir),
            "--names",
            *names,
            "--truth",
            str(self.dataset / "truthTs"),
            "--overwrite",
        ]
        if gallery:
            args += ["--images", str(self.dataset / "imagesTs"), "--gallery", str(GALLERY_CASES)]
        self.command("report", args)
        return report_dir


def run_demo(out_dir: Path, settings: DemoSettings, log=print) -> Path:
    """Run (or resume) the whole demo in `out_dir`; returns the report folder.

    Raises:
        InputError: bad settings, an output folder holding something else, or a failed step.
    """
    settings.validate()
    run = DemoRun(out_dir, settings, log)
    resumed = run.claim_output_dir()
    log(f"nnunet-surgery demo in {run.out}{' (resuming)' if resumed else ''}")
    run.make_dataset()
    run.preprocess()
    run.write_trainers()
    for index, trainer in enumerate(settings.trainers, start=1):
        run.train(trainer, index)
    predictions = [run.predict(trainer) for trainer in settings.trainers]
    recalibrated = [
        run.recalibrate(trainer, run.calibrate(trainer), folder)
        for trainer, folder in zip(settings.trainers, predictions, strict=True)
    ]
    for trainer, folder in zip(settings.trainers, predictions, strict=True):
        run.maps(trainer, folder)
    names = [*settings.trainers, *map(recalibrated_name, settings.trainers)]
    return run.report([*predictions, *recalibrated], names)
