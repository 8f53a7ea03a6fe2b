"""Benchmark: `nnunet-surgery recalibrate fit` against netcal's `TemperatureScaling` on the same 3D cases.

Writes N synthetic 3D cases as nnU-Net leaves validation outputs (`CASE.npz`, key `probabilities`, float32
(C, S, S, S), `np.savez_compressed`; the reference `CASE.nii.gz` by nnU-Net's `SimpleITKIO`): true logits
z ~ N(0, 2^2) per voxel and channel, labels drawn from softmax(z), saved probabilities softmax(T z) with
T = 2.5, so the maximum-likelihood temperature is 2.5 up to sampling error. For every N in `--cases`
(folders of the first N cases, hard links) each method runs in a fresh subprocess, the methods interleaved
(rotating order), timing the wall clock and the peak RSS of the process tree (sampled every 20 ms):

    load:           a bare loop: np.load(CASE.npz)["probabilities"] and SimpleITKIO().read_seg(CASE.nii.gz)
    fit -np K:      `nnunet-surgery recalibrate fit GT PRED -djfile dataset.json -o CAL.json -np K`
    netcal:         every case loaded (same loop as `load`), all voxels concatenated, then
                    netcal.scaling.TemperatureScaling().fit(X, y): foreground confidence (N,) for 2
                    channels, probabilities (N, C) otherwise; torch's default dtype float64 (in float32
                    netcal's finite-difference gradient vanishes and it returns T = 1)

Memory growth is peak(N max) - peak(N min); target for the fit: at most one case's probabilities.
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

TEMPERATURE = 2.5
FIT_CLI = (
    "import sys; from nnunet_surgery.cli import main; sys.exit(main(['recalibrate', 'fit', *sys.argv[1:]]))"
)


def write_cases(folder: Path, n: int, size: int, channels: int, seed: int = 0) -> None:
    """n over-confident cases (see the module docstring)."""
    import numpy as np
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    (folder / "pred").mkdir(parents=True, exist_ok=True)
    (folder / "gt").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    props = {
        "sitk_stuff": {"spacing": (1.0,) * 3, "origin": (0.0,) * 3, "direction": tuple(np.eye(3).ravel())}
    }
    for i in range(n):
        z = rng.normal(0.0, 2.0, (channels, size, size, size)).astype(np.float32)
        e = np.exp(z - z.max(axis=0))
        labels = (rng.random(z.shape[1:], dtype=np.float32)[None] > (e / e.sum(axis=0)).cumsum(axis=0)).sum(
            axis=0
        )
        scaled = np.exp(TEMPERATURE * (z - z.max(axis=0)))
        probabilities = (scaled / scaled.sum(axis=0)).astype(np.float32)
        np.savez_compressed(folder / "pred" / f"case_{i:03d}.npz", probabilities=probabilities)
        segmentation = np.minimum(labels, channels - 1).astype(np.uint8)
        SimpleITKIO().write_seg(segmentation, str(folder / "gt" / f"case_{i:03d}.nii.gz"), props)
    names = ["background", "lesion", "organ", "cyst", "vessel", "other"][:channels]
    dataset = {"channel_names": {"0": "x"}, "labels": {name: i for i, name in enumerate(names)}, "numTraining": n,
               "file_ending": ".nii.gz"}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(dataset, indent=2))


def worker_load(gt: Path, pred: Path) -> str:
    return str(sum(labels.size for _, labels in read_cases(gt, pred)))


def worker_netcal(gt: Path, pred: Path) -> str:
    import numpy as np
    import torch
    from netcal.scaling import TemperatureScaling

    torch.set_default_dtype(torch.float64)
    inputs, targets = [], []
    for probabilities, labels in read_cases(gt, pred):
        flat = probabilities.reshape(probabilities.shape[0], -1)
        inputs.append(flat[1] if len(flat) == 2 else flat.T)
        targets.append(labels.reshape(-1).astype(np.int64))
    x = np.concatenate(inputs).astype(np.float64)
    del inputs
    model = TemperatureScaling()
    model.fit(x, np.concatenate(targets))
    return f"{1 / float(model.weights[0]):.6f}"


WORKERS = {"load": worker_load, "netcal": worker_netcal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, nargs="+", default=[4, 16], help="case counts N (default 4 16)")
    parser.add_argument("--size", type=int, default=96, help="edge S of the cubic cases (default 96)")
    parser.add_argument("--channels", type=int, default=2, help="softmax channels (default 2)")
    parser.add_argument(
        "--np", dest="nps", type=int, nargs="+", default=[1, 2], help="fit -np values (default 1 2)"
    )
    add_case_bench_arguments(parser, WORKERS)
    args = parser.parse_args(argv)
    if args.worker:
        print(WORKERS[args.worker](args.gt, args.pred))
        return 0

    print(machine_info("cpu"))
    with tempfile.TemporaryDirectory(prefix="bench_recalibrate_") as tmp:
        root = Path(args.workdir or tmp).resolve() / f"s{args.size}c{args.channels}"
        n_max = max(args.cases)
        if not (root / "gt" / f"case_{n_max - 1:03d}.nii.gz").exists():
            shutil.rmtree(root, ignore_errors=True)
            start = time.perf_counter()
            write_cases(root, n_max, args.size, args.channels)
            print(
                f"wrote {n_max} cases of {args.channels}x{args.size}^3 in {time.perf_counter() - start:.0f} s"
            )
        case_mb = args.channels * args.size**3 * 4 / 2**20
        bench_file = str(Path(__file__).resolve())

        def command(method: str, folder: Path, run_id: str) -> list[str]:
            if method.startswith("fit"):
                return [sys.executable, "-c", FIT_CLI, str(folder / "gt"), str(folder / "pred"),
                        "-djfile", str(root / "dataset.json"), "-o", str(root / "out" / f"{run_id}.json"),
                        "-np", method.split("np")[1], "--no-progress"]  # fmt: skip
            return [sys.executable, bench_file, "--worker", method, "--gt", str(folder / "gt"),
                    "--pred", str(folder / "pred")]  # fmt: skip

        methods = ["load", *(f"fit -np{k}" for k in args.nps), "netcal"]
        walls = {m: {n: [] for n in args.cases} for m in methods}
        peak: dict[str, dict[int, int]] = {m: {} for m in methods}
        found: dict[str, dict[int, str]] = {m: {} for m in methods}
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for rep in range(args.reps):
            for i, n in enumerate(sorted(args.cases)):
                folder = subset(root, n)
                shift = (i + rep) % len(methods)
                for method in methods[shift:] + methods[:shift]:
                    run_id = f"{method.replace(' ', '')}_n{n}_r{rep}"
                    seconds, rss, out = run_with_peak_rss(command(method, folder, run_id), env)
                    walls[method][n].append(seconds)
                    peak[method][n] = max(peak[method].get(n, 0), rss)
                    if method == "netcal":
                        found[method][n] = f"{float(out.strip()):.4f}"
                    elif method.startswith("fit"):
                        calibrator = json.loads((root / "out" / f"{run_id}.json").read_text())
                        found[method][n] = (
                            f"{calibrator['temperature']:.4f} ({calibrator['fit']['passes']} passes)"
                        )
                    print(f"  rep {rep} N={n:3d} {method:10s} {seconds:6.1f} s  peak {rss / 2**20:6.0f} MB")
                    sys.stdout.flush()

    ns = sorted(args.cases)
    wall = {m: {n: median(v) for n, v in by_n.items()} for m, by_n in walls.items()}
    rows = []
    for m in methods:
        growth = (peak[m][ns[-1]] - peak[m][ns[0]]) / 2**20
        rows.append([
            m,
            *(f"{wall[m][n]:.1f}" for n in ns),
            *(f"{peak[m][n] / 2**20:.0f}" for n in ns),
            f"{growth:+.0f}" + (f" {verdict(growth, case_mb)}" if m.startswith("fit") else ""),
            *(found[m].get(n, "") for n in ns),
        ])  # fmt: skip
    headers = ["method", *(f"wall s N={n}" for n in ns), *(f"peak MB N={n}" for n in ns),
               f"growth MB (<= {case_mb:.0f})", *(f"T N={n}" for n in ns)]  # fmt: skip
    print()
    print(format_table(headers, rows))
    summary = []
    for k in args.nps:
        for n in ns:
            ratio = wall[f"fit -np{k}"][n] / wall["netcal"][n]
            summary.append([f"fit -np{k} / netcal, N={n}", f"{ratio:.2f}", verdict(ratio, 1.0)])
        ratio = wall[f"fit -np{k}"][ns[-1]] / wall["load"][ns[-1]]
        summary.append([f"fit -np{k} / bare loading, N={ns[-1]}", f"{ratio:.2f}", ""])
    print()
    print(format_table(["comparison", "wall-time ratio", "target (faster)"], summary))
    print(
        f"\nT: the fitted temperature (true {TEMPERATURE}); peak: RSS of the process tree; growth target: one case's "
        f"probabilities ({case_mb:.0f} MB)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
