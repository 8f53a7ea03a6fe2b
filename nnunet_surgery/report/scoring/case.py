"""The pure per-case function: read and check one case's files, return every model's statistics on it.

Runs in worker processes, so it imports neither torch nor nnU-Net's label handling; the reader class
travels in the task. Memory: the reference, the ROI, one probability map (plus the truth map, if any)
and chunk-sized temporaries; the probabilities are scored in chunks of about CHUNK_ELEMENTS values.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import (
    MONAI_BINS,
    NLL_EPS,
    BinnedStats,
    LabelStats,
    ProbabilityError,
    binned_stats,
    check_probabilities,
    confusion_counts,
    fine_factor,
    label_stats,
    monai_binned_stats,
    top_label_inputs,
)
from nnunet_surgery.cases import (
    CaseFiles,
    LabelLayout,
    ReportError,
    check_probability_shape,
    load_probabilities,
    read_label_image,
    roi_mask,
)
from nnunet_surgery.report.inputs import ReportOptions

__all__ = [
    "CHUNK_ELEMENTS",
    "CaseStats",
    "CaseTask",
    "ModelCaseStats",
    "PreparedCase",
    "checked_chunk",
    "finish_case",
    "prepare_case",
    "score_case",
    "voxel_chunks",
]

# values (channels x voxels) scored at once: float64 temporaries of a few MB stay near the cache, which
# scores a 2 x 160^3 case in 0.70x the time of 2^22-value chunks; smaller chunks lose more to the fixed
# cost of each chunk's 2^16-bin fine histogram (2^18: 1.1x, 2^16: 1.9x)
CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class CaseTask:
    """Everything `score_case` needs; picklable for a spawn pool.

    Attributes:
        files: the case's files (one prediction per model, in model order).
        reader_class: nnU-Net reader/writer class for references and masks.
        layout: label / region channels.
        options: bins and ROI (checked).
    """

    files: CaseFiles
    reader_class: type
    layout: LabelLayout
    options: ReportOptions


@dataclass(frozen=True)
class ModelCaseStats:
    """One model's sufficient statistics on one case (or merged over cases).

    Attributes:
        labels: per foreground label or region, in `LabelLayout.names` order (with fine statistics for
            the equal-mass ECE).
        top_label: top-label statistics (softmax datasets), else None.
        monai: per label, the reliability statistics in MONAI's bins (`--preset monai`), else None.
    """

    labels: tuple[LabelStats, ...]
    top_label: BinnedStats | None
    monai: tuple[BinnedStats, ...] | None = None

    @classmethod
    def zeros(cls, layout: LabelLayout, options: ReportOptions, *, with_truth: bool) -> ModelCaseStats:
        """Empty statistics (the identity of `merge`)."""
        n_bins = options.n_bins
        labels = tuple(
            LabelStats.zeros(n_bins, with_truth=with_truth, fine_factor=fine_factor(n_bins))
            for _ in layout.names
        )
        monai = (
            None if options.preset != "monai" else tuple(BinnedStats.zeros(MONAI_BINS) for _ in layout.names)
        )
        return cls(labels, BinnedStats.zeros(n_bins) if layout.softmax else None, monai)

    def merge(self, other: ModelCaseStats) -> ModelCaseStats:
        """Statistics of the union of both voxel sets."""
        return ModelCaseStats(
            _merge_all(self.labels, other.labels),
            None if self.top_label is None else self.top_label.merge(other.top_label),
            None if self.monai is None else _merge_all(self.monai, other.monai),
        )

    def without_fine(self) -> ModelCaseStats:
        """The same statistics without the fine histograms (what the bootstrap keeps per case)."""
        return replace(self, labels=tuple(replace(label, fine=None) for label in self.labels))


def _merge_all(mine: tuple, theirs: tuple) -> tuple:
    return tuple(a.merge(b) for a, b in zip(mine, theirs, strict=True))


@dataclass(frozen=True)
class CaseStats:
    """Statistics of one case for every model (in model order); `n_roi` voxels were scored."""

    case: str
    n_roi: int
    models: tuple[ModelCaseStats, ...]


@dataclass(frozen=True)
class _Reference:
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


def _read_reference(task: CaseTask) -> _Reference:
    files, layout, spec = task.files, task.layout, task.options.roi
    reference = _read_labels(task)
    mask = None
    if spec.kind == "mask":
        # refused from its header (before its pixels are read) unless it has the reference's shape
        mask = read_label_image(task.reader_class, files.mask, expected_shape=reference.shape)
    roi = roi_mask(reference, spec, layout.ignore_label, mask).reshape(-1)
    n_roi = int(np.count_nonzero(roi))
    valid = None if layout.ignore_label is None else (reference != layout.ignore_label).reshape(-1)
    return _Reference(
        reference.reshape(-1), reference.shape, None if n_roi == roi.size else roi, valid, n_roi
    )


def voxel_chunks(n_voxels: int, n_channels: int, elements: int = CHUNK_ELEMENTS) -> Iterator[slice]:
    """Consecutive slices covering `n_voxels` voxel positions of a `(n_channels, n_voxels)` array, each of
    about `elements` values (at least 4096 voxels), so that per-chunk temporaries stay small."""
    step = max(4096, elements // max(n_channels, 1))
    for start in range(0, n_voxels, step):
        yield slice(start, min(start + step, n_voxels))


def checked_chunk(path: Path, flat: np.ndarray, chunk: slice, softmax: bool) -> np.ndarray:
    """`flat[:, chunk]` of `(C, N)` probabilities read from `path`, checked (`check_probabilities`) and
    clipped into [0, 1] where rounding put it a hair outside.

    Raises:
        ReportError: NaN/inf, values outside [0, 1], softmax sums off 1, naming `path`.
    """
    values = flat[:, chunk]
    try:
        low, high = check_probabilities(values, softmax=softmax)
    except ProbabilityError as error:
        raise ReportError(f"{path}: {error}") from None
    return values if low >= 0.0 and high <= 1.0 else np.clip(values, 0.0, 1.0)


def _load_checked(path: Path, reference: _Reference, layout: LabelLayout) -> np.ndarray:
    """(C, N) probabilities of `path`, shape-checked against the reference (values: see `checked_chunk`)."""
    expected = (layout.n_channels, *reference.shape[1:])
    probabilities = load_probabilities(
        path, check_shape=lambda shape: check_probability_shape(path, shape, expected, layout)
    )
    return np.ascontiguousarray(probabilities).reshape(expected[0], -1)


def _load_model(paths: tuple[Path, ...], reference: _Reference, layout: LabelLayout) -> np.ndarray:
    """(C, N) probabilities of one model: its one file, or the mean of an ensemble's members (as
    `nnUNetv2_ensemble` averages them), each member's values checked before it is added."""
    if len(paths) == 1:
        return _load_checked(paths[0], reference, layout)
    total = None
    for path in paths:
        member = _load_checked(path, reference, layout)
        for chunk in voxel_chunks(member.shape[1], layout.n_channels):
            checked_chunk(path, member, chunk, layout.softmax)
        total = member.astype(np.float64) if total is None else total + member
        del member
    return (total / len(paths)).astype(np.float32)


def _read_truth(path: Path, reference: _Reference, layout: LabelLayout) -> np.ndarray:
    truth = _load_checked(path, reference, layout)
    for chunk in voxel_chunks(truth.shape[1], layout.n_channels):
        checked_chunk(path, truth, chunk, layout.softmax)
    return np.clip(truth, 0.0, 1.0, out=truth if truth.flags.writeable else None)


def _select(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """`values[mask]`, or `values` itself (no copy) when the mask is None (every voxel)."""
    return values if mask is None else values[mask]


def _restrict(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """`mask & valid`, or `mask` when every voxel is valid (None)."""
    return mask if valid is None else mask & valid


def _score_model(
    task: CaseTask, path: Path, reference: _Reference, truth: np.ndarray | None, flat: np.ndarray
) -> ModelCaseStats:
    """One model's statistics on a case from its (C, N) probabilities `flat`, read from `path`."""
    layout, n_bins = task.layout, task.options.n_bins
    stats = ModelCaseStats.zeros(layout, task.options, with_truth=truth is not None)
    labels, top = list(stats.labels), stats.top_label
    monai = None if stats.monai is None else list(stats.monai)
    for chunk in voxel_chunks(reference.labels.size, layout.n_channels):
        values = checked_chunk(path, flat, chunk, layout.softmax)
        chunk_reference = reference.labels[chunk]
        chunk_roi = None if reference.roi is None else reference.roi[chunk]
        chunk_valid = None if reference.valid is None else reference.valid[chunk]
        if layout.softmax:
            confidence, correct, segmentation = top_label_inputs(values, chunk_reference)
            top = top.merge(binned_stats(_select(confidence, chunk_roi), _select(correct, chunk_roi), n_bins))
        else:
            segmentation = layout.segmentation(values)
        for index, channel in enumerate(layout.channels):
            reference_mask = layout.member_mask(index, chunk_reference)
            counts = confusion_counts(
                _restrict(layout.member_mask(index, segmentation), chunk_valid),
                _restrict(reference_mask, chunk_valid),
            )
            labels[index] = labels[index].merge(
                label_stats(
                    _select(values[channel], chunk_roi),
                    _select(reference_mask, chunk_roi),
                    n_bins,
                    truth=None if truth is None else _select(truth[channel, chunk], chunk_roi),
                    counts=counts,
                    eps=NLL_EPS,
                    fine_factor=fine_factor(n_bins),
                )
            )
            if monai is not None:
                monai[index] = monai[index].merge(
                    monai_binned_stats(
                        _select(values[channel], chunk_roi), _select(reference_mask, chunk_roi)
                    )
                )
    return ModelCaseStats(tuple(labels), top, None if monai is None else tuple(monai))


@dataclass(frozen=True)
class PreparedCase:
    """A case read and checked up to its first model's probabilities (what `prepare_case` reads ahead).

    Attributes:
        reference: the reference and the voxel sets it defines.
        truth: (C, N) true probabilities, checked and clipped, or None.
        first: (C, N) probabilities of the first model, shape-checked (values are checked as scored).
    """

    reference: _Reference
    truth: np.ndarray | None
    first: np.ndarray


def prepare_case(task: CaseTask) -> PreparedCase:
    """Read a case's reference (and mask, and truth) and its first model's probabilities.

    Everything that touches nnU-Net's label-image reader happens here, so a caller can run it in one
    background thread while the previous case is scored (`finish_case`).

    Raises:
        ReportError: as `score_case`, for everything read here.
    """
    files = task.files
    reference = _read_reference(task)
    truth = None if files.truth is None else _read_truth(files.truth, reference, task.layout)
    return PreparedCase(reference, truth, _load_model(files.predictions[0], reference, task.layout))


def finish_case(task: CaseTask, prepared: PreparedCase) -> CaseStats:
    """Score every model on a prepared case; the other models' probabilities are read here, one at a time.

    Raises:
        ReportError: as `score_case`, for the probabilities' values and the other models' files.
    """
    files, reference, truth = task.files, prepared.reference, prepared.truth
    models = [_score_model(task, files.predictions[0][0], reference, truth, prepared.first)]
    del prepared
    for paths in files.predictions[1:]:
        probabilities = _load_model(paths, reference, task.layout)
        models.append(_score_model(task, paths[0], reference, truth, probabilities))
    return CaseStats(case=files.case, n_roi=reference.n_roi, models=tuple(models))


def score_case(task: CaseTask) -> CaseStats:
    """Check one case's files and return every model's statistics on it (`prepare_case`, then `finish_case`).

    Reads the reference (and mask, and truth), then one model's probabilities at a time.

    Raises:
        ReportError: unreadable files, shape, axis order or channel mismatches, unknown reference labels,
            NaN/inf, probabilities outside [0, 1], softmax channels not summing to 1.
    """
    return finish_case(task, prepare_case(task))
