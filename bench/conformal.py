"""Benchmark: the conformal statistics' cost per case, and their size against the number of cases.

One synthetic case of S^3 voxels (one label): the reference a ball of about 5% of the voxels, float32
probabilities sigmoid(4 * inside - 2 + N(0, 1)). Each stage streams the case in chunks of 2^20 voxels
(the report's chunk size) and is timed `--reps` times (median, stages interleaved):

    touch:      the reference voxels' probabilities of each chunk, p[reference] (the least any pass reads)
    pass 1:     case_fnr_stats (coarse histogram and grid counts of the reference voxels)
    pass 2:     case_bin_stats of the coarse bin holding the median reference probability
    apply:      case_mask_sums at that probability (mask, segmentation, reference, missed counts)
    sort:       np.sort of all reference probabilities (what an exact method keeping voxels would do)

Then the bytes of the merged FnrStats / BinFnrStats arrays after 1, 16 and 64 cases (flat by design).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import format_table, machine_info, median

from nnunet_surgery.conformal import (
    BinFnrStats,
    FnrStats,
    case_bin_stats,
    case_fnr_stats,
    case_mask_sums,
    order_keys,
)

CHUNK = 1 << 20


def make_case(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    axis = np.arange(size) - size / 2
    radius = size * 0.23  # 4/3 pi 0.23^3 ~= 5% of the cube
    inside = (axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2) < radius**2
    logit = 4.0 * inside - 2.0 + rng.normal(size=inside.shape)
    return (1.0 / (1.0 + np.exp(-logit))).astype(np.float32).ravel(), inside.ravel()


def chunks(*arrays: np.ndarray):
    for start in range(0, arrays[0].size, CHUNK):
        yield tuple(array[start : start + CHUNK] for array in arrays)


def _nbytes(stats) -> int:
    return sum(value.nbytes for value in vars(stats).values() if isinstance(value, np.ndarray))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    print(machine_info())
    p, reference = make_case(args.size)
    segmentation = p >= 0.5
    median_key = int(np.median(order_keys(p[reference])))
    bin = median_key >> 16
    threshold = float(np.array(median_key, dtype=np.uint32).view(np.float32))
    stages = {
        "touch": lambda: [q[r] for q, r in chunks(p, reference)],
        "pass 1": lambda: case_fnr_stats(chunks(p, reference)),
        "pass 2": lambda: case_bin_stats(chunks(p, reference), bin),
        "apply": lambda: case_mask_sums(chunks(p, reference, segmentation), threshold),
        "sort": lambda: np.sort(p[reference]),
    }
    times: dict[str, list[float]] = {name: [] for name in stages}
    for rep in range(args.reps):
        names = list(stages)[rep % len(stages) :] + list(stages)[: rep % len(stages)]
        for name in names:
            start = time.perf_counter()
            stages[name]()
            times[name].append(time.perf_counter() - start)
    voxels = p.size
    print(f"\none case of {args.size}^3 = {voxels} voxels, {int(reference.sum())} reference voxels")
    print(
        format_table(
            ["stage", "median ms", "ns / voxel"],
            [
                [name, f"{1e3 * median(t):.1f}", f"{1e9 * median(t) / voxels:.2f}"]
                for name, t in times.items()
            ],
        )
    )
    one_pass1, one_pass2 = case_fnr_stats(chunks(p, reference)), case_bin_stats(chunks(p, reference), bin)
    rows = []
    merged1, merged2 = FnrStats.zeros(), BinFnrStats.zeros(bin)
    for n in range(1, 65):
        merged1, merged2 = merged1.merge(one_pass1), merged2.merge(one_pass2)
        if n in (1, 16, 64):
            rows.append([n, _nbytes(merged1), _nbytes(merged2)])
    print("\nstatistics size (bytes) after merging n cases")
    print(format_table(["cases", "FnrStats", "BinFnrStats"], rows))


if __name__ == "__main__":
    main()
