"""Benchmark: where the report's per-case time goes, in one process (`-np 1`), against bare loading.

`bench/report.py` times whole commands and takes the slope over N, which on a shared 2-core machine
resolves little beside a run's fixed cost. This script times the stages of scoring one case inside one
process, on the same synthetic cases (`report.write_cases`: lesion-like and spread-out probabilities),
every stage once per case and round, the stages interleaved (rotating order), and prints per stage the
median over rounds of its time per case and its ratio to bare loading:

    bare:        `_common.read_cases`: np.load(CASE.npz)["probabilities"] and SimpleITKIO().read_seg
    prepare:     `prepare_score` (the case layer's reading: the npz with its bounds, the label image with its
                 header and value checks, the ROI)
    finish:      `finish_case` on a prepared case (the scoring, with the probabilities' value checks)
    sequential:  `score_case` (prepare, then finish)
    read-ahead:  `cases.pool.read_ahead(prepare_score, finish_case, ...)`, what `report -np 1` runs: one
                 thread prepares case i + 1 while case i is finished

The issue's target is read-ahead <= 1.3x bare. Stage sums are per case (total over cases / cases).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import format_table, machine_info, read_cases, verdict
from report import COST_TARGET, DATASETS, write_cases

STAGES = ("bare", "prepare", "finish", "sequential", "read-ahead")


def stage_runners(root: Path, bins: int) -> dict[str, Callable[[], None]]:
    """One callable per stage that runs it over every case of `root` (gt/, pred/, dataset.json)."""
    from nnunet_surgery.cases.pool import read_ahead
    from nnunet_surgery.report.inputs import read_inputs
    from nnunet_surgery.report.scoring.case import ScoreTask, finish_case, prepare_score, score_case

    inputs = read_inputs(root / "gt", [root / "pred"], root / "dataset.json", n_bins=bins, bootstrap=0)
    tasks = [ScoreTask(case, inputs.options.scoring) for case in inputs.cases]

    def bare() -> None:
        for _ in read_cases(root / "gt", root / "pred"):
            pass

    def prepare() -> None:
        for task in tasks:
            prepare_score(task)

    def finish() -> None:  # the preparation is timed apart (`prepare`) and subtracted below
        for task in tasks:
            finish_case(task, prepare_score(task))

    def sequential() -> None:
        for task in tasks:
            score_case(task)

    def ahead() -> None:
        for _ in read_ahead(prepare_score, finish_case, tasks):
            pass

    return {"bare": bare, "prepare": prepare, "finish": finish, "sequential": sequential, "read-ahead": ahead}


def time_stages(root: Path, n_cases: int, bins: int, rounds: int) -> dict[str, float]:
    """Median seconds per case of each stage over `rounds` interleaved rounds (after one warm-up round)."""
    runners = stage_runners(root, bins)
    seconds: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for round_index in range(rounds + 1):
        shift = round_index % len(STAGES)
        for stage in STAGES[shift:] + STAGES[:shift]:
            start = time.perf_counter()
            runners[stage]()
            if round_index > 0:
                seconds[stage].append((time.perf_counter() - start) / n_cases)
    per_case = {stage: statistics.median(values) for stage, values in seconds.items()}
    per_case["finish"] -= per_case["prepare"]  # finish alone
    return per_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=6, help="cases per dataset (default 6)")
    parser.add_argument("--size", type=int, default=128, help="edge S of the cubic cases (default 128)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds; the median counts (default 3)")
    parser.add_argument("--bins", type=int, default=20, help="calibration bins (default 20)")
    parser.add_argument(
        "--data", nargs="+", choices=DATASETS, default=list(DATASETS), help="datasets (default both)"
    )
    parser.add_argument("--workdir", default=None, help="keep the cases here (default: a temporary folder)")
    args = parser.parse_args(argv)
    for name in ("cases", "size", "rounds", "bins"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, but got {getattr(args, name)}")

    print(machine_info("cpu"))
    print(
        f"{args.cases} cases of 2x{args.size}^3 per dataset, {args.rounds} rounds, --bins {args.bins}, -np 1"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_report_stages_") as tmp:
        for data in args.data:
            root = Path(args.workdir or tmp).resolve() / f"{data}_s{args.size}_n{args.cases}"
            if not (root / "gt" / f"case_{args.cases - 1:03d}.nii.gz").exists():
                write_cases(root, args.cases, args.size, data=data)
            per_case = time_stages(root, args.cases, args.bins, args.rounds)
            for stage in STAGES:
                ratio = per_case[stage] / per_case["bare"]
                target = verdict(ratio, COST_TARGET) if stage == "read-ahead" else ""
                rows.append([data, stage, f"{per_case[stage] * 1e3:.0f}", f"{ratio:.2f} {target}".strip()])
    print()
    print(format_table(["dataset", "stage", "ms/case", f"x bare (read-ahead <= {COST_TARGET})"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
