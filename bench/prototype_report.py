"""Prototype of a faster per-case scorer for `nnunet-surgery report` (proposal, not the package).

`fast_evaluate_case(task)` returns the same `CaseResult` as `nnunet_surgery.report.case.evaluate_case`
(the same counts; float64 sums equal to ~1e-14) on its fast path: softmax label datasets, `--roi all`, no ignore label,
no truth maps; anything else falls back to `evaluate_case`. `score_folder` runs it over all cases with the
next case's files read and decompressed in a background thread (zlib and SimpleITK release the GIL), so
that loading and scoring overlap.

What it does differently (each item measured by `python bench/prototype_report.py CASE_DIR`):

1. No boolean-mask indexing when the ROI is every voxel: `values[roi]` copies every array it touches.
2. Two channels: `argmax` over axis 0 plus `take_along_axis` (two strided passes) become `p1 > p0` and
   `maximum(p0, p1)` (argmax breaks ties towards channel 0, so does `>`).
3. One validation pass set in float32: min / max of the channels (a NaN or inf fails the range test
   as well, so no separate `isfinite` pass) and min / max of `p0 + p1`; no `np.clip` copy when the
   range is already [0, 1].
4. Bins: `floor(p * n_bins)` in float32 and uint8, corrected by one comparison with the exact lower
   edge (the smallest float32 >= k / n_bins), so the bins are exactly the package's float64 ones, instead
   of five float64 passes; counts and target sums from ONE unweighted `bincount` of `2 * bin + outcome`
   instead of two weighted ones.
5. NLL / Brier keep the package's float64 arithmetic, sharing one float64 copy of p.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nnunet_surgery.calibration import BinnedStats, LabelStats
from nnunet_surgery.calibration.validate import RANGE_ATOL, SUM_ATOL
from nnunet_surgery.report.case import CaseResult, CaseTask, ModelCaseStats, _read_reference, evaluate_case
from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.reading import load_probabilities

__all__ = ["fast_evaluate_case", "make_tasks", "score_folder"]


def make_tasks(gt: Path, pred: Path, dataset_json: Path, n_bins: int) -> list[CaseTask]:
    """The report's tasks for one model, built as `nnunet_surgery.report.pipeline.generate_report` does."""
    from nnunet_surgery.calibration import NLL_EPS
    from nnunet_surgery.report.dataset import load_dataset_json, reader_for
    from nnunet_surgery.report.folders import collect_cases
    from nnunet_surgery.report.roi import parse_roi

    dataset = load_dataset_json(dataset_json)
    cases = collect_cases(gt, [pred], dataset.file_ending, truth_folder=None, mask_folder=None)
    reader_class = reader_for(dataset, cases[0].reference)
    return [
        CaseTask(files, (Path(pred).name,), reader_class, dataset.layout, parse_roi("all"), n_bins, NLL_EPS)
        for files in cases
    ]


def _fast_path(task: CaseTask) -> bool:
    layout = task.layout
    return (
        layout.softmax
        and not layout.region_based
        and layout.n_channels == 2
        and layout.ignore_label is None
        and task.roi.kind == "all"
        and task.files.truth is None
        and len(task.files.predictions) == 1
    )


def lower_edges(n_bins: int) -> np.ndarray:
    """Lower edge of each bin as float32, plus +inf: the smallest float32 >= k / n_bins (exact real edges)."""
    exact = np.arange(0, n_bins + 1, dtype=np.float64) / n_bins
    edges = exact.astype(np.float32)
    low = edges.astype(np.float64) < exact
    edges[low] = np.nextafter(edges[low], np.float32(np.inf))
    edges[-1] = np.inf
    return edges


def bin_index(confidence: np.ndarray, n_bins: int, edges: np.ndarray) -> np.ndarray:
    """floor(p * n_bins) in exact arithmetic for float32 p in [0, 1], as uint8 (n_bins <= 127).

    The float32 product can round up onto an edge k only when p < k / n_bins by less than an ulp, and then
    it is exactly k: only those products are compared with the exact lower edge. p = 1 goes into the last
    bin.
    """
    scaled = np.multiply(confidence, np.float32(n_bins), dtype=np.float32)
    index = scaled.astype(np.uint8)
    suspects = np.flatnonzero(np.equal(scaled, index))  # products that landed exactly on an integer (rare)
    index[suspects] -= confidence[suspects] < edges[index[suspects]]
    np.minimum(index, n_bins - 1, out=index)
    return index


def fast_binned(confidence: np.ndarray, outcome: np.ndarray, n_bins: int, edges: np.ndarray) -> BinnedStats:
    """BinnedStats of float32 confidences in [0, 1] and boolean outcomes."""
    index = bin_index(confidence, n_bins, edges)
    joint = np.bincount(index * np.uint8(2) + outcome, minlength=2 * n_bins).reshape(n_bins, 2)
    return BinnedStats(
        joint.sum(1).astype(np.float64),
        np.bincount(index, weights=confidence, minlength=n_bins),
        joint[:, 1].astype(np.float64),
    )


def _check(path: Path, p0: np.ndarray, p1: np.ndarray) -> bool:
    """Raise like the package's check; return whether the values are already inside [0, 1]."""
    low, high = min(float(p0.min()), float(p1.min())), max(float(p0.max()), float(p1.max()))
    if not (low >= -RANGE_ATOL and high <= 1 + RANGE_ATOL):  # NaN and inf fail here too
        raise ReportError(f"{path}: probabilities are non-finite or outside [0, 1] ({low:.6g} to {high:.6g})")
    total = np.add(p0, p1)  # float32: its rounding (6e-8) is far below SUM_ATOL
    deviation = max(abs(float(total.max()) - 1.0), abs(float(total.min()) - 1.0))
    if deviation > SUM_ATOL:
        raise ReportError(f"{path}: softmax channels must sum to 1, but deviate by up to {deviation:.6g}")
    return low >= 0.0 and high <= 1.0


def fast_evaluate_case(task: CaseTask, loaded: tuple[np.ndarray, np.ndarray] | None = None) -> CaseResult:
    """`evaluate_case` with the fast path above; `loaded` = (reference, probabilities) if read already."""
    if not _fast_path(task):
        return evaluate_case(task)
    reference, probabilities = loaded if loaded is not None else _load(task)
    path = task.files.predictions[0]
    expected = (2, *reference.shape[1:])
    if probabilities.shape != expected:
        raise ReportError(f"{path}: shape {probabilities.shape} does not match the reference's {expected}")
    flat = probabilities.reshape(2, -1)
    p0, p1 = flat[0], flat[1]
    if not _check(path, p0, p1):
        p0, p1 = np.clip(p0, 0.0, 1.0), np.clip(p1, 0.0, 1.0)
    edges = lower_edges(task.n_bins)
    y = reference.reshape(-1) == 1  # label 1 (two channels: labels are 0 and 1)
    winner = p1 > p0  # argmax over two channels, ties to channel 0
    correct = winner == y
    top = fast_binned(np.maximum(p0, p1), correct, task.n_bins, edges)
    tp = int(np.count_nonzero(winner & y))
    counts = (float(tp), float(np.count_nonzero(winner) - tp), float(np.count_nonzero(y) - tp))
    p = p1.astype(np.float64)
    p_true = np.where(y, p, 1.0 - p)
    nll_sum = -float(np.log(np.clip(p_true, task.eps, 1.0 - task.eps, out=p_true), out=p_true).sum())
    residual = p - y
    brier_sum = float(np.dot(residual, residual))
    name = task.layout.names[0]
    stats = LabelStats(fast_binned(p1, y, task.n_bins, edges), nll_sum, brier_sum, *counts)
    model = task.models[0]
    return CaseResult(task.files.case, int(y.size), {model: ModelCaseStats({name: stats}, top)})


def _load(task: CaseTask) -> tuple[np.ndarray, np.ndarray]:
    return _read_reference(task), load_probabilities(task.files.predictions[0])


def score_folder(tasks: list[CaseTask], prefetch: bool = True) -> list[CaseResult]:
    """Score every case; with `prefetch`, case i + 1 is read in a thread while case i is scored."""
    if not prefetch:
        return [fast_evaluate_case(task) for task in tasks]
    results = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(_load, tasks[0]) if tasks else None
        for i, task in enumerate(tasks):
            loaded = pending.result()
            pending = pool.submit(_load, tasks[i + 1]) if i + 1 < len(tasks) else None
            results.append(fast_evaluate_case(task, loaded) if _fast_path(task) else evaluate_case(task))
    return results


def max_relative_difference(a: CaseResult, b: CaseResult) -> float:
    """Largest relative difference between the sums of two results (0.0: identical)."""
    worst = 0.0

    def cmp(x, y) -> None:
        nonlocal worst
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        scale = np.maximum(np.abs(y), 1e-300)
        worst = max(worst, float((np.abs(x - y) / scale).max()))

    for model, stats in a.models.items():
        other = b.models[model]
        for name, label in stats.labels.items():
            ref = other.labels[name]
            for field in ("count", "sum_confidence", "sum_target"):
                cmp(getattr(label.reliability, field), getattr(ref.reliability, field))
            cmp(
                [label.nll_sum, label.brier_sum, label.tp, label.fp, label.fn],
                [ref.nll_sum, ref.brier_sum, ref.tp, ref.fp, ref.fn],
            )
        for field in ("count", "sum_confidence", "sum_target"):
            cmp(getattr(stats.top_label, field), getattr(other.top_label, field))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="time the package's evaluate_case against the prototype")
    parser.add_argument(
        "folder", type=Path, help="folder with gt/, pred/ and dataset.json (bench/report.py's)"
    )
    parser.add_argument("--bins", type=int, default=20)
    args = parser.parse_args(argv)
    dataset_json = args.folder / "dataset.json"
    if not dataset_json.exists():
        dataset_json = args.folder.parent / "dataset.json"
    tasks = make_tasks(args.folder / "gt", args.folder / "pred", dataset_json, args.bins)
    for task in tasks[:2]:
        print(
            f"{task.files.case}: max relative difference {max_relative_difference(fast_evaluate_case(task), evaluate_case(task)):.1e}"
        )
    timings = {}
    for name, run in (
        ("load only", lambda: [_load(t) for t in tasks]),
        ("evaluate_case", lambda: [evaluate_case(t) for t in tasks]),
        ("prototype", lambda: score_folder(tasks, prefetch=False)),
        ("prototype + prefetch", lambda: score_folder(tasks, prefetch=True)),
    ):
        start = time.perf_counter()
        run()
        timings[name] = (time.perf_counter() - start) / len(tasks)
        print(f"{name:22s} {timings[name]:.3f} s/case ({timings[name] / timings['load only']:.2f} x load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
