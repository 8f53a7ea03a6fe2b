"""Helpers shared by the benchmark scripts: machine description, medians, tables, process-tree RSS, the
case folders (`gt/CASE.nii.gz`, `pred/CASE.npz`) the report and recalibration benchmarks write, and the demo
run folders the analyses of bench/fidelity.py's runs read."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_surgery.cases import InputError

__all__ = [
    "RssSampler",
    "add_case_bench_arguments",
    "add_run_arguments",
    "check_run_folders",
    "code_state",
    "demo_dataset_folder",
    "format_table",
    "load_average",
    "machine_info",
    "median",
    "overlap_share",
    "read_cases",
    "run_models",
    "run_with_peak_rss",
    "subset",
    "verdict",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_info(device: str = "cpu") -> str:
    """One block of text: CPU model, cores, RAM, Python, torch, threads and the device used."""
    import torch

    try:
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{mem_kib / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        ram = "RAM unknown"
    lines = [
        f"machine: {_cpu_model()}, {os.cpu_count()} cores, {ram}, load average {load_average()}",
        f"code: {code_state()}",
        f"python {platform.python_version()}, torch {torch.__version__}, torch threads {torch.get_num_threads()}",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        lines.append(f"device: {device} = {torch.cuda.get_device_name(torch.device(device))}")
    else:
        lines.append(f"device: {device}")
    return "\n".join(lines)


def code_state() -> str:
    """Commit of the checkout and the package files that differ from it (read-only git commands)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "nnunet_surgery"], cwd=root, capture_output=True, text=True
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {commit}" + (
        f" + uncommitted changes in {len(changed)} package path(s)" if changed else ""
    )


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table with right-aligned columns (the first column left-aligned)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), sep, *(fmt(r) for r in cells[1:])])


def verdict(value: float, target: float) -> str:
    """`ok` if `value <= target`, else `MISSED`."""
    return "ok" if value <= target else "MISSED"


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            kids.extend(int(k) for k in text)
    except OSError:
        pass
    return kids


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """Polls the summed RSS of a process and all its descendants; `peak` is the largest sum seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            total, stack = 0, [self.pid]
            while stack:
                pid = stack.pop()
                total += _rss_bytes(pid)
                stack.extend(_children(pid))
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def run_with_peak_rss(cmd: Sequence[str], env: dict | None = None) -> tuple[float, int, str]:
    """Run `cmd` in a fresh process; return (wall seconds, peak RSS of its process tree in bytes, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = RssSampler(proc.pid)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    peak = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{err[-4000:]}")
    return wall, peak, out


def subset(folder: Path, n: int) -> Path:
    """`folder/nN`: hard links to the first n cases of `folder` (made once, then reused)."""
    out = folder / f"n{n}"
    if out.exists():
        return out
    for kind, ending in (("pred", ".npz"), ("gt", ".nii.gz")):
        (out / kind).mkdir(parents=True)
        for i in range(n):
            os.link(folder / kind / f"case_{i:03d}{ending}", out / kind / f"case_{i:03d}{ending}")
    return out


def read_cases(gt: Path, pred: Path):
    """Yield (probabilities, labels) of each case: `np.load(CASE.npz)["probabilities"]` and SimpleITKIO's
    `read_seg(CASE.nii.gz)`, the bare loading the benchmarks compare against."""
    import numpy as np
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    for npz in sorted(pred.glob("*.npz")):
        with np.load(npz) as archive:
            probabilities = archive["probabilities"]
        labels, _ = SimpleITKIO().read_seg(str(gt / (npz.stem + ".nii.gz")))
        yield probabilities, labels


def add_case_bench_arguments(parser: argparse.ArgumentParser, workers: dict) -> None:
    """The options the case-folder benchmarks (report.py, recalibrate.py) share: --reps, --workdir, and the
    hidden --worker/--gt/--pred with which a benchmark runs one of its `workers` in a child process."""
    parser.add_argument(
        "--reps", type=int, default=1, help="runs per method and N; the median counts (default 1)"
    )
    parser.add_argument("--workdir", default=None, help="keep the cases here (default: a temporary folder)")
    parser.add_argument("--worker", choices=sorted(workers), help=argparse.SUPPRESS)
    parser.add_argument("--gt", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pred", type=Path, help=argparse.SUPPRESS)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """`runs` (demo folders of bench/fidelity.py) and `--models` for an analysis of trained runs."""
    parser.add_argument("runs", nargs="+", type=Path, help="demo folders (bench/fidelity.py runs)")
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="predictions/MODEL to analyse (default: every one but +temperature)",
    )


def check_run_folders(parser: argparse.ArgumentParser, runs: Sequence[Path]) -> None:
    """Exit through `parser.error` (status 2) naming the first of `runs` that is not a demo run folder."""
    for run in runs:
        if not (run / "demo.json").is_file():
            parser.error(f"{run}: not a demo run folder (no demo.json)")


def run_models(run: Path, models: Sequence[str] | None) -> list[str]:
    """`models`, or every model with predictions in the run folder but the recalibrated ones (`+`)."""
    if models:
        return list(models)
    if not (run / "predictions").is_dir():
        raise InputError(f"{run}: no predictions/ folder (the run has not predicted yet)")
    return sorted(p.name for p in (run / "predictions").iterdir() if p.is_dir() and "+" not in p.name)


def overlap_share(p: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """q = alpha TI = G_bg / (G_fg + G_bg) of one channel: `p`, `y` its probabilities and 0/1 targets (any
    shape); DSC / 2 at alpha = 0.5."""
    tp = float((p * y).sum())
    fp, fn = float((p * (1 - y)).sum()), float(((1 - p) * y).sum())
    return alpha * tp / (tp + alpha * fp + (1 - alpha) * fn)


def demo_dataset_folder(run: Path) -> Path:
    """The run's one `nnUNet_raw/Dataset*` folder; InputError naming the run otherwise."""
    datasets = sorted((run / "nnUNet_raw").glob("Dataset*"))
    if len(datasets) != 1:
        raise InputError(
            f"{run}: expected one nnUNet_raw/Dataset* folder of a demo run, found {len(datasets)}"
        )
    return datasets[0]
