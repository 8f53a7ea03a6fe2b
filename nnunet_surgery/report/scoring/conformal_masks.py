"""`report --conformal`: what each model's conformal masks achieve on the report's cases.

A stage of its own after the calibration scoring: every case is read again (`cases.prepare_case`, each
further model with `cases.load_model`), and per model and fitted label its `conformal.MaskSums` (mask,
nnU-Net's hard segmentation, reference and missed voxels, the case's FNR) are computed chunk by chunk over
every voxel but nnU-Net's ignore label (the voxels the fit saw; the report's --roi is for the calibration
metrics). Per model and label, `conformal.mask_metrics` of the summed rows gives the achieved mean FNR and
the mask size relative to the segmentation and to the reference, each with its case-bootstrap interval
(`calibration.resampling.estimate_with_interval`, the report's --bootstrap and seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_surgery.calibration.resampling import Estimate, estimate_with_interval, point_values
from nnunet_surgery.cases import (
    CaseTask,
    PreparedCase,
    iterate_cases,
    load_model,
    prepare_case,
    valid_probabilities,
    voxel_chunks,
)
from nnunet_surgery.conformal import MaskSums, case_mask_counts, mask_metrics
from nnunet_surgery.conformal.document import ConformalDocument

__all__ = ["ConformalModel", "ConformalScores", "ConformalTask", "conformal_case", "score_conformal"]


@dataclass(frozen=True)
class ConformalTask:
    """One case; picklable for a worker process.

    Attributes:
        case: its files (a prediction per model) and how to read them.
        labels: per model, (layout index, threshold) of each label its predictor fitted.
    """

    case: CaseTask
    labels: tuple[tuple[tuple[int, float], ...], ...]


def _model_sums(task: ConformalTask, model: int, path, reference, flat: np.ndarray) -> tuple[MaskSums, ...]:
    """Per fitted label of model `model`, the case's MaskSums under its probabilities (C, N)."""
    layout, fitted = task.case.layout, task.labels[model]
    counts = [None] * len(fitted)
    for chunk in voxel_chunks(flat.shape[1], layout.n_channels):
        probabilities = valid_probabilities(path, flat[:, chunk], softmax=layout.softmax)
        labels = reference.labels[chunk]
        if reference.valid is not None:
            keep = reference.valid[chunk]
            probabilities, labels = probabilities[:, keep], labels[keep]
        segmentation = layout.segmentation(probabilities)
        for slot, (index, threshold) in enumerate(fitted):
            part = case_mask_counts(
                probabilities[layout.channels[index]],
                layout.member_mask(index, labels),
                layout.member_mask(index, segmentation),
                threshold,
            )
            counts[slot] = part if counts[slot] is None else counts[slot].merge(part)
    return tuple(MaskSums.of_case(total) for total in counts)


def _finish(task: ConformalTask, prepared: PreparedCase) -> tuple[tuple[MaskSums, ...], ...]:
    files, reference = task.case.files, prepared.reference
    models = [_model_sums(task, 0, files.predictions[0][0], reference, prepared.first)]
    del prepared
    for model, paths in enumerate(files.predictions[1:], start=1):
        probabilities = load_model(paths, reference, task.case.layout)
        models.append(_model_sums(task, model, paths[0], reference, probabilities))
    return tuple(models)


def _prepare(task: ConformalTask) -> PreparedCase:
    return prepare_case(task.case)


def conformal_case(task: ConformalTask) -> tuple[tuple[MaskSums, ...], ...]:
    """Per model, per fitted label, the case's `MaskSums`.

    Raises:
        InputError: as `cases.prepare_case` and `cases.load_model`, or invalid probability values.
    """
    return _finish(task, _prepare(task))


def _case_name(task: ConformalTask) -> str:
    return task.case.files.case


@dataclass(frozen=True)
class ConformalModel:
    """One model's achieved numbers per label of its predictor.

    Attributes:
        name: the model.
        document: its conformal predictor.
        source: the predictor's file.
        labels: label -> metric (`conformal.mask_metrics`: mean_fnr, pooled_fnr, size_to_segmentation,
            size_to_reference) -> Estimate (value, and the bootstrap interval; NaN bounds without bootstrap).
        sums: label -> the MaskSums over all cases.
    """

    name: str
    document: ConformalDocument
    source: str
    labels: dict[str, dict[str, Estimate]]
    sums: dict[str, MaskSums]


@dataclass(frozen=True)
class ConformalScores:
    """`report --conformal`'s results: what each model achieves with its predictor.

    Attributes:
        n_cases: cases scored.
        models: per model, in model order.
        bootstrap: resamples of the intervals (0: none).
    """

    n_cases: int
    models: tuple[ConformalModel, ...]
    bootstrap: int


def _estimates(rows: list[MaskSums], rule: str, bootstrap: int, seed: int) -> dict[str, Estimate]:
    from nnunet_surgery.calibration.bootstrap import Interval

    per_case = {"sums": np.stack([row.vector() for row in rows])}

    def statistic(sums):
        return mask_metrics(sums["sums"], rule)

    if bootstrap > 0 and len(rows) > 1:
        return estimate_with_interval(per_case, statistic, n_resamples=bootstrap, seed=seed)
    return {
        name: Estimate(float(value), Interval(float("nan"), float("nan")))
        for name, value in point_values(per_case, statistic).items()
    }


def score_conformal(
    cases: tuple[CaseTask, ...],
    model_names: tuple[str, ...],
    predictors: tuple[tuple[str, ConformalDocument], ...],
    *,
    num_processes: int,
    bootstrap: int,
    seed: int,
    progress: bool,
) -> ConformalScores:
    """Every model's conformal masks scored on every case, with case-bootstrap intervals.

    Args:
        cases: the report's cases (a prediction per model, in model order).
        model_names: the models, in order.
        predictors: per model, (file, predictor) whose thresholds it is scored with.
        num_processes, bootstrap, seed: the report's run options.
        progress: show a progress bar.

    Raises:
        InputError: a case's files fail a check, or a worker process died.
    """
    layout = cases[0].layout
    labels = tuple(
        tuple((layout.names.index(label.name), label.threshold) for label in document.labels)
        for _, document in predictors
    )
    tasks = [ConformalTask(case, labels) for case in cases]
    rows = [[[] for _ in fitted] for fitted in labels]
    results = iterate_cases(
        conformal_case,
        tasks,
        num_processes,
        _case_name,
        desc="conformal masks",
        progress=progress,
        split=(_prepare, _finish),
    )
    for result in results:
        for model_rows, model_sums in zip(rows, result, strict=True):
            for label_rows, sums in zip(model_rows, model_sums, strict=True):
                label_rows.append(sums)
    models = []
    for name, (source, document), model_rows in zip(model_names, predictors, rows, strict=True):
        estimates, totals = {}, {}
        for label, label_rows in zip(document.labels, model_rows, strict=True):
            estimates[label.name] = _estimates(label_rows, document.empty_references, bootstrap, seed)
            total = MaskSums()
            for row in label_rows:
                total = total.merge(row)
            totals[label.name] = total
        models.append(ConformalModel(name, document, source, estimates, totals))
    return ConformalScores(len(tasks), tuple(models), bootstrap)
