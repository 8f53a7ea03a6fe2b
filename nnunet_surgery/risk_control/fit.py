"""`fit_conformal`: the conformal FNR threshold of every label or region from nnU-Net's validation cases.

Cases are read as every command reads them (`cases.prepare_case`: memory-safe npz, shapes and label values
checked; probabilities checked chunk by chunk with `valid_probabilities`). Pass 1 streams every case into
exact per-case counts (`conformal.case_counts`, merged per case, weighted into `FnrStats`, merged over
cases in case order); where `locate_crossing` leaves a coarse bin open, pass 2 reads the cases again for
that bin only (`case_bin_counts`). Memory holds one case (two at `-np 1`, reading ahead) and statistics of
a fixed size, whatever the number of cases; the result does not depend on `-np`. `conformal.fit_fnr_threshold`
is the serial reference of the same two passes. Voxels of nnU-Net's ignore label are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.cases import (
    CaseTask,
    InputError,
    LabelLayout,
    PreparedCase,
    check_processes,
    collect_pooled_cases,
    iterate_cases,
    load_dataset_json,
    prepare_case,
    reader_for,
    valid_probabilities,
    voxel_chunks,
)
from nnunet_surgery.conformal import (
    BinFnrStats,
    CaseBinCounts,
    CaseCounts,
    EmptyReferences,
    FnrStats,
    case_bin_counts,
    case_counts,
    check_alpha,
    check_empty_references,
    conformal_threshold,
    locate_crossing,
)
from nnunet_surgery.conformal.document import ConformalDocument, conformal_document

__all__ = ["ConformalTask", "case_statistics", "fit_conformal", "select_labels"]


@dataclass(frozen=True)
class ConformalTask:
    """One case in one pass; picklable for a worker process.

    Attributes:
        case: the case's files and how to read them (one prediction).
        entries: indices into `case.layout.names` of the labels or regions fitted.
        bins: None in pass 1; in pass 2, per entry, the coarse bin to resolve (None: decided by pass 1).
    """

    case: CaseTask
    entries: tuple[int, ...]
    bins: tuple[int | None, ...] | None = None


def _finish(task: ConformalTask, prepared: PreparedCase) -> tuple[FnrStats | BinFnrStats | None, ...]:
    """One case's statistics per entry, from its voxels one chunk at a time (every channel checked once)."""
    layout, path = task.case.layout, task.case.files.predictions[0][0]
    reference, flat = prepared.reference, prepared.first
    del prepared
    bins = task.bins
    if bins is None:
        totals: list = [CaseCounts.zeros() for _ in task.entries]
    else:
        totals = [None if b is None else CaseBinCounts.zeros(b) for b in bins]
    for chunk in voxel_chunks(flat.shape[1], layout.n_channels):
        probabilities = valid_probabilities(path, flat[:, chunk], softmax=layout.softmax)
        labels = reference.labels[chunk]
        if reference.valid is not None:  # nnU-Net's ignore label: neither reference nor background
            keep = reference.valid[chunk]
            probabilities, labels = probabilities[:, keep], labels[keep]
        for slot, index in enumerate(task.entries):
            probability = probabilities[layout.channels[index]]
            member = layout.member_mask(index, labels)
            if bins is None:
                totals[slot] = totals[slot].merge(case_counts(probability, member))
            elif bins[slot] is not None:
                totals[slot] = totals[slot].merge(case_bin_counts(probability, member, bins[slot]))
    if bins is None:
        return tuple(FnrStats.of_case(total) for total in totals)
    return tuple(None if total is None else BinFnrStats.of_case(total) for total in totals)


def _prepare(task: ConformalTask) -> PreparedCase:
    return prepare_case(task.case)


def case_statistics(task: ConformalTask) -> tuple[FnrStats | BinFnrStats | None, ...]:
    """Read one case and return its pass-1 (`FnrStats`) or pass-2 (`BinFnrStats`, None where no bin is
    open) statistics per entry.

    Raises:
        InputError: as `cases.prepare_case`, or invalid probability values, naming the file.
    """
    return _finish(task, _prepare(task))


def _case_name(task: ConformalTask) -> str:
    return task.case.files.case


def _merged(tasks: list[ConformalTask], initial: list, num_processes: int, desc: str, progress: bool) -> list:
    """Every case's statistics merged per entry, in case order."""
    totals = list(initial)
    results = iterate_cases(
        case_statistics,
        tasks,
        num_processes,
        _case_name,
        desc=desc,
        progress=progress,
        split=(_prepare, _finish),
    )
    for result in results:
        totals = [
            total if stats is None else total.merge(stats)
            for total, stats in zip(totals, result, strict=True)
        ]
    return totals


def select_labels(layout: LabelLayout, names: Sequence[str] | None) -> tuple[int, ...]:
    """Indices of `names` in the layout (all labels or regions when None), in channel order.

    Raises:
        InputError: an unknown or repeated name, naming `--labels`.
    """
    if names is None:
        return tuple(range(len(layout.names)))
    unknown = [name for name in names if name not in layout.names]
    if unknown or len(set(names)) != len(names) or not names:
        raise InputError(
            f"--labels: expected distinct names of dataset.json's labels or regions ({', '.join(layout.names)}), "
            f"but got {list(names)}"
        )
    return tuple(sorted(layout.names.index(name) for name in names))


def fit_conformal(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    *,
    alpha: float,
    labels: Sequence[str] | None = None,
    empty_references: EmptyReferences = "count",
    num_processes: int = 1,
    progress: bool = False,
) -> ConformalDocument:
    """Fit conformal risk control for the per-case FNR of {p >= t}, per label or region.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}` (may hold more cases than the predictions).
        pred_folders: folders of `CASE.npz` (each fold's `validation/` of `nnUNetv2_train --npz`), a case in
            one folder only: the calibration set.
        dataset_json: the dataset's dataset.json.
        alpha: the target risk in (0, 1).
        labels: names of the labels or regions to fit (default: all).
        empty_references: "count" (the method as stated) or "exclude" (`conformal.EmptyReferences`).
        num_processes: worker processes (1: in this process, reading ahead in a thread).
        progress: progress bars on stderr.

    Raises:
        InputError: any bad input, in one line, before anything is written.
    """
    try:
        alpha = check_alpha(alpha)
        empty_references = check_empty_references(empty_references)
    except ValueError as error:
        option = "--alpha" if "alpha" in str(error) else "--empty-references"
        raise InputError(f"{option}: {error}") from None
    if not pred_folders:
        raise InputError("VAL_PRED_FOLDER: give at least one folder of validation predictions")
    check_processes(num_processes)
    dataset = load_dataset_json(dataset_json)
    layout = dataset.layout
    entries = select_labels(layout, labels)
    cases = collect_pooled_cases(gt_folder, list(pred_folders), dataset.file_ending)
    reader_class = reader_for(dataset, cases[0].reference)
    tasks = [CaseTask(files, reader_class, layout) for files in cases]
    processes = min(num_processes, len(tasks))
    stats = _merged(
        [ConformalTask(case, entries) for case in tasks],
        [FnrStats.zeros() for _ in entries],
        processes,
        "conformal pass 1",
        progress,
    )
    try:
        bins = tuple(locate_crossing(s, alpha, empty_references=empty_references).bin for s in stats)
        refinements: list = [None] * len(entries)
        if any(b is not None for b in bins):
            initial = [None if b is None else BinFnrStats.zeros(b) for b in bins]
            refinements = _merged(
                [ConformalTask(case, entries, bins) for case in tasks],
                initial,
                processes,
                "conformal pass 2",
                progress,
            )
        fits = [
            conformal_threshold(s, alpha, refinement, empty_references=empty_references)
            for s, refinement in zip(stats, refinements, strict=True)
        ]
    except ValueError as error:
        raise InputError(f"{', '.join(map(str, pred_folders))}: {error}") from None
    content = dataset.content
    return conformal_document(
        [
            (layout.names[index], layout.channels[index], layout.members[index], fit)
            for index, fit in zip(entries, fits, strict=True)
        ],
        dataset={
            "labels": content["labels"],
            "regions_class_order": content.get("regions_class_order"),
            "file_ending": dataset.file_ending,
            "n_channels": layout.n_channels,
            "region_based": layout.region_based,
            "overwrite_image_reader_writer": content.get("overwrite_image_reader_writer"),
        },
        calibration={
            "gt_folder": str(Path(gt_folder)),
            "prediction_folders": [str(Path(folder)) for folder in pred_folders],
            "n_cases": len(tasks),
        },
    )
