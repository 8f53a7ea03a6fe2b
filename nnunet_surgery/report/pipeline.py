"""`generate_report`: inputs -> scoring -> outputs, each stage called once, data flowing one way."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.calibration.bootstrap import DEFAULT_RESAMPLES
from nnunet_surgery.cases import (
    ReportError,
    RoiSpec,
    collect_cases,
    load_dataset_json,
    model_names,
    reader_for,
)
from nnunet_surgery.report.inputs import ReportOptions, check_options
from nnunet_surgery.report.outputs import check_out_dir, report_json, write_report
from nnunet_surgery.report.scoring import CalibrationReport, CaseTask, Sources, score_report
from nnunet_surgery.report.scoring.gallery import GalleryCase, read_gallery

__all__ = ["build_report", "generate_report"]


def build_report(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    *,
    names: list[str] | None = None,
    n_bins: int = 20,
    roi: RoiSpec | str = "all",
    truth_folder: str | Path | None = None,
    num_processes: int = 1,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    preset: str | None = None,
    ensembles: dict[str, tuple[str | Path, ...]] | None = None,
    progress: bool = False,
) -> CalibrationReport:
    """Check every input, then score every case: the typed report, nothing written.

    Args: as `generate_report`.

    Raises:
        ReportError: any bad input, with a one-line message naming the file or argument.
    """
    options = check_options(n_bins, roi, num_processes, bootstrap, seed, preset)
    return _score(
        gt_folder, pred_folders, dataset_json, options, names, truth_folder, progress, ensembles=ensembles
    )[0]


def _score(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    options: ReportOptions,
    names: list[str] | None,
    truth_folder: str | Path | None,
    progress: bool,
    images_folder: str | Path | None = None,
    gallery: int = 0,
    ensembles: dict[str, tuple[str | Path, ...]] | None = None,
) -> tuple[CalibrationReport, tuple[GalleryCase, ...]]:
    ensembles = dict(ensembles or {})
    if not pred_folders and not ensembles:
        raise ReportError("PRED_FOLDER: give at least one prediction folder (or --ensemble)")
    dataset = load_dataset_json(dataset_json)
    models = [
        *((name, (Path(folder),)) for name, folder in zip(model_names(pred_folders, names), pred_folders)),
        *((name, tuple(Path(folder) for folder in folders)) for name, folders in ensembles.items()),
    ]
    taken = [name for name, _ in models]
    if len(set(taken)) != len(taken):
        twice = sorted({name for name in taken if taken.count(name) > 1})
        raise ReportError(f"--ensemble: the name {twice[0]!r} is given to two models")
    cases = collect_cases(
        gt_folder,
        [folders for _, folders in models],
        dataset.file_ending,
        truth_folder=truth_folder,
        mask_folder=options.roi.folder if options.roi.kind == "mask" else None,
    )
    reader_class = reader_for(dataset, cases[0].reference)
    tasks = [CaseTask(files, reader_class, dataset.layout, options) for files in cases]
    sources = Sources(
        dataset_json=dataset.path,
        gt_folder=Path(gt_folder),
        truth_folder=None if truth_folder is None else Path(truth_folder),
    )
    report = score_report(tasks, models, sources, progress=progress)
    if not gallery:
        return report, ()
    return report, read_gallery(
        report, gallery, Path(images_folder), dataset.file_ending, reader_class, dataset.layout
    )


def _check_gallery(images_folder: str | Path | None, gallery: int) -> None:
    if isinstance(gallery, bool) or not isinstance(gallery, int) or gallery < 0:
        raise ReportError(f"--gallery: the number of cases must be an integer >= 0, but got {gallery!r}")
    if gallery and images_folder is None:
        raise ReportError("--gallery: needs --images IMAGES_FOLDER (the images CASE_0000{file_ending} shown)")
    if images_folder is not None and not Path(images_folder).is_dir():
        raise ReportError(f"{images_folder}: --images folder does not exist or is not a folder")


def generate_report(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    out_dir: str | Path,
    *,
    names: list[str] | None = None,
    n_bins: int = 20,
    roi: RoiSpec | str = "all",
    truth_folder: str | Path | None = None,
    num_processes: int = 1,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    preset: str | None = None,
    images_folder: str | Path | None = None,
    gallery: int = 0,
    ensembles: dict[str, tuple[str | Path, ...]] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Calibration report of nnU-Net probability predictions against reference segmentations.

    Checks the options, OUT_DIR, dataset.json and the pairing of all case files first; then scores
    every case (all files of every case are checked while it is scored); writes only when all cases
    passed, into a temporary folder that is then moved to OUT_DIR.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}`.
        pred_folders: one folder of `CASE.npz` (key `probabilities`) per model.
        dataset_json: the dataset's dataset.json (labels / regions, file_ending, reader).
        out_dir: output folder (calibration.json, calibration.csv, calibration.md, reliability_*.png).
        names: model names (default: the folders' names).
        n_bins: number of equal-width confidence bins.
        roi: `all`, `band:D`, `mask:FOLDER` or a RoiSpec (see `nnunet_surgery.cases.roi`).
        truth_folder: optional folder of true probability maps `CASE.npz`, laid out as the predictions.
        num_processes: worker processes (1: in this process).
        bootstrap: case-level bootstrap resamples for 95% intervals and paired comparisons (0: none).
        seed: the bootstrap's seed.
        preset: also compute another tool's conventions: "monai" (MONAI's per-image ECE), or None.
        images_folder: images `CASE_0000{file_ending}` for the gallery.
        gallery: cases in the gallery (`gallery/CASE.png`, plus per-case ECE plots); 0: none.
        ensembles: models after the folders' ones: name -> member folders (e.g. the 5 folds' predictions of
            the same cases), probabilities averaged case by case as `nnUNetv2_ensemble` does.
        overwrite: replace a report already in OUT_DIR.
        progress: show a progress bar on a terminal.

    Returns:
        The calibration.json content.

    Raises:
        ReportError: any bad input, with a one-line message naming the file or argument.
    """
    options = check_options(n_bins, roi, num_processes, bootstrap, seed, preset)
    _check_gallery(images_folder, gallery)
    check_out_dir(out_dir, overwrite)
    members = [folder for folders in (ensembles or {}).values() for folder in folders]
    inputs = {Path(p).resolve() for p in (gt_folder, *pred_folders, *members)}
    if Path(out_dir).resolve() in inputs:
        raise ReportError(f"{out_dir}: OUT_DIR must not be an input folder")
    report, cases = _score(
        gt_folder,
        pred_folders,
        dataset_json,
        options,
        names,
        truth_folder,
        progress,
        images_folder,
        gallery,
        ensembles,
    )
    write_report(out_dir, report, overwrite=overwrite, gallery=cases)
    return report_json(report)
