"""`export_maps`: probability and uncertainty maps of nnU-Net predictions as NIfTI files, case by case.

For every case of the prediction folders (one folder: one model; several: an ensemble, e.g. the 5 folds'
predictions of the same cases), `OUT_DIR/CASE/` receives, in the geometry of the reference file
`CASE{file_ending}` (or the image `CASE_0000{file_ending}`) as nnU-Net's reader reads it:

    <label>_probability.nii.gz   mean probability of each foreground label or region (float32)
    entropy.nii.gz               entropy of the mean (nats)
    <label>_std.nii.gz           std across the folders (several folders only)
    mutual_information.nii.gz    H(mean) - mean H(folder) (several folders only)

Probabilities are read memory-safely (never unpickled; shapes checked against the reference before
decompression) and their values checked once (`cases.valid_probabilities`); `.pkl` files are never read.
The whole run is written into a hidden staging folder beside OUT_DIR, put in place only when every case
succeeded: a failure leaves OUT_DIR as it was, or absent (docs/maps.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import (
    IMAGE_SUFFIX,
    NPZ_ENDING,
    InputError,
    LabelLayout,
    case_files,
    check_probability_shape,
    check_processes,
    iterate_cases,
    label_file_name,
    load_dataset_json,
    load_valid_probabilities,
    read_geometry,
    reader_for,
)
from nnunet_surgery.cases.staging import (
    check_output_apart,
    check_writable,
    move_folder_into_place,
    staged_folder,
)
from nnunet_surgery.maps.uncertainty import EnsembleSums

__all__ = ["MapsTask", "export_case", "export_maps", "map_file_names"]


def map_file_names(layout: LabelLayout, members: int) -> list[str]:
    """The files of one case folder, in writing order."""
    names = [label_file_name(name, "_probability.nii.gz") for name in layout.names] + ["entropy.nii.gz"]
    if members > 1:
        names += [label_file_name(name, "_std.nii.gz") for name in layout.names] + [
            "mutual_information.nii.gz"
        ]
    return names


@dataclass(frozen=True)
class MapsTask:
    """One case to export; picklable for a worker process.

    Attributes:
        case: case identifier.
        reference: the file whose geometry the maps get.
        predictions: its `CASE.npz` in every folder.
        reader_class: nnU-Net's reader for the reference.
        layout: labels / regions of dataset.json.
        out_dir: OUT_DIR, where the case's maps end up (`out_dir / case`), named in errors.
        staging: the run's staging folder (the case is written to `staging / case`).
    """

    case: str
    reference: Path
    predictions: tuple[Path, ...]
    reader_class: type
    layout: LabelLayout
    out_dir: Path
    staging: Path


def _member(path: Path, expected: tuple[int, ...], layout: LabelLayout) -> np.ndarray:
    return load_valid_probabilities(
        path,
        softmax=layout.softmax,
        check_shape=lambda shape: check_probability_shape(path, shape, expected, layout),
    )


def export_case(task: MapsTask) -> str:
    """Write one case's maps into `staging/case`; returns the case.

    Raises:
        InputError: unreadable, mismatched or invalid files, naming the file.
    """
    layout = task.layout
    geometry = read_geometry(task.reader_class, task.reference)
    expected = (layout.n_channels, *geometry.shape)
    sums = EnsembleSums(softmax=layout.softmax)
    for path in task.predictions:
        sums.add(_member(path, expected, layout))
    maps = sums.maps()
    del sums
    arrays = [maps.mean[channel] for channel in layout.channels] + [maps.entropy]
    if maps.members > 1:
        arrays += [maps.std[channel] for channel in layout.channels] + [maps.mutual_information]
    target = task.staging / task.case
    try:
        target.mkdir()
        for name, array in zip(map_file_names(layout, maps.members), arrays, strict=True):
            geometry.write(array, target / name)
    except OSError as error:
        raise InputError(
            f"{task.out_dir / task.case}: cannot write the case's maps ({error.strerror or error})"
        ) from None
    return task.case


def _reference_files(folder: Path, ending: str) -> dict[str, Path]:
    """`{case: file}`: segmentations `CASE{ending}`, or images `CASE_0000{ending}` (first channel)."""
    files = case_files(folder, ending, "reference")
    images = {case[: -len(IMAGE_SUFFIX)]: path for case, path in files.items() if case.endswith(IMAGE_SUFFIX)}
    return {**images, **{case: path for case, path in files.items() if not case.endswith(IMAGE_SUFFIX)}}


def export_maps(
    pred_folders: list[str | Path],
    reference_folder: str | Path,
    dataset_json: str | Path,
    out_dir: str | Path,
    *,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> list[str]:
    """Write the maps of every case of `pred_folders` into `out_dir/CASE/`.

    Args:
        pred_folders: folders of `CASE.npz` holding the same cases (one model, or the members of an ensemble).
        reference_folder: `CASE{file_ending}` segmentations or `CASE_0000{file_ending}` images.
        dataset_json: the dataset's dataset.json (labels / regions, file ending, reader).
        out_dir: output folder.
        num_processes: worker processes (1: in this process).
        overwrite: replace case folders already in `out_dir`.
        progress: show a progress bar.

    Returns:
        The cases written.

    Raises:
        InputError: any bad input or unwritable output, in one line; nothing is written then (the run is
            staged beside OUT_DIR and put in place when every case succeeded: `_merge_into`).
    """

    if not pred_folders:
        raise InputError("PRED_FOLDER: give at least one prediction folder")
    check_processes(num_processes)
    dataset = load_dataset_json(dataset_json)
    folders = [Path(folder) for folder in pred_folders]
    if len({folder.resolve() for folder in folders}) != len(folders):
        raise InputError("PRED_FOLDER: a prediction folder is given twice")
    out_dir = Path(out_dir)
    check_output_apart(out_dir, (*folders, reference_folder, dataset_json))
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: OUT_DIR exists and is not a folder")
    references = _reference_files(Path(reference_folder), dataset.file_ending)
    members = [case_files(folder, NPZ_ENDING, "prediction") for folder in folders]
    cases = sorted(members[0])
    for folder, files in zip(folders, members, strict=True):
        if files.keys() != set(cases):
            differ = sorted(set(cases) ^ files.keys())
            raise InputError(
                f"{folder}: holds other cases than {folders[0]} (e.g. {differ[0]}): every folder must hold the same cases"
            )
    missing = [case for case in cases if case not in references]
    if missing:
        raise InputError(
            f"{reference_folder}: no reference CASE{dataset.file_ending} or image CASE{IMAGE_SUFFIX}{dataset.file_ending} "
            f"for case {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    if out_dir.is_dir() and not overwrite:
        existing = sorted(case for case in cases if (out_dir / case).exists())
        if existing:
            raise InputError(
                f"{out_dir}: already holds maps of {existing[0]}; pass --overwrite to replace them"
            )
    check_writable(out_dir, "OUT_DIR")
    reader_class = reader_for(dataset, references[cases[0]])
    # the whole run goes to a staging folder beside OUT_DIR, put in place only once every case succeeded
    with staged_folder(out_dir, overwrite=True, what="OUT_DIR", place=_merge_into) as staging:
        tasks = [
            MapsTask(case, references[case], tuple(files[case] for files in members), reader_class,
                     dataset.layout, out_dir.absolute(), staging)
            for case in cases
        ]  # fmt: skip
        return list(
            iterate_cases(export_case, tasks, num_processes, _case_name, desc="maps", progress=progress)
        )


def _merge_into(staging: Path, out_dir: Path) -> None:
    """Put the finished staging folder in place: as OUT_DIR where there is none, else each case folder
    moved into OUT_DIR (replacing that case's older maps; other cases' maps stay)."""
    if not out_dir.exists():
        move_folder_into_place(staging, out_dir)
        return
    for case in sorted(staging.iterdir()):
        move_folder_into_place(case, out_dir / case.name)


def _case_name(task: MapsTask) -> str:
    return task.case
