"""Benchmark: `nnunet-surgery report` against bare loading and torchmetrics' `BinaryCalibrationError`.

Writes synthetic 3D cases into a temporary folder as nnU-Net leaves them after `nnUNetv2_predict
--save_probabilities`: `CASE.npz` (key `probabilities`, float32 (2, S, S, S), `np.savez_compressed`) and
the reference `CASE.nii.gz` (nnU-Net's `SimpleITKIO`), plus a dataset.json. For every N in `--cases`
(folders of the first N cases, hard links) each method runs in a fresh subprocess, the methods
interleaved (rotating order), timing the wall clock and the peak RSS of the whole process tree
(workers included, sampled every 20 ms from /proc), in this process's environment (no thread settings):

    load:          a bare loop: np.load(CASE.npz)["probabilities"] and SimpleITKIO().read_seg(CASE.nii.gz)
    report -np K:  `nnunet-surgery report GT PRED -djfile dataset.json -o OUT -np K --bins B` (its command module),
                   with its default bootstrap of 1000 resamples, and once more with `--bootstrap 0`
    torchmetrics:  BinaryCalibrationError(n_bins=B) updated case by case with the foreground channel, then
                   compute() (same loading code as `load`)

The marginal cost per case is the least-squares slope of the (median, with --reps) wall time over N
(start-up and imports cancel);
voxels/s = S^3 / slope. Peaks are medians over --reps; memory growth is the peak at the largest N minus
the peak at the next largest (each process's heap settles over its first few cases, which is no growth
in N).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    add_case_bench_arguments,
    format_table,
    machine_info,
    median,
    read_cases,
    run_with_peak_rss,
    subset,
    verdict,
)

COST_TARGET = 1.3  # report's marginal cost per case / bare loading's
DATASETS = ("lesion", "spread")
BOOTSTRAP = 1000  # the report's default resamples (--bootstrap)
BOOTSTRAP_TARGET = 0.10  # extra wall time of the bootstrap, relative to the same report without it
NO_BOOTSTRAP = "--bootstrap 0"
# `nnunet-surgery report ARGS`, as the console script runs it
REPORT_CLI = "import sys; from nnunet_surgery.cli import main; sys.exit(main(['report', *sys.argv[1:]]))"


# ----------------------------------------------------------------------------------------------------- data
def write_cases(folder: Path, n: int, size: int, seed: int = 0, data: str = "lesion") -> None:
    """n cases: probabilities (2, S, S, S) float32 in npz, labels around them in nii.gz.

    data: "lesion": smooth maps, mostly near 0 (background) and 1 (blobs), a blobby reference;
    "spread": probabilities spread over the whole of (0, 1) (a smooth logit field over [-4, 4] plus
    voxel noise), labels drawn from them (a calibrated model): every bin and fine bin filled.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    (folder / "pred").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    props = {
        "sitk_stuff": {
            "spacing": (1.0, 1.0, 1.0),
            "origin": (0.0, 0.0, 0.0),
            "direction": tuple(np.eye(3).ravel()),
        }
    }
    coarse = max(2, size // 16)
    for i in range(n):
        if data == "spread":
            field = torch.rand((1, 1, coarse, coarse, coarse), generator=gen) * 8 - 4
            field = F.interpolate(field, size=(size,) * 3, mode="trilinear", align_corners=False)[0, 0]
            fg = torch.sigmoid(field + 0.5 * torch.randn(field.shape, generator=gen))
            labels = (torch.rand(fg.shape, generator=gen) < fg).to(torch.uint8)
        else:
            field = torch.rand((2, 1, coarse, coarse, coarse), generator=gen) * 12 - 8  # mostly background
            field = F.interpolate(field, size=(size,) * 3, mode="trilinear", align_corners=False)[:, 0]
            fg = torch.sigmoid(field[0])  # the model's foreground probability
            labels = (torch.sigmoid(field[0] + 0.5 * field[1]) > 0.5).to(torch.uint8)  # a blobby reference
        probabilities = torch.stack((1 - fg, fg)).numpy().astype(np.float32)
        np.savez_compressed(folder / "pred" / f"case_{i:03d}.npz", probabilities=probabilities)
        SimpleITKIO().write_seg(labels.numpy(), str(folder / "gt" / f"case_{i:03d}.nii.gz"), props)
    dataset = {
        "channel_names": {"0": "synthetic"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


# --------------------------------------------------------------------------------------------------- workers
def worker_load(gt: Path, pred: Path, bins: int) -> str:
    del bins
    voxels = sum(labels.size for _, labels in read_cases(gt, pred))
    return f"{voxels}"


def worker_torchmetrics(gt: Path, pred: Path, bins: int) -> str:
    import torch
    from torchmetrics.classification import BinaryCalibrationError

    torch.set_num_threads(1)
    metric = BinaryCalibrationError(n_bins=bins, norm="l1")
    for probabilities, labels in read_cases(gt, pred):
        metric.update(
            torch.from_numpy(probabilities[1].ravel()), torch.from_numpy(labels.ravel().astype("int64"))
        )
    return f"{float(metric.compute()):.6f}"


WORKERS = {"load": worker_load, "torchmetrics": worker_torchmetrics}


# ------------------------------------------------------------------------------------------------------ main
def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cases", type=int, nargs="+", default=[4, 8, 16], help="case counts N (default 4 8 16)"
    )
    parser.add_argument("--size", type=int, default=160, help="edge S of the cubic cases (default 160)")
    parser.add_argument(
        "--np", dest="nps", type=int, nargs="+", default=[1, 2], help="report -np values (default 1 2)"
    )
    parser.add_argument("--bins", type=int, default=20, help="calibration bins (default 20)")
    parser.add_argument(
        "--data",
        nargs="+",
        choices=DATASETS,
        default=list(DATASETS),
        help="datasets: lesion (probabilities mostly near 0 and 1) and spread (over the whole of (0, 1)); "
        "default both",
    )
    add_case_bench_arguments(parser, WORKERS)
    args = parser.parse_args(argv)
    if args.worker:
        print(WORKERS[args.worker](args.gt, args.pred, args.bins))
        return 0
    if len(set(args.cases)) < 2:
        parser.error(f"--cases needs at least two different counts for a slope, but got {args.cases}")

    print(machine_info("cpu"))
    for data in args.data:
        print(f"\n=== dataset: {data} ===")
        bench_dataset(args, data)
    return 0


def bench_dataset(args: argparse.Namespace, data: str) -> None:
    """Time every method on one dataset and print its table."""
    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        root = Path(args.workdir or tmp).resolve() / f"{data}_s{args.size}"
        n_max = max(args.cases)
        if not (root / "gt" / f"case_{n_max - 1:03d}.nii.gz").exists():
            shutil.rmtree(root, ignore_errors=True)
            start = time.perf_counter()
            write_cases(root, n_max, args.size, data=data)
            print(f"wrote {n_max} cases of 2x{args.size}^3 in {time.perf_counter() - start:.0f} s")
        npz_mb = sum(p.stat().st_size for p in (root / "pred").glob("*.npz")) / n_max / 2**20
        case_mb = 2 * args.size**3 * 4 / 2**20
        print(f"one case: probabilities {case_mb:.1f} MB in memory, {npz_mb:.1f} MB compressed")

        bench_file = str(Path(__file__).resolve())

        def command(method: str, folder: Path, run_id: str) -> list[str]:
            if method.startswith("report"):
                k = method.split("np")[1].split()[0]
                bootstrap = ["--bootstrap", "0"] if method.endswith(NO_BOOTSTRAP) else []
                # the `nnunet-surgery report` command module, run as the console script runs it
                return [
                    sys.executable, "-c", REPORT_CLI, str(folder / "gt"), str(folder / "pred"),
                    "-djfile", str(root / "dataset.json"), "-o", str(root / "out" / run_id),
                    "-np", k, "--bins", str(args.bins), "--no-progress", *bootstrap,
                ]  # fmt: skip
            return [sys.executable, bench_file, "--worker", method, "--gt", str(folder / "gt"),
                    "--pred", str(folder / "pred"), "--bins", str(args.bins)]  # fmt: skip

        plain = f"report -np{args.nps[0]} {NO_BOOTSTRAP}"
        methods = ["load", *(f"report -np{k}" for k in args.nps), plain, "torchmetrics"]
        peaks: dict[str, dict[int, list[int]]] = {m: {n: [] for n in args.cases} for m in methods}
        # the environment as a user's shell has it: with OMP_NUM_THREADS=1 an earlier version hid 80 ms a
        # case of BLAS threads spinning beside the report's read-ahead thread
        env = dict(os.environ)
        walls: dict[str, dict[int, list[float]]] = {m: {n: [] for n in args.cases} for m in methods}
        shutil.rmtree(root / "out", ignore_errors=True)  # reports of an earlier run in --workdir
        for rep in range(args.reps):
            for i, n in enumerate(sorted(args.cases)):
                folder = subset(root, n)
                shift = (i + rep) % len(methods)
                for method in methods[shift:] + methods[:shift]:
                    run_id = f"{method.replace(' ', '')}_n{n}_r{rep}"
                    seconds, rss, _ = run_with_peak_rss(command(method, folder, run_id), env)
                    walls[method][n].append(seconds)
                    peaks[method][n].append(rss)
                    print(f"  rep {rep} N={n:3d} {method:13s} {seconds:6.1f} s  peak {rss / 2**20:6.0f} MB")
                    sys.stdout.flush()
        wall = {m: {n: median(v) for n, v in by_n.items()} for m, by_n in walls.items()}
        peak = {m: {n: median(v) for n, v in by_n.items()} for m, by_n in peaks.items()}

    ns = sorted(args.cases)
    voxels = args.size**3
    marginal = {m: slope(ns, [wall[m][n] for n in ns]) for m in methods}
    rows = []
    for m in methods:
        # between the two largest N: each process's heap settles over its first few cases (glibc keeps
        # freed chunk-sized temporaries), which is not growth in N; all peaks are printed
        growth = (peak[m][ns[-1]] - peak[m][ns[-2]]) / 2**20
        ratio = marginal[m] / marginal["load"]
        row = [
            m,
            *(f"{wall[m][n]:.1f}" for n in ns),
            f"{marginal[m]:.2f}",
            f"{voxels / marginal[m] / 1e6:.1f}",
            f"{ratio:.2f}"
            + (f" {verdict(ratio, COST_TARGET)}" if m != "load" and m != "torchmetrics" else ""),
            *(f"{peak[m][n] / 2**20:.0f}" for n in ns),
            f"{growth:+.0f}"
            + (f" {verdict(growth, case_mb)}" if m != "load" and m != "torchmetrics" else ""),
        ]
        rows.append(row)
    headers = [
        "method",
        *(f"wall s N={n}" for n in ns),
        "s/case",
        "Mvox/s",
        f"x load (<= {COST_TARGET})",
        *(f"peak MB N={n}" for n in ns),
        f"growth MB N={ns[-2]}->{ns[-1]} (<= {case_mb:.0f})",
    ]
    print()
    print(format_table(headers, rows))
    tm = marginal["torchmetrics"]
    print()
    summary = []
    for k in args.nps:
        m = marginal[f"report -np{k}"]
        summary.append([f"report -np{k} vs torchmetrics", f"{m / tm:.2f}", verdict(m / tm, 1.0)])
    if len(args.nps) > 1:
        a, b = marginal[f"report -np{args.nps[0]}"], marginal[f"report -np{args.nps[-1]}"]
        summary.append([f"speed-up -np{args.nps[-1]} over -np{args.nps[0]}", f"{a / b:.2f}", ""])
    with_bootstrap = wall[f"report -np{args.nps[0]}"][ns[-1]]
    cost = with_bootstrap / wall[f"report -np{args.nps[0]} {NO_BOOTSTRAP}"][ns[-1]] - 1
    summary.append(
        [f"bootstrap ({BOOTSTRAP} resamples) extra wall time, -np{args.nps[0]}, N={ns[-1]}", f"{cost:+.1%}",
         verdict(cost, BOOTSTRAP_TARGET)]
    )  # fmt: skip
    print(format_table(["comparison", "ratio", "target"], summary))
    print(
        f"\ns/case: slope of wall time over N (fresh process per run); Mvox/s: {args.size}^3 voxels / (s/case); "
        "peak: RSS of the process tree; growth target: one case's probabilities."
    )


if __name__ == "__main__":
    sys.exit(main())
