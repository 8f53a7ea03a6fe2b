"""Reading one case: its reference (and ROI mask), its true probabilities and each model's probabilities,
every file checked, as flat arrays a command scores, fits or exports chunk by chunk.

Runs in worker processes, so it imports neither torch nor nnU-Net's label handling; the reader class
travels in the task. Memory: the reference, the ROI, one probability map (plus the truth map, if any).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnunet_surgery.cases.errors import InputError
from nnunet_surgery.cases.folders import CaseFiles
from nnunet_surgery.cases.label_images import read_label_image
from nnunet_surgery.cases.labels import LabelLayout
from nnunet_surgery.cases.npz import check_probabilities_by_chunk, check_probability_shape, load_probabilities
from nnunet_surgery.cases.roi import RoiSpec, roi_mask

__all__ = ["CaseTask", "PreparedCase", "Reference", "load_model", "prepare_case", "read_reference"]


@dataclass(frozen=True)
class CaseTask:
    """What reading one case needs; picklable for a spawn pool.

    Attributes:
        files: the case's files (one prediction per model, in model order).
        reader_class: nnU-Net reader/writer class for references and masks.
        layout: label / region channels.
        roi: the voxels read as the region of interest (checked).
    """

    files: CaseFiles
    reader_class: type
    layout: LabelLayout
    roi: RoiSpec = field(default_factory=RoiSpec)


@dataclass(frozen=True)
class Reference:
    """A case's reference and the voxel sets it defines, flat.

    Attributes:
        labels: (N,) int32 reference labels.
        shape: (1, *spatial) shape the reader gave.
        roi: boolean ROI, or None when it is every voxel (no mask indexing then).
        valid: boolean non-ignored voxels, or None when there is no ignore label.
        n_roi: number of ROI voxels.
    """

    labels: np.ndarray
    shape: tuple[int, ...]
    roi: np.ndarray | None
    valid: np.ndarray | None
    n_roi: int


def _read_labels(task: CaseTask) -> np.ndarray:
    path = task.files.reference
    image = read_label_image(task.reader_class, path)
    if image.ndim < 2 or image.shape[0] != 1:
        raise InputError(
            f"{path}: expected one segmentation channel (1, *spatial) from the reader, got {image.shape}"
        )
    reference = image.astype(np.int32)
    if not np.array_equal(reference, image):
        raise InputError(f"{path}: reference holds non-integer label values")
    low, high = int(reference.min()), int(reference.max())
    valid = set(task.layout.valid_values)
    if low >= 0 and high - low < len(valid) and valid.issuperset(range(low, high + 1)):
        return reference  # every value between the extremes is a label: no need to find which occur
    present = set() if low < 0 else set(np.flatnonzero(np.bincount(reference.ravel())).tolist())
    unknown = sorted(present - valid) if low >= 0 else [low]
    if unknown:
        raise InputError(
            f"{path}: reference holds label value(s) {unknown[:5]} not in dataset.json (valid: {list(task.layout.valid_values)})"
        )
    return reference


def read_reference(task: CaseTask) -> Reference:
    """Read and check a case's reference (label values of dataset.json only) and, for `mask:FOLDER`, its mask.

    Raises:
        InputError: an unreadable or damaged reference or mask, unknown label values, a mask of another shape.
    """
    files, layout, spec = task.files, task.layout, task.roi
    reference = _read_labels(task)
    mask = None
    if spec.kind == "mask":
        # refused from its header (before its pixels are read) unless it has the reference's shape
        mask = read_label_image(task.reader_class, files.mask, expected_shape=reference.shape)
    roi = roi_mask(reference, spec, layout.ignore_label, mask).reshape(-1)
    n_roi = int(np.count_nonzero(roi))
    valid = None if layout.ignore_label is None else (reference != layout.ignore_label).reshape(-1)
    return Reference(reference.reshape(-1), reference.shape, None if n_roi == roi.size else roi, valid, n_roi)


def _load_checked(path: Path, reference: Reference, layout: LabelLayout) -> np.ndarray:
    """(C, N) probabilities of `path`, shape-checked against the reference (values: `valid_probabilities`)."""
    expected = (layout.n_channels, *reference.shape[1:])
    probabilities = load_probabilities(
        path, check_shape=lambda shape: check_probability_shape(path, shape, expected, layout)
    )
    return np.ascontiguousarray(probabilities).reshape(expected[0], -1)


def _check_values(path: Path, flat: np.ndarray, layout: LabelLayout) -> None:
    """`valid_probabilities` of `flat` (C, N), chunk by chunk (the temporaries stay chunk-sized)."""
    check_probabilities_by_chunk(path, flat, softmax=layout.softmax)


def load_model(paths: tuple[Path, ...], reference: Reference, layout: LabelLayout) -> np.ndarray:
    """(C, N) probabilities of one model: its one file (shape-checked; its values are the caller's to check,
    chunk by chunk, as it uses them), or the mean of an ensemble's members (as `nnUNetv2_ensemble` averages
    them), each member's values checked before it is added.

    Raises:
        InputError: an unreadable or mismatched file, or (ensembles) a member's invalid values.
    """
    if len(paths) == 1:
        return _load_checked(paths[0], reference, layout)
    total = None
    for path in paths:
        member = _load_checked(path, reference, layout)
        _check_values(path, member, layout)
        total = member.astype(np.float64) if total is None else total + member
        del member
    return (total / len(paths)).astype(np.float32)


def _read_truth(path: Path, reference: Reference, layout: LabelLayout) -> np.ndarray:
    truth = _load_checked(path, reference, layout)
    _check_values(path, truth, layout)
    return np.clip(truth, 0.0, 1.0, out=truth if truth.flags.writeable else None)


@dataclass(frozen=True)
class PreparedCase:
    """A case read and checked up to its first model's probabilities (what `prepare_case` reads ahead).

    Attributes:
        reference: the reference and the voxel sets it defines.
        truth: (C, N) true probabilities, checked and clipped, or None.
        first: (C, N) probabilities of the first model, shape-checked (values are checked as they are used).
    """

    reference: Reference
    truth: np.ndarray | None
    first: np.ndarray


def prepare_case(task: CaseTask) -> PreparedCase:
    """Read a case's reference (and mask, and truth) and its first model's probabilities.

    Everything that touches nnU-Net's label-image reader happens here, so a caller can run it in one
    background thread while the previous case is used (`pool.read_ahead`).

    Raises:
        InputError: unreadable files, shape, axis order or channel mismatches, unknown reference labels,
            invalid truth values.
    """
    files = task.files
    reference = read_reference(task)
    truth = None if files.truth is None else _read_truth(files.truth, reference, task.layout)
    return PreparedCase(reference, truth, load_model(files.predictions[0], reference, task.layout))
