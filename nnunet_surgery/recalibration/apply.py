"""`apply_calibrator`: a folder of nnU-Net probability maps through a fitted calibrator.

Every `CASE.npz` of PRED_FOLDER is read memory-safely (the case layer's reader: never unpickled, shape and
size checked before decompression), checked (finite, in [0, 1], softmax sums), recalibrated and written
as `OUT_FOLDER/CASE.npz` (`probabilities`, same shape and dtype). nnU-Net's segmentation files
`CASE{file_ending}` are copied byte for byte; `.pkl` files are neither read nor copied (they are pickles
this tool did not write). Everything is written into a staging folder that becomes OUT_FOLDER only once
every case succeeded.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import (
    NPZ_ENDING,
    PROBABILITIES_KEY,
    InputError,
    case_files,
    check_processes,
    iterate_cases,
    load_valid_probabilities,
)
from nnunet_surgery.cases.staging import check_writable, staged_folder
from nnunet_surgery.recalibration.calibrator import Calibrator, read_calibrator

__all__ = ["ApplyTask", "apply_calibrator", "apply_case"]


@dataclass(frozen=True)
class ApplyTask:
    """One case to recalibrate; picklable for a worker process.

    Attributes:
        case: case identifier.
        source: its `CASE.npz`.
        segmentation: its `CASE{file_ending}` beside it, or None.
        staging: the folder written into.
        calibrator: the calibrator.
    """

    case: str
    source: Path
    segmentation: Path | None
    staging: Path
    calibrator: Calibrator


def _check_shape(path: Path, shape: tuple[int, ...], calibrator: Calibrator) -> None:
    if len(shape) < 2:
        raise InputError(f"{path}: expected probabilities (C, *spatial), but the array has shape {shape}")
    if shape[0] != calibrator.n_channels:
        kind = "regions" if calibrator.region_based else "softmax channels"
        raise InputError(
            f"{path}: has {shape[0]} channels, but the calibrator was fitted on {calibrator.n_channels} {kind}"
        )


def apply_case(task: ApplyTask) -> str:
    """Recalibrate one case into the staging folder; returns the case.

    Raises:
        InputError: an unreadable, malformed or mismatched probability map, naming the file.
    """
    calibrator = task.calibrator
    probabilities = load_valid_probabilities(
        task.source,
        softmax=not calibrator.region_based,
        check_shape=lambda shape: _check_shape(task.source, shape, calibrator),
        hint="" if calibrator.region_based else " (the calibrator was fitted on softmax labels)",
    )
    recalibrated = calibrator.transform(np.ascontiguousarray(probabilities))
    np.savez_compressed(task.staging / f"{task.case}{NPZ_ENDING}", **{PROBABILITIES_KEY: recalibrated})
    if task.segmentation is not None:
        shutil.copyfile(task.segmentation, task.staging / task.segmentation.name)
    return task.case


def _case_name(task: ApplyTask) -> str:
    return task.case


def apply_calibrator(
    calibrator_json: str | Path,
    pred_folder: str | Path,
    out_folder: str | Path,
    *,
    overwrite: bool = False,
    num_processes: int = 1,
    progress: bool = False,
) -> int:
    """Write the recalibrated `CASE.npz` of every case of `pred_folder` (and copy its segmentations).

    Args:
        calibrator_json: CALIBRATOR.json of `nnunet-surgery recalibrate fit`.
        pred_folder: folder of `CASE.npz` from `nnUNetv2_predict --save_probabilities`.
        out_folder: new folder (an existing one only with `overwrite`, and never an input folder).
        overwrite: replace an existing OUT_FOLDER.
        num_processes: worker processes (1: in this process).
        progress: show a progress bar.

    Returns:
        The number of cases written.

    Raises:
        InputError: any bad input or unwritable output, in one line; nothing is written then.
    """

    check_processes(num_processes)
    calibrator = read_calibrator(calibrator_json)
    pred_folder, out_folder = Path(pred_folder), Path(out_folder)
    sources = case_files(pred_folder, NPZ_ENDING, "prediction")
    if out_folder.resolve() == pred_folder.resolve() or out_folder.resolve() in pred_folder.resolve().parents:
        raise InputError(f"{out_folder}: OUT_FOLDER must not be PRED_FOLDER or a folder holding it")
    if out_folder.exists() and not out_folder.is_dir():
        raise InputError(f"{out_folder}: OUT_FOLDER exists and is not a folder")
    check_writable(out_folder, "OUT_FOLDER")
    with staged_folder(out_folder, overwrite=overwrite) as staging:
        tasks = []
        for case, source in sorted(sources.items()):
            segmentation = pred_folder / f"{case}{calibrator.file_ending}"
            tasks.append(
                ApplyTask(case, source, segmentation if segmentation.is_file() else None, staging, calibrator)
            )
        try:
            list(
                iterate_cases(
                    apply_case, tasks, num_processes, _case_name, desc="recalibrate", progress=progress
                )
            )
        except OSError as error:
            raise InputError(f"{out_folder}: cannot write ({error.strerror or error})") from None
    return len(tasks)
