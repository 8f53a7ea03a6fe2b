"""The pure per-case function: score one case, read through the case layer (`cases.prepare_case`), and
return every model's statistics on it.

Runs in worker processes, so it imports neither torch nor nnU-Net's label handling. Memory: the reference,
the ROI, one probability map (plus the truth map, if any) and chunk-sized temporaries; the probabilities
are scored in chunks of about `cases.CHUNK_ELEMENTS` values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import (
    MONAI_BINS,
    NLL_EPS,
    BinnedStats,
    LabelStats,
    binned_stats,
    confusion_counts,
    fine_factor,
    label_stats,
    monai_binned_stats,
    top_label_inputs,
)
from nnunet_surgery.cases import (
    CaseTask,
    LabelLayout,
    PreparedCase,
    Reference,
    load_model,
    prepare_case,
    valid_probabilities,
    voxel_chunks,
)
from nnunet_surgery.report.inputs import ScoringOptions

__all__ = ["CaseStats", "ModelCaseStats", "ScoreTask", "finish_case", "prepare_score", "score_case"]


@dataclass(frozen=True)
class ScoreTask:
    """Everything `score_case` needs; picklable for a spawn pool.

    Attributes:
        case: how to read the case (its files, reader, layout and ROI).
        options: how to score it (bins, preset).
    """

    case: CaseTask
    options: ScoringOptions


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
    def zeros(cls, layout: LabelLayout, options: ScoringOptions, *, with_truth: bool) -> ModelCaseStats:
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


def _select(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """`values[mask]`, or `values` itself (no copy) when the mask is None (every voxel)."""
    return values if mask is None else values[mask]


def _restrict(mask: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """`mask & valid`, or `mask` when every voxel is valid (None)."""
    return mask if valid is None else mask & valid


def _score_model(
    task: ScoreTask, path: Path, reference: Reference, truth: np.ndarray | None, flat: np.ndarray
) -> ModelCaseStats:
    """One model's statistics on a case from its (C, N) probabilities `flat`, read from `path`."""
    layout, n_bins = task.case.layout, task.options.n_bins
    stats = ModelCaseStats.zeros(layout, task.options, with_truth=truth is not None)
    labels, top = list(stats.labels), stats.top_label
    monai = None if stats.monai is None else list(stats.monai)
    for chunk in voxel_chunks(reference.labels.size, layout.n_channels):
        values = valid_probabilities(path, flat[:, chunk], softmax=layout.softmax)
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


def prepare_score(task: ScoreTask) -> PreparedCase:
    """`cases.prepare_case` of the task's case: what `pool.read_ahead` reads while the previous case is scored."""
    return prepare_case(task.case)


def finish_case(task: ScoreTask, prepared: PreparedCase) -> CaseStats:
    """Score every model on a prepared case; the other models' probabilities are read here, one at a time.

    Raises:
        InputError: as `score_case`, for the probabilities' values and the other models' files.
    """
    files, reference, truth = task.case.files, prepared.reference, prepared.truth
    models = [_score_model(task, files.predictions[0][0], reference, truth, prepared.first)]
    del prepared
    for paths in files.predictions[1:]:
        probabilities = load_model(paths, reference, task.case.layout)
        models.append(_score_model(task, paths[0], reference, truth, probabilities))
    return CaseStats(case=files.case, n_roi=reference.n_roi, models=tuple(models))


def score_case(task: ScoreTask) -> CaseStats:
    """Check one case's files and return every model's statistics on it (`prepare_score`, then `finish_case`).

    Reads the reference (and mask, and truth), then one model's probabilities at a time.

    Raises:
        InputError: unreadable files, shape, axis order or channel mismatches, unknown reference labels,
            NaN/inf, probabilities outside [0, 1], softmax channels not summing to 1.
    """
    return finish_case(task, prepare_score(task))
