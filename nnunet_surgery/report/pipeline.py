"""`generate_report`: check every input, score every case, then write the report atomically."""

from __future__ import annotations

from pathlib import Path

from nnunet_surgery.calibration import NLL_EPS, check_n_bins
from nnunet_surgery.report.aggregate import aggregate_cases
from nnunet_surgery.report.case import CaseTask
from nnunet_surgery.report.dataset import load_dataset_json, reader_for
from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.folders import collect_cases, model_names
from nnunet_surgery.report.output import check_out_dir, write_report
from nnunet_surgery.report.roi import RoiSpec, parse_roi
from nnunet_surgery.report.summary import build_summary

__all__ = ["generate_report"]


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
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Calibration report of nnU-Net probability predictions against reference segmentations.

    Checks the options, dataset.json, OUT_DIR and the pairing of all case files first; then scores
    every case (all files of every case are checked while it is scored); writes only when all cases
    passed, into a temporary folder that is then moved to OUT_DIR.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}`.
        pred_folders: one folder of `CASE.npz` (key `probabilities`) per model.
        dataset_json: the dataset's dataset.json (labels / regions, file_ending, reader).
        out_dir: output folder (calibration.json, calibration.csv, calibration.md, reliability_*.png).
        names: model names (default: the folders' names).
        n_bins: number of equal-width confidence bins.
        roi: `all`, `band:D`, `mask:FOLDER` or a RoiSpec (see `nnunet_surgery.report.roi`).
        truth_folder: optional folder of true probability maps `CASE.npz`, laid out as the predictions.
        num_processes: worker processes (1: in this process).
        overwrite: replace a report already in OUT_DIR.
        progress: show a progress bar on a terminal.

    Returns:
        The calibration.json content.

    Raises:
        ReportError: any bad input, with a one-line message naming the file or argument.
    """
    try:
        n_bins = check_n_bins(n_bins)
    except ValueError as error:
        raise ReportError(f"--bins: {error}") from None
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ReportError(f"-np: the number of processes must be an integer >= 1, but got {num_processes!r}")
    if isinstance(roi, str):
        try:
            roi = parse_roi(roi)
        except ValueError as error:
            raise ReportError(f"--roi: {error}") from None
    if not pred_folders:
        raise ReportError("PRED_FOLDER: give at least one prediction folder")
    check_out_dir(out_dir, overwrite)
    inputs = {Path(p).resolve() for p in (gt_folder, *pred_folders)}
    if Path(out_dir).resolve() in inputs:
        raise ReportError(f"{out_dir}: OUT_DIR must not be an input folder")

    dataset = load_dataset_json(dataset_json)
    models = model_names(pred_folders, names)
    cases = collect_cases(
        gt_folder,
        list(pred_folders),
        dataset.file_ending,
        truth_folder=truth_folder,
        mask_folder=roi.folder if roi.kind == "mask" else None,
    )
    reader_class = reader_for(dataset, cases[0].reference)
    tasks = [
        CaseTask(
            files=files,
            models=tuple(models),
            reader_class=reader_class,
            layout=dataset.layout,
            roi=roi,
            n_bins=n_bins,
            eps=NLL_EPS,
        )
        for files in cases
    ]
    totals, roi_voxels = aggregate_cases(
        tasks,
        n_bins=n_bins,
        with_truth=truth_folder is not None,
        num_processes=num_processes,
        progress=progress,
    )
    summary = build_summary(
        totals,
        folders={model: str(Path(folder)) for model, folder in zip(models, pred_folders)},
        n_bins=n_bins,
        roi=str(roi),
        roi_voxels=roi_voxels,
        label_names=dataset.layout.names,
        region_based=dataset.layout.region_based,
        sources={
            "dataset_json": str(dataset.path),
            "gt_folder": str(Path(gt_folder)),
            "truth_folder": None if truth_folder is None else str(Path(truth_folder)),
        },
    )
    write_report(out_dir, summary, overwrite=overwrite)
    return summary
