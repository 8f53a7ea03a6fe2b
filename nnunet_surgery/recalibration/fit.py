"""`fit_calibrator`: temperature or vector scaling fitted on nnU-Net's out-of-fold validation probabilities.

Cases are read as every command reads them (the case layer: `cases.prepare_case`, memory-safe npz
reading, shape and value checks, the ROI): every pass over the cases sums the exact NLL, gradient and
Hessian at one parameter vector (`objective.newton_stats`), and damped Newton's method (`newton.minimise`)
needs a handful of passes. Memory holds one case (two at `-np 1`, which reads the next case ahead)
whatever the number of cases; the sums are merged in case order, so the result does not depend on `-np`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import (
    CaseTask,
    InputError,
    LabelLayout,
    PreparedCase,
    RoiSpec,
    WorkerPool,
    check_processes,
    check_roi,
    collect_pooled_cases,
    load_dataset_json,
    prepare_case,
    read_ahead,
    reader_for,
    valid_probabilities,
    voxel_chunks,
)
from nnunet_surgery.recalibration.calibrator import Calibrator, FitSummary
from nnunet_surgery.recalibration.logits import logits_from_probabilities, saturation_bounds
from nnunet_surgery.recalibration.newton import FitError, minimise
from nnunet_surgery.recalibration.objective import METHODS, NewtonStats, Parameters, newton_stats, voxels

__all__ = ["FIT_CHUNK_ELEMENTS", "CaseFit", "FitTask", "fit_calibrator", "fit_case"]

#: Values (channels x voxels) per chunk: float64 temporaries of 2 MB stay in the CPU's cache, which
#: matters as every chunk is reused for several parameter vectors.
FIT_CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class FitTask:
    """One case at a few parameter vectors; picklable for a worker process.

    Attributes:
        case: the case's files and how to read them (one prediction).
        parameters: method and channel layout.
        thetas: `(P,)` parameter vectors to evaluate at.
    """

    case: CaseTask
    parameters: Parameters
    thetas: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class CaseFit:
    """One case's sums at each parameter vector of its task.

    Attributes:
        stats: NLL, gradient and Hessian summed over the case's ROI voxels, per parameter vector.
        saturated: probability values clamped when the logits were recovered.
        values: probability values used (ROI voxels x channels).
    """

    stats: tuple[NewtonStats, ...]
    saturated: int
    values: int


def _targets(layout: LabelLayout, labels: np.ndarray) -> np.ndarray:
    """`(N,)` class per voxel (softmax: labels are the channels), or `(R, N)` region membership."""
    if layout.softmax:
        return labels
    return np.stack([layout.member_mask(index, labels) for index in range(len(layout.names))])


def _finish(task: FitTask, prepared: PreparedCase) -> CaseFit:
    """Sum the statistics of a prepared case, chunk by chunk."""
    layout, parameters = task.case.layout, task.parameters
    path = task.case.files.predictions[0][0]
    reference, flat = prepared.reference, prepared.first
    del prepared
    low, high = saturation_bounds(flat.dtype)
    totals = [NewtonStats.zeros(parameters.size) for _ in task.thetas]
    saturated = values = 0
    for chunk in voxel_chunks(flat.shape[1], layout.n_channels, FIT_CHUNK_ELEMENTS):
        probabilities = valid_probabilities(path, flat[:, chunk], softmax=layout.softmax)
        labels = reference.labels[chunk]
        if reference.roi is not None:
            keep = reference.roi[chunk]
            probabilities, labels = probabilities[:, keep], labels[keep]
        saturated += int(np.count_nonzero(probabilities < low))
        if not layout.softmax:
            saturated += int(np.count_nonzero(probabilities > high))
        values += probabilities.size
        logits = logits_from_probabilities(probabilities, softmax=layout.softmax)
        data = voxels(parameters, logits, _targets(layout, labels))
        totals = [
            total.merge(newton_stats(parameters, theta, data))
            for total, theta in zip(totals, task.thetas, strict=True)
        ]
    return CaseFit(tuple(totals), saturated, values)


def _prepare(task: FitTask) -> PreparedCase:
    return prepare_case(task.case)


def fit_case(task: FitTask) -> CaseFit:
    """Read one case (reference, ROI, probabilities; all checked) and sum its statistics at `task.thetas`.

    Raises:
        InputError: as `cases.prepare_case`, for any file of the case.
    """
    return _finish(task, _prepare(task))


def _case_name(task: FitTask) -> str:
    return task.case.files.case


class _Passes:
    """Evaluates the summed statistics at a few parameter vectors: one pass over every case."""

    def __init__(
        self, tasks: Sequence[CaseTask], parameters: Parameters, pool: WorkerPool | None, progress: bool
    ) -> None:
        self.tasks, self.parameters, self.pool, self.progress = tasks, parameters, pool, progress
        self.saturated = self.values = 0
        self.count = 0

    def _results(self, tasks: list[FitTask]) -> Iterator[CaseFit]:
        if self.pool is None:
            return read_ahead(_prepare, _finish, tasks)
        return self.pool.map(fit_case, tasks, _case_name)

    def __call__(self, thetas: list[np.ndarray]) -> list[NewtonStats]:
        from tqdm import tqdm

        self.count += 1
        tasks = [FitTask(case, self.parameters, tuple(thetas)) for case in self.tasks]
        totals = [NewtonStats.zeros(self.parameters.size) for _ in thetas]
        saturated = values = 0
        bar = tqdm(
            self._results(tasks),
            total=len(tasks),
            desc=f"fit pass {self.count}",
            unit="case",
            file=sys.stderr,
            disable=None if self.progress else True,
            leave=False,
        )
        for result in bar:
            totals = [total.merge(stats) for total, stats in zip(totals, result.stats, strict=True)]
            saturated += result.saturated
            values += result.values
        self.saturated, self.values = saturated, values
        return totals


def _report_pass(progress: bool) -> Callable[[int, np.ndarray, NewtonStats], None] | None:
    if not progress:
        return None

    def report(passes: int, theta: np.ndarray, stats: NewtonStats) -> None:
        nll = max(stats.nll / max(stats.voxels, 1), 0.0)  # >= 0; rounding can leave -1e-16
        shown = ", ".join(f"{value:.4g}" for value in theta[:6]) + (" ..." if len(theta) > 6 else "")
        print(f"fit pass {passes}: NLL {nll:.6g} nats/voxel at [{shown}]", file=sys.stderr)

    return report


def fit_calibrator(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    dataset_json: str | Path,
    *,
    method: str = "temperature",
    roi: RoiSpec | str = "all",
    num_processes: int = 1,
    progress: bool = False,
) -> Calibrator:
    """Fit temperature or vector scaling on every case of `pred_folders`, minimising the NLL over ROI voxels.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}` (may hold more cases than the predictions).
        pred_folders: folders of `CASE.npz` (e.g. each fold's `validation/` of `nnUNetv2_train --npz`); a case
            may be in one folder only.
        dataset_json: the dataset's dataset.json.
        method: "temperature" (one T) or "vector" (a temperature and a bias per channel or region).
        roi: voxels fitted on: `all`, `band:D` or `mask:FOLDER`, as the report's `--roi`.
        num_processes: worker processes (1: in this process, reading ahead in a thread).
        progress: progress bars and one line per pass on stderr.

    Returns:
        The calibrator, with its fit summary.

    Raises:
        InputError: any bad input, or a fit that cannot give a calibrator, in one line.
    """
    if method not in METHODS:
        raise InputError(f"--method: expected one of {', '.join(METHODS)}, but got {method!r}")
    if not pred_folders:
        raise InputError("VAL_PRED_FOLDER: give at least one folder of validation predictions")
    check_processes(num_processes)
    roi = check_roi(roi)
    dataset = load_dataset_json(dataset_json)
    layout = dataset.layout
    cases = collect_pooled_cases(
        gt_folder,
        list(pred_folders),
        dataset.file_ending,
        mask_folder=roi.folder if roi.kind == "mask" else None,
    )
    reader_class = reader_for(dataset, cases[0].reference)
    tasks = [CaseTask(files, reader_class, layout, roi) for files in cases]
    parameters = Parameters(method, layout.n_channels, layout.softmax)
    processes = min(num_processes, len(tasks))
    with WorkerPool(processes) as pool:
        passes = _Passes(tasks, parameters, pool if processes > 1 else None, progress)
        try:
            result = minimise(passes, parameters, on_pass=_report_pass(progress))
        except FitError as error:
            raise InputError(f"{', '.join(map(str, pred_folders))}: {error}") from None
    scale, bias = parameters.scale_bias(result.theta)
    summary = FitSummary(
        cases=len(tasks),
        voxels=result.final.voxels,
        nll_before=result.start.nll / result.start.voxels,
        nll_after=result.final.nll / result.final.voxels,
        passes=result.passes,
        newton_decrement=result.decrement,
        saturated_fraction=passes.saturated / max(passes.values, 1),
        roi=str(roi),
        folders=tuple(str(Path(folder)) for folder in pred_folders),
        at_bound=parameters.at_bound(result.theta),
    )
    return Calibrator(
        method=method,
        temperatures=tuple(float(1.0 / a) for a in scale),
        biases=tuple(float(b) for b in bias),
        n_channels=layout.n_channels,
        region_based=layout.region_based,
        names=layout.names,
        file_ending=dataset.file_ending,
        fit=summary,
    )
