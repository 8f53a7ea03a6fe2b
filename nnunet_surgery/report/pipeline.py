"""`build_report` and `generate_report`: inputs -> scoring -> outputs, each stage called once, data
flowing one way.

    read_inputs     options, dataset.json, models and cases, all checked          (inputs/)
    score_report    every case scored and pooled: the typed CalibrationReport     (scoring/)
    select_gallery  the gallery's cases, chosen from the scores (pure)            (scoring/)
    read_gallery    their slices, read by the input stage                         (inputs/)
    write_report    calibration.json / .csv / .md, diagrams, gallery, atomically  (outputs/)

With `conformal` (`report --conformal CONFORMAL.json`), the predictor is read with the inputs
(`read_conformal_predictor`), its masks scored after the calibration (`score_conformal`) and written
as one more section of calibration.json and calibration.md.
"""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.cases import check_output_apart
from nnunet_surgery.report.inputs import check_gallery, read_gallery, read_inputs
from nnunet_surgery.report.inputs.conformal_predictor import read_conformal_predictors
from nnunet_surgery.report.outputs import check_out_dir, write_report
from nnunet_surgery.report.outputs.writer import report_content
from nnunet_surgery.report.scoring import CalibrationReport, GalleryCase, score_report, select_gallery
from nnunet_surgery.report.scoring.conformal_masks import score_conformal

__all__ = ["build_report", "generate_report"]


def build_report(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    *,
    progress: bool = False,
    **options,
) -> CalibrationReport:
    """Check every input, then score every case: the typed report, nothing written.

    Args:
        gt_folder, pred_folders, dataset_json: as `generate_report`.
        progress: show a progress bar on a terminal.
        **options: the keywords of `report.inputs.read_inputs`: names, n_bins, roi, truth_folder,
            num_processes, bootstrap, seed, preset, ensembles.

    Raises:
        InputError: any bad input, with a one-line message naming the file or argument.
    """
    return score_report(read_inputs(gt_folder, pred_folders, dataset_json, **options), progress=progress)


def generate_report(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    out_dir: str | Path,
    *,
    images_folder: str | Path | None = None,
    gallery: int = 0,
    conformal: str | Path | list[str | Path] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    **options,
) -> dict:
    """Calibration report of nnU-Net probability predictions against reference segmentations.

    Checks OUT_DIR, the options, dataset.json and the pairing of all case files first; then scores every
    case (all files of every case are checked while it is scored); writes only when all cases passed, into
    a temporary folder that is then moved to OUT_DIR.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}`.
        pred_folders: one folder of `CASE.npz` (key `probabilities`) per model.
        dataset_json: the dataset's dataset.json (labels / regions, file_ending, reader).
        out_dir: output folder (calibration.json, calibration.csv, calibration.md, reliability_*.png).
        images_folder: images `CASE_0000{file_ending}` for the gallery.
        gallery: cases in the gallery (`gallery/CASE.png`, plus per-case ECE plots); 0: none.
        conformal: CONFORMAL.json of `conformal fit`, one for every model or one per model (in model
            order): each model's masks scored too (docs/conformal.md).
        overwrite: replace a report already in OUT_DIR.
        progress: show a progress bar on a terminal.
        **options: the keywords of `report.inputs.read_inputs`: names, n_bins, roi, truth_folder,
            num_processes, bootstrap, seed, preset, ensembles.

    Returns:
        The calibration.json content.

    Raises:
        InputError: any bad input, with a one-line message naming the file or argument.
    """
    check_gallery(images_folder, gallery)
    check_out_dir(out_dir, overwrite)
    inputs = read_inputs(gt_folder, pred_folders, dataset_json, **options)
    models = [name for name, _ in inputs.models]
    predictors = None if conformal is None else read_conformal_predictors(conformal, inputs.dataset, models)
    check_output_apart(
        out_dir,
        (*inputs.folders, dataset_json, images_folder, options.get("truth_folder"), *(conformal or ())),
    )
    report = score_report(inputs, progress=progress)
    cases: tuple[GalleryCase, ...] = ()
    if gallery:
        chosen = select_gallery(report, gallery)
        slices = read_gallery(
            inputs, [(selection.case, selection.label) for selection in chosen], images_folder
        )
        models = tuple(model.name for model in report.models)
        cases = tuple(
            GalleryCase(selection, models, cut) for selection, cut in zip(chosen, slices, strict=True)
        )
    scores = None
    if predictors is not None:
        run = inputs.options.run
        scores = score_conformal(
            inputs.cases, tuple(models), predictors, num_processes=run.num_processes,
            bootstrap=run.bootstrap, seed=run.seed, progress=progress,
        )  # fmt: skip
    write_report(out_dir, report, overwrite=overwrite, gallery=cases, conformal=scores)
    return report_content(report, scores)
