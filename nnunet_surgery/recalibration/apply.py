"""`apply_calibrator`: a folder of nnU-Net probability maps through a fitted calibrator.

Every `CASE.npz` of PRED_FOLDER is read memory-safely (the case layer's reader: never unpickled, shape and
size checked before decompression), checked (finite, in [0, 1], softmax sums), recalibrated and written
as `OUT_FOLDER/CASE.npz` (`probabilities`, same shape and dtype). nnU-Net's segmentation files
`CASE{file_ending}` are copied byte for byte; `.pkl` files are neither read nor copied (they are pickles
this tool did not write). Everything is written into a staging folder that becomes OUT_FOLDER only once
every case succeeded.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import (
    NPZ_ENDING,
    PROBABILITIES_KEY,
    InputError,
    case_files,
    check_probabilities_by_chunk,
    check_processes,
    iterate_cases,
    load_probabilities,
    printable,
)
from nnunet_surgery.cases.staging import check_output_apart, check_writable, staged_folder
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
    if 0 in shape[1:]:
        raise InputError(f"{path}: the probability map holds no voxels (shape {shape})")
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
    probabilities = np.ascontiguousarray(
        load_probabilities(
            task.source, check_shape=lambda shape: _check_shape(task.source, shape, calibrator)
        )
    )
    check_probabilities_by_chunk(
        task.source,
        probabilities.reshape(probabilities.shape[0], -1),
        softmax=not calibrator.region_based,
        hint="" if calibrator.region_based else " (the calibrator was fitted on softmax labels)",
    )
    # in place: memory holds the map once, plus chunk-sized temporaries and the writer's buffers
    recalibrated = calibrator.transform(probabilities, out=probabilities)
    np.savez_compressed(task.staging / f"{task.case}{NPZ_ENDING}", **{PROBABILITIES_KEY: recalibrated})
    if task.segmentation is not None:
        shutil.copyfile(task.segmentation, task.staging / task.segmentation.name)
    return task.case


def _segmentation(pred_folder: Path, case: str, calibrator: Calibrator) -> Path | None:
    """nnU-Net's segmentation `CASE{file_ending}` beside the probabilities, or None where there is none.

    Raises:
        InputError: the name exists but is no readable file (a dangling symlink, a folder, ...).
    """
    path = pred_folder / f"{case}{calibrator.file_ending}"
    if path.is_file():
        return path
    if os.path.lexists(path):
        raise InputError(f"{path}: the segmentation of case {case} exists but is not a readable file")
    return None


def _say_not_copied(pred_folder: Path, sources: dict[str, Path], file_ending: str) -> None:
    """One line on stderr naming the files of PRED_FOLDER that OUT_FOLDER will not hold (nnU-Net's `.pkl`
    files, its json files, orphans); hidden files are said by `case_files`."""
    written = {f"{case}{ending}" for case in sources for ending in (NPZ_ENDING, file_ending)}
    left = sorted(
        e.name for e in pred_folder.iterdir() if e.name not in written and not e.name.startswith(".")
    )
    if left:
        shown = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
        print(
            printable(
                f"note: {pred_folder}: {len(left)} file(s) not copied ({shown}): OUT_FOLDER holds CASE.npz "
                f"and CASE{file_ending} only (.pkl files are never read)"
            ),
            file=sys.stderr,
        )


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
        out_folder: new folder (an existing one only with `overwrite`; never the calibrator, PRED_FOLDER, a
            folder holding either, or a folder inside PRED_FOLDER).
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
    check_output_apart(out_folder, (calibrator_json, pred_folder), "OUT_FOLDER")
    if out_folder.exists() and not out_folder.is_dir():
        raise InputError(f"{out_folder}: OUT_FOLDER exists and is not a folder")
    check_writable(out_folder, "OUT_FOLDER")
    _say_not_copied(pred_folder, sources, calibrator.file_ending)
    with staged_folder(out_folder, overwrite=overwrite) as staging:
        tasks = []
        for case, source in sorted(sources.items()):
            tasks.append(
                ApplyTask(case, source, _segmentation(pred_folder, case, calibrator), staging, calibrator)
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
