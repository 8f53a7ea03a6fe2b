"""The pure per-case function: read and check one case's files, return its sufficient statistics.

Runs in worker processes, so it imports neither torch nor nnU-Net's label handling; the reader class
travels in the task. Memory: the reference, the ROI, one probability map (plus the truth map, if any)
and chunk-sized temporaries; the probabilities are scored in chunks of about CHUNK_ELEMENTS values.
`evaluate_case` is `read_case` (files in, checked up to the first model's probabilities) followed by
`score_case`, so that a caller can read the next case in a thread while this one is scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import (
    NLL_EPS,
    BinnedStats,
    LabelStats,
    ProbabilityError,
    binned_stats,
    check_probabilities,
    confusion_counts,
    label_stats,
    top_label_inputs,
)
from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.folders import CaseFiles
from nnunet_surgery.report.labels import LabelLayout
from nnunet_surgery.report.reading import load_probabilities, read_label_image
from nnunet_surgery.report.roi import RoiSpec, roi_mask

__all__ = [
    "CHUNK_ELEMENTS",
    "CaseInputs",
    "CaseResult",
    "CaseTask",
    "ModelCaseStats",
    "evaluate_case",
    "read_case",
    "score_case",
]

# values (channels x voxels) scored at once: bounds the float64 temporaries to a few tens of MB
CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class CaseTask:
    """Everything `evaluate_case` needs; picklable for a spawn pool.

    Attributes:
        files: the case's files (one prediction per model).
        models: model names, in the order of `files.predictions`.
        reader_class: nnU-Net reader/writer class for references and masks.
        layout: label / region channels.
        roi: voxels scored by the calibration metrics.
        n_bins: confidence bins.
        eps: NLL clipping.
    """

    files: CaseFiles
    models: tuple[str, ...]
    reader_class: type
    layout: LabelLayout
    roi: RoiSpec
    n_bins: int
    eps: float = NLL_EPS


@dataclass(frozen=True)
class ModelCaseStats:
    """One model's statistics on one case: per label name, and top-label (softmax datasets only)."""

    labels: dict[str, LabelStats]
    top_label: BinnedStats | None


@dataclass(frozen=True)
class CaseResult:
    """Statistics of one case for every model; `n_roi` voxels were scored."""

    case: str
    n_roi: int
    models: dict[str, ModelCaseStats]


def _read_reference(task: CaseTask) -> np.ndarray:
    path = task.files.reference
    image = read_label_image(task.reader_class, path)
    if image.ndim < 2 or image.shape[0] != 1:
        raise ReportError(
            f"{path}: expected one segmentation channel (1, *spatial) from the reader, got {image.shape}"
        )
    reference = image.astype(np.int32)
    if not np.array_equal(reference, image):
        raise ReportError(f"{path}: reference holds non-integer label values")
    low = int(reference.min())
    present = set() if low < 0 else set(np.flatnonzero(np.bincount(reference.ravel())).tolist())
    unknown = sorted(present - set(task.layout.valid_values)) if low >= 0 else [low]
    if unknown:
        raise ReportError(
            f"{path}: reference holds label value(s) {unknown[:5]} not in dataset.json (valid: {list(task.layout.valid_values)})"
        )
    return reference


def _check_shape(path: Path, array: np.ndarray, expected: tuple[int, ...], layout: LabelLayout) -> None:
    if array.shape == expected:
        return
    if array.ndim != len(expected):
        problem = (
            f"has shape {array.shape} but the reference needs (C, *spatial) = {expected}: axis count differs"
        )
    elif array.shape[0] != expected[0]:
        meaning = "one per region" if layout.region_based else "background + one per label"
        problem = f"has {array.shape[0]} channels but dataset.json needs {expected[0]} ({meaning})"
    elif sorted(array.shape[1:]) == sorted(expected[1:]):
        problem = (
            f"spatial shape {array.shape[1:]} is an axis permutation of the reference's {expected[1:]}: "
            "axis order mismatch (expected the order nnU-Net's reader gives)"
        )
    else:
        problem = f"spatial shape {array.shape[1:]} does not match the reference's {expected[1:]}"
    raise ReportError(f"{path}: {problem}")


def _chunks(n_voxels: int, n_channels: int) -> Iterator[slice]:
    step = max(4096, CHUNK_ELEMENTS // max(n_channels, 1))
    for start in range(0, n_voxels, step):
        yield slice(start, min(start + step, n_voxels))


def _checked_chunk(path: Path, flat: np.ndarray, chunk: slice, softmax: bool) -> np.ndarray:
    values = flat[:, chunk]
    try:
        low, high = check_probabilities(values, softmax=softmax)
    except ProbabilityError as error:
        raise ReportError(f"{path}: {error}") from None
    return values if low >= 0.0 and high <= 1.0 else np.clip(values, 0.0, 1.0)


def _load_checked(path: Path, expected: tuple[int, ...], layout: LabelLayout) -> np.ndarray:
    probabilities = load_probabilities(path)
    _check_shape(path, probabilities, expected, layout)
    return np.ascontiguousarray(probabilities).reshape(expected[0], -1)


def _select(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """`values[mask]`, or `values` itself (no copy) when the mask is None (every voxel)."""
    return values if mask is None else values[mask]


def _restrict(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """`mask & valid`, or `mask` when every voxel is valid (None)."""
    return mask if valid is None else mask & valid


@dataclass
class CaseInputs:
    """One case read and checked up to its first model's probabilities (what a caller may read ahead).

    Attributes:
        reference: (1, *spatial) int32 reference labels.
        roi: flat boolean ROI, or None when it is every voxel (no mask indexing then).
        valid: flat boolean non-ignored voxels, or None when there is no ignore label.
        n_roi: number of ROI voxels.
        truth: (C, N) true probabilities, checked and clipped, or None.
        first_prediction: (C, N) probabilities of the first model, shape-checked; `score_case` takes it
            (sets it to None), so that it is freed once scored.
    """

    reference: np.ndarray
    roi: np.ndarray | None
    valid: np.ndarray | None
    n_roi: int
    truth: np.ndarray | None
    first_prediction: np.ndarray | None


def _score_model(task: CaseTask, path: Path, flat: np.ndarray, inputs: CaseInputs) -> ModelCaseStats:
    layout, truth = task.layout, inputs.truth
    reference, roi, valid = inputs.reference.reshape(-1), inputs.roi, inputs.valid
    stats = {name: LabelStats.zeros(task.n_bins, with_truth=truth is not None) for name in layout.names}
    top = BinnedStats.zeros(task.n_bins) if layout.softmax else None
    for chunk in _chunks(reference.size, layout.n_channels):
        values = _checked_chunk(path, flat, chunk, layout.softmax)
        chunk_reference = reference[chunk]
        chunk_roi = None if roi is None else roi[chunk]
        chunk_valid = None if valid is None else valid[chunk]
        if layout.softmax:
            confidence, correct, segmentation = top_label_inputs(values, chunk_reference)
            top = top.merge(
                binned_stats(_select(confidence, chunk_roi), _select(correct, chunk_roi), task.n_bins)
            )
        else:
            segmentation = layout.segmentation(values)
        for index, name in enumerate(layout.names):
            channel = layout.channels[index]
            reference_mask = layout.member_mask(index, chunk_reference)
            counts = confusion_counts(
                _restrict(layout.member_mask(index, segmentation), chunk_valid),
                _restrict(reference_mask, chunk_valid),
            )
            stats[name] = stats[name].merge(
                label_stats(
                    _select(values[channel], chunk_roi),
                    _select(reference_mask, chunk_roi),
                    task.n_bins,
                    truth=None if truth is None else _select(truth[channel, chunk], chunk_roi),
                    counts=counts,
                    eps=task.eps,
                )
            )
    return ModelCaseStats(labels=stats, top_label=top)


def _read_truth(path: Path, expected: tuple[int, ...], layout: LabelLayout) -> np.ndarray:
    truth = _load_checked(path, expected, layout)
    for chunk in _chunks(truth.shape[1], layout.n_channels):
        _checked_chunk(path, truth, chunk, layout.softmax)
    return np.clip(truth, 0.0, 1.0, out=truth if truth.flags.writeable else None)


def read_case(task: CaseTask) -> CaseInputs:
    """Read and check a case's reference, mask and truth, and read its first model's probabilities.

    Safe to run in a background thread (no shared state); the value checks of the probabilities
    happen while they are scored (`score_case`).

    Raises:
        ReportError: as `evaluate_case`, for everything read here.
    """
    files, layout = task.files, task.layout
    reference = _read_reference(task)
    mask = None
    if task.roi.kind == "mask":
        mask = read_label_image(task.reader_class, files.mask)
        if mask.shape != reference.shape:
            raise ReportError(
                f"{files.mask}: mask shape {mask.shape} does not match the reference's {reference.shape}"
            )
    roi = roi_mask(reference, task.roi, layout.ignore_label, mask).reshape(-1)
    del mask
    n_roi = int(np.count_nonzero(roi))
    valid = None if layout.ignore_label is None else (reference != layout.ignore_label).reshape(-1)
    expected = (layout.n_channels, *reference.shape[1:])
    truth = None if files.truth is None else _read_truth(files.truth, expected, layout)
    first = _load_checked(files.predictions[0], expected, layout) if files.predictions else None
    return CaseInputs(reference, None if n_roi == roi.size else roi, valid, n_roi, truth, first)


def score_case(task: CaseTask, inputs: CaseInputs) -> CaseResult:
    """Every model's statistics on a case read by `read_case` (the other models' files are read here).

    Raises:
        ReportError: as `evaluate_case`, for the probabilities' values and the other models' files.
    """
    expected = (task.layout.n_channels, *inputs.reference.shape[1:])
    models = {}
    for position, (model, path) in enumerate(zip(task.models, task.files.predictions)):
        if position == 0:
            flat, inputs.first_prediction = inputs.first_prediction, None
        else:
            flat = _load_checked(path, expected, task.layout)
        models[model] = _score_model(task, path, flat, inputs)
        del flat
    return CaseResult(case=task.files.case, n_roi=inputs.n_roi, models=models)


def evaluate_case(task: CaseTask) -> CaseResult:
    """Check one case's files and return every model's statistics on it (`read_case`, then `score_case`).

    Raises:
        ReportError: unreadable files, shape, axis order or channel mismatches, unknown reference labels,
            NaN/inf, probabilities outside [0, 1], softmax channels not summing to 1.
    """
    return score_case(task, read_case(task))
