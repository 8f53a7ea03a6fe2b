"""`apply_conformal`: the masks {p >= t} of a conformal predictor for every case of a prediction folder.

`OUT_FOLDER/CASE/<label>_mask.nii.gz` (uint8, 1 inside the mask) gets the geometry of the segmentation
`CASE{file_ending}` that `nnUNetv2_predict` wrote beside `CASE.npz`, as nnU-Net's reader reads it
(`cases.read_geometry`, the writer `maps` uses). Probabilities are read memory-safely, shape-checked
against that segmentation before decompression and value-checked once (`cases.load_valid_probabilities`);
the mask is `conformal.threshold_mask`. The folder is staged and renamed into place whole
(`cases.staging.staged_folder`): a failure leaves the previous output, or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.cases import (
    NPZ_ENDING,
    DatasetInfo,
    InputError,
    LabelLayout,
    case_files,
    check_probability_shape,
    check_processes,
    iterate_cases,
    label_file_name,
    label_layout,
    load_valid_probabilities,
    read_geometry,
    reader_for,
)
from nnunet_surgery.cases.staging import check_writable, staged_folder
from nnunet_surgery.conformal import threshold_mask
from nnunet_surgery.conformal.document import ConformalDocument, LabelPredictor
from nnunet_surgery.risk_control.document import read_conformal

__all__ = ["ApplyTask", "apply_case", "apply_conformal", "mask_file_name"]


def mask_file_name(name: str) -> str:
    """`<label>_mask.nii.gz`, the label's name with characters unsafe in file names replaced by `_`."""
    return label_file_name(name, "_mask.nii.gz")


@dataclass(frozen=True)
class ApplyTask:
    """One case; picklable for a worker process.

    Attributes:
        case: case identifier.
        probabilities: its `CASE.npz`.
        segmentation: nnU-Net's `CASE{file_ending}` beside it (the geometry of the masks).
        reader_class: nnU-Net's reader for it.
        layout: labels / regions of the predictor's dataset.
        labels: the fitted labels (channel, threshold).
        out_dir: the staging folder (the case goes to `out_dir / case`).
    """

    case: str
    probabilities: Path
    segmentation: Path
    reader_class: type
    layout: LabelLayout
    labels: tuple[LabelPredictor, ...]
    out_dir: Path


def apply_case(task: ApplyTask) -> str:
    """Write one case's masks into `out_dir/case`; returns the case.

    Raises:
        InputError: unreadable, mismatched or invalid files, naming the file.
    """
    layout, path = task.layout, task.probabilities
    geometry = read_geometry(task.reader_class, task.segmentation)
    expected = (layout.n_channels, *geometry.shape)
    probabilities = load_valid_probabilities(
        path,
        softmax=layout.softmax,
        check_shape=lambda shape: check_probability_shape(path, shape, expected, layout),
    )
    folder = task.out_dir / task.case
    folder.mkdir()
    for label in task.labels:
        geometry.write(
            threshold_mask(probabilities[label.channel], label.threshold), folder / mask_file_name(label.name)
        )
    return task.case


def _dataset(document: ConformalDocument, source: Path) -> DatasetInfo:
    """The predictor's dataset as the case layer describes one (labels checked by nnU-Net's LabelManager)."""
    stored = document.dataset
    content = {key: value for key, value in stored.items() if value is not None}
    layout = label_layout(stored["labels"], stored.get("regions_class_order"), source=str(source))
    try:
        document.check_layout(layout, str(source), "its own 'dataset' field")
    except ValueError as error:
        raise InputError(str(error)) from None
    return DatasetInfo(path=source, file_ending=document.file_ending, layout=layout, content=content)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def apply_conformal(
    conformal_json: str | Path,
    pred_folder: str | Path,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    num_processes: int = 1,
    progress: bool = False,
) -> int:
    """Write the masks of every case of `pred_folder` into `out_dir/CASE/`, the folder written whole.

    Args:
        conformal_json: a CONFORMAL.json of `conformal fit`.
        pred_folder: `CASE.npz` and `CASE{file_ending}` of `nnUNetv2_predict --save_probabilities`.
        out_dir: the folder to write (refused where it exists, unless `overwrite`).
        overwrite: replace an existing `out_dir`.
        num_processes: worker processes (1: in this process).
        progress: show a progress bar.

    Returns:
        The number of cases written.

    Raises:
        InputError: any bad input or unwritable output, in one line; nothing is written then.
    """
    check_processes(num_processes)
    source = Path(conformal_json)
    document = read_conformal(source)
    dataset = _dataset(document, source)
    pred_folder, out_dir = Path(pred_folder), Path(out_dir)
    resolved, out = pred_folder.resolve(), out_dir.resolve()
    if _inside(out, resolved) or _inside(resolved, out):
        raise InputError(
            f"{out_dir}: OUT_FOLDER must lie outside PRED_FOLDER {pred_folder} (and not contain it)"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: OUT_FOLDER exists and is not a folder")
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: OUT_FOLDER exists; pass --overwrite to replace it")
    probabilities = case_files(pred_folder, NPZ_ENDING, "prediction")
    segmentations = case_files(pred_folder, document.file_ending, "segmentation")
    missing = sorted(probabilities.keys() - segmentations.keys())
    if missing:
        raise InputError(
            f"{pred_folder}: no segmentation {missing[0]}{document.file_ending} beside {missing[0]}{NPZ_ENDING} "
            "(the masks take its geometry: keep the files nnUNetv2_predict writes together)"
        )
    check_writable(out_dir, "OUT_FOLDER")
    cases = sorted(probabilities)
    reader_class = reader_for(dataset, segmentations[cases[0]])
    with staged_folder(out_dir, overwrite=overwrite, what="OUT_FOLDER") as staging:
        tasks = [
            ApplyTask(
                case,
                probabilities[case],
                segmentations[case],
                reader_class,
                dataset.layout,
                document.labels,
                staging,
            )
            for case in cases
        ]
        written = list(
            iterate_cases(
                apply_case,
                tasks,
                min(num_processes, len(tasks)),
                _case_name,
                desc="conformal apply",
                progress=progress,
            )
        )
    return len(written)


def _case_name(task: ApplyTask) -> str:
    return task.case
