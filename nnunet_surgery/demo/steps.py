"""What a demo run does: a table of steps, each a name, a test of whether its result is there, and the
command that makes it (nnU-Net's own commands or ours, or the dataset generator), run by one loop with one
resume rule (`run_steps`).

    dataset                   nnUNet_raw/Dataset99X_.../dataset.json
    preprocess                nnUNetv2_plan_and_preprocess        (logs/preprocess.done)
    trainers                  trainers/demo_trainers.py
    train I/N TRAINER         nnUNetv2_train --npz                (checkpoint_final.pth)
    validate TRAINER          nnUNetv2_train --val --npz          (validation/summary.json and CASE.npz)
    predict TRAINER           nnUNetv2_predict --save_probabilities
    recalibrate fit TRAINER   nnunet-surgery recalibrate fit      (calibrators/TRAINER.json)
    recalibrate apply MODEL   nnunet-surgery recalibrate apply    (predictions/TRAINER+temperature/)
    recalibrate validation    nnunet-surgery recalibrate apply    (validation/TRAINER+temperature/)
    conformal fit MODEL       nnunet-surgery conformal fit        (conformal/MODEL.json, alpha 0.1, on the
                                                                   model's validation fold)
    maps TRAINER              nnunet-surgery maps                 (maps/TRAINER/CASE/ for every test case)
    report                    nnunet-surgery report --conformal   (report/calibration.json of these models,
                                                                   with their conformal masks)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from nnunet_surgery.cases import NPZ_ENDING, InputError
from nnunet_surgery.cases.staging import staged_folder
from nnunet_surgery.demo.datasets import SPACING_3D
from nnunet_surgery.demo.folders import RunFolders
from nnunet_surgery.demo.run import DemoRun
from nnunet_surgery.demo.settings import (
    CONFORMAL_ALPHA,
    FOLD,
    GALLERY_CASES,
    RECALIBRATION,
    DemoSettings,
    demo_trainer_name,
    recalibrated_name,
)

__all__ = ["Step", "demo_steps", "report_holds", "run_demo", "run_steps"]


@dataclass(frozen=True)
class Step:
    """One step of a run.

    Attributes:
        name: how the log names it (`[name] ...`).
        done: whether its result is there.
        command: makes its result (and may continue where an earlier run of it stopped).
        about: what it is about to do, for the log.
    """

    name: str
    done: Callable[[], bool]
    command: Callable[[], None]
    about: str = ""


def run_steps(
    steps: Sequence[Step],
    log: Callable[[str], None],
    on_finished: Callable[[Step, float], None] | None = None,
) -> None:
    """Run the steps in order with the one resume rule: a step whose result is there is kept; any other step
    runs, and must leave its result.

    Args:
        steps: the table.
        log: the user's log.
        on_finished: called with each step that ran and its wall time in seconds.

    Raises:
        InputError: a step failed, or finished without its result.
    """
    for step in steps:
        if step.done():
            log(f"[{step.name}] finished before, kept")
            continue
        log(f"[{step.name}] {step.about}".rstrip())
        started = time.monotonic()
        step.command()
        if not step.done():
            raise InputError(f"[{step.name}] finished without its result; see the run's logs/")
        if on_finished is not None:
            on_finished(step, time.monotonic() - started)


# the steps' results ---------------------------------------------------------------------------------------------
def _preprocessed(folders: RunFolders) -> bool:
    return (folders.logs / "preprocess.done").is_file() and folders.plans.is_dir()


def _validated(folders: RunFolders, trainer: str) -> bool:
    """Whether nnU-Net's validation wrote the probabilities (`--npz`) of every validation case."""
    folder = folders.validation(trainer)
    return (folder / "summary.json").is_file() and any(folder.glob(f"*{NPZ_ENDING}"))


def _maps_written(folders: RunFolders, trainer: str) -> bool:
    """Whether `maps/TRAINER/` holds a case folder for every test prediction of the trainer."""
    cases = [path.name[: -len(NPZ_ENDING)] for path in folders.predictions(trainer).glob(f"*{NPZ_ENDING}")]
    return bool(cases) and all((folders.maps(trainer) / case).is_dir() for case in cases)


def report_holds(report: Path, models: Sequence[str], *, conformal: bool = False) -> bool:
    """Whether the report folder holds a finished report of exactly `models`, in that order (and, with
    `conformal`, the conformal masks of each of them)."""
    from nnunet_surgery.report.outputs import read_report_json  # the report's reader, next to its writer

    try:
        content = read_report_json(report)
    except InputError:
        return False
    scored = content.get("conformal", {}).get("models", {}) if conformal else {}  # keys sorted in the file
    return content["model_order"] == list(models) and (not conformal or set(scored) == set(models))


# the steps' commands --------------------------------------------------------------------------------------------
# fmt: off
# (written as a user types a command: each flag or keyword beside its value, a few to a line)
def _make_dataset(run: DemoRun) -> None:
    from nnunet_surgery.synthetic import generate_dataset

    s, v = run.settings, run.settings.variant
    generate_dataset(run.folders.raw, s.dataset_id, s.dataset_name, num_train=s.num_train, num_test=s.num_test,
                     shape=s.shape, seed=s.seed, spacing=SPACING_3D if s.three_d else None,
                     num_classes=v.num_classes, regions=v.regions, labelled_organ=v.labelled_organ)


def _preprocess(run: DemoRun) -> None:
    s = run.settings
    nproc = run.env()["nnUNet_def_n_proc"]
    run.command(
        "preprocess",
        ["nnUNetv2_plan_and_preprocess", "-d", str(s.dataset_id), "-c", s.configuration, "-np", nproc],
    )
    (run.folders.logs / "preprocess.done").touch()


def _train_arguments(settings: DemoSettings, trainer: str) -> list[str]:
    """`nnUNetv2_train ... --npz`: the validation fold's probabilities are what recalibration fits on."""
    return ["nnUNetv2_train", str(settings.dataset_id), settings.configuration, FOLD,
            "-tr", demo_trainer_name(trainer), "-device", settings.device, "--npz"]


def _train(run: DemoRun, trainer: str) -> None:
    """Train (and validate), continuing from checkpoint_latest.pth where an earlier run stopped."""
    resume = ["--c"] if run.folders.checkpoint(trainer, "latest").is_file() else []
    run.command(f"train_{demo_trainer_name(trainer)}", [*_train_arguments(run.settings, trainer), *resume])


def _validate(run: DemoRun, trainer: str) -> None:
    run.command(f"validate_{demo_trainer_name(trainer)}", [*_train_arguments(run.settings, trainer), "--val"])


def _predict(run: DemoRun, trainer: str) -> None:
    """`nnUNetv2_predict --save_probabilities` of the test images into a staging folder, renamed into place."""
    s, images = run.settings, run.folders.dataset / "imagesTs"
    with staged_folder(run.folders.predictions(trainer), overwrite=False, what="the predictions") as staging:
        run.command(f"predict_{demo_trainer_name(trainer)}", [
            "nnUNetv2_predict", "-i", str(images), "-o", str(staging),
            "-d", str(s.dataset_id), "-c", s.configuration, "-f", FOLD, "-tr", demo_trainer_name(trainer),
            "-device", s.device, "--save_probabilities", "-npp", "1", "-nps", "1",
        ])


def _fit(run: DemoRun, trainer: str) -> None:
    """`nnunet-surgery recalibrate fit` on the trainer's validation fold (out-of-fold probabilities)."""
    f, target = run.folders, run.folders.calibrator(trainer)
    target.parent.mkdir(exist_ok=True)
    run.command(f"recalibrate_fit_{trainer}", [
        "nnunet-surgery", "recalibrate", "fit", str(f.dataset / "labelsTr"), str(f.validation(trainer)),
        "-djfile", str(f.dataset_json), "-o", str(target), "--method", RECALIBRATION, "-np", "1", "--overwrite",
    ])


def _apply(run: DemoRun, trainer: str) -> None:
    """`nnunet-surgery recalibrate apply` to the trainer's test-set predictions."""
    f, target = run.folders, run.folders.predictions(recalibrated_name(trainer))
    run.command(f"recalibrate_apply_{trainer}", [
        "nnunet-surgery", "recalibrate", "apply", str(f.calibrator(trainer)), str(f.predictions(trainer)),
        "-o", str(target), "-np", "1",
    ])


def _apply_validation(run: DemoRun, trainer: str) -> None:
    """`nnunet-surgery recalibrate apply` to the trainer's validation fold: TRAINER+temperature's calibration
    cases for its conformal predictor."""
    f = run.folders
    run.command(f"recalibrate_validation_{trainer}", [
        "nnunet-surgery", "recalibrate", "apply", str(f.calibrator(trainer)), str(f.validation(trainer)),
        "-o", str(f.recalibrated_validation(trainer)), "-np", "1",
    ])


def _calibration_folder(run: DemoRun, model: str) -> Path:
    """The model's validation fold: the trainer's own, or its recalibrated copy."""
    trainers = {recalibrated_name(t): t for t in run.settings.trainers}
    f = run.folders
    return f.recalibrated_validation(trainers[model]) if model in trainers else f.validation(model)


def _conformal_fit(run: DemoRun, model: str) -> None:
    """`nnunet-surgery conformal fit` on the model's validation fold (out-of-fold probabilities)."""
    f, target = run.folders, run.folders.conformal(model)
    target.parent.mkdir(exist_ok=True)
    run.command(f"conformal_fit_{model}", [
        "nnunet-surgery", "conformal", "fit", str(f.dataset / "labelsTr"), str(_calibration_folder(run, model)),
        "-djfile", str(f.dataset_json), "-o", str(target), "--alpha", str(CONFORMAL_ALPHA), "-np", "1",
        "--overwrite",
    ])


def _maps(run: DemoRun, trainer: str) -> None:
    """`nnunet-surgery maps` of the trainer's test predictions: NIfTI files to open in a viewer."""
    f = run.folders
    run.command(f"maps_{trainer}", [
        "nnunet-surgery", "maps", str(f.dataset / "labelsTs"), str(f.predictions(trainer)),
        "-djfile", str(f.dataset_json), "-o", str(f.maps(trainer)), "-np", "1", "--overwrite",
    ])


def _report(run: DemoRun, models: Sequence[str], gallery: bool, conformal: bool) -> None:
    """`nnunet-surgery report` of the models' test predictions against labelsTs and truthTs; with `gallery`,
    also the image gallery of the cases where the models differ most; with `conformal`, each model's
    conformal masks (its own predictor)."""
    f = run.folders
    images = ["--images", str(f.dataset / "imagesTs"), "--gallery", str(GALLERY_CASES)] if gallery else []
    if conformal:
        images += ["--conformal", *(str(f.conformal(m)) for m in models)]
    run.command("report", [
        "nnunet-surgery", "report", str(f.dataset / "labelsTs"), *(str(f.predictions(m)) for m in models),
        "-djfile", str(f.dataset_json), "-o", str(f.report), "--names", *models,
        "--truth", str(f.dataset / "truthTs"), "--overwrite", *images,
    ])
# fmt: on


# the table ------------------------------------------------------------------------------------------------------
def demo_steps(
    run: DemoRun,
    *,
    recalibrate: Collection[str] | None = None,
    maps: bool = True,
    gallery: bool = True,
    conformal: bool = True,
) -> list[Step]:
    """The steps of a run, in order (the module docstring's table).

    Args:
        run: the run.
        recalibrate: the trainers whose predictions are also recalibrated (fit and apply); None: every one.
        maps: also write each trainer's maps.
        gallery: the report also draws the gallery.
        conformal: fit every model's conformal predictor (alpha CONFORMAL_ALPHA, on its validation fold; the
            recalibrated models' on their recalibrated validation fold) and score it in the report.
    """
    s, f, trainers = run.settings, run.folders, run.settings.trainers
    recalibrated = [t for t in trainers if recalibrate is None or t in recalibrate]
    models = [*trainers, *map(recalibrated_name, recalibrated)]
    dataset = f"generating {s.dataset}: {s.num_train} training and {s.num_test} test cases of {s.shape} (seed {s.seed})"
    schedule = f"{s.epochs} epochs x {s.iterations_per_epoch} iterations on {s.device}"
    # fmt: off
    steps = [
        Step("dataset", f.dataset_json.is_file, partial(_make_dataset, run), dataset),
        Step("preprocess", partial(_preprocessed, f), partial(_preprocess, run), "nnUNetv2_plan_and_preprocess"),
        Step("trainers", run.trainers_written, run.write_trainers, f.trainer_module.name),
    ]
    for i, t in enumerate(trainers, start=1):
        name, resume = demo_trainer_name(t), " (resuming)" if f.checkpoint(t, "latest").is_file() else ""
        steps += [
            Step(f"train {i}/{len(trainers)} {name}", f.checkpoint(t).is_file, partial(_train, run, t), schedule + resume),
            Step(f"validate {name}", partial(_validated, f, t), partial(_validate, run, t), "nnUNetv2_train --val --npz"),
        ]
    steps += [
        Step(f"predict {t}", f.predictions(t).is_dir, partial(_predict, run, t), f"nnUNetv2_predict of {s.num_test} cases")
        for t in trainers
    ]
    for t in recalibrated:
        steps += [
            Step(f"recalibrate fit {t}", f.calibrator(t).is_file, partial(_fit, run, t), f"{RECALIBRATION} scaling"),
            Step(f"recalibrate apply {recalibrated_name(t)}", f.predictions(recalibrated_name(t)).is_dir,
                 partial(_apply, run, t), "to the test predictions"),
        ]
    if conformal:
        steps += [
            Step(f"recalibrate validation {t}", f.recalibrated_validation(t).is_dir,
                 partial(_apply_validation, run, t), "the validation fold, for the conformal fit")
            for t in recalibrated
        ]
        steps += [
            Step(f"conformal fit {m}", f.conformal(m).is_file, partial(_conformal_fit, run, m),
                 f"alpha {CONFORMAL_ALPHA} on the validation fold")
            for m in models
        ]
    steps += [
        Step(f"maps {t}", partial(_maps_written, f, t), partial(_maps, run, t), "probability and entropy maps")
        for t in trainers if maps
    ]
    steps.append(Step("report", partial(report_holds, f.report, models, conformal=conformal),
                      partial(_report, run, models, gallery, conformal),
                      "nnunet-surgery report (with the true probabilities of the test cases)"))
    # fmt: on
    return steps


def run_demo(out_dir: Path, settings: DemoSettings, log: Callable[[str], None] = print) -> Path:
    """Run (or resume) the whole demo in `out_dir`; returns the report folder.

    Raises:
        InputError: bad settings, an output folder holding something else, or a failed step.
    """
    settings.validate()
    run = DemoRun(out_dir, settings, log)
    resumed = run.claim_output_dir()
    log(f"nnunet-surgery demo in {run.out}{' (resuming)' if resumed else ''}")
    run_steps(demo_steps(run), log)
    return run.folders.report
