"""Benchmark: the blocked case bootstrap of one label's pooled metrics (calibration/resampling.py).

Builds the per-case sums of synthetic cases (`--cases`, each with `--voxels` spread-out confidences and
labels from an over-confident model) over `--bins` report bins and, with `--smooth`, 2^16 fine bins, then
times in a fresh subprocess per memory budget: the point estimate, `--resamples` bootstrap resamples and
the jackknife of `pooled.label_statistic`, and reads the peak RSS growth over the per-case sums
(ru_maxrss). Prints one row per budget: wall time, block rows, peak growth, and what the unblocked
resampled sums alone would take (R x the per-case row size x 8 bytes); a budget below one resample's
needs is refused (the error line is printed).

    python bench/resampling.py --bins 1048576 --cases 4 --resamples 100 --budgets 128 512
    python bench/resampling.py --bins 20 --cases 100 --resamples 1000 --smooth --budgets 256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import format_table, machine_info

_CHILD = """
import json, resource, sys, time
import numpy as np
from nnunet_surgery.calibration import label_stats
from nnunet_surgery.calibration.pooled import label_case_sums, label_statistic
from nnunet_surgery.calibration.resampling import block_rows, bootstrap_values, jackknife_values, point_values

bins, cases, voxels, resamples, budget, smooth = (int(v) for v in sys.argv[1:7])
rng = np.random.default_rng(0)
factor = max(1, -(-2**16 // bins)) if smooth else 1
stats = []
for _ in range(cases):
    p = rng.beta(0.7, 0.7, voxels).astype(np.float32)
    y = rng.random(voxels) < 0.5 + 0.8 * (p - 0.5)
    stats.append(label_stats(p, y, bins, fine_factor=factor))
per_case = label_case_sums(stats, fine=smooth == 1)
del stats
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
point_values(per_case, label_statistic)
bootstrap_values(per_case, label_statistic, resamples, 0, memory_budget=budget)
jackknife_values(per_case, label_statistic, memory_budget=budget)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
row = sum(int(np.prod(v.shape[1:])) for v in per_case.values())
print(json.dumps({"seconds": seconds, "rows": block_rows(per_case, budget),
                  "grown_mib": (peak - baseline) / 1024, "unblocked_mib": resamples * row * 8 / 2**20}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bins", type=int, default=20)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--voxels", type=int, default=20000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--smooth", action="store_true", help="also the smooth ECE (2^16 fine bins per case)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[256], help="memory budgets in MiB")
    args = parser.parse_args(argv)
    rows = []
    for budget in args.budgets:
        values = [args.bins, args.cases, args.voxels, args.resamples, budget * 2**20, int(args.smooth)]
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, *map(str, values)], capture_output=True, text=True
        )
        if result.returncode:
            rows.append([budget, "refused: " + result.stderr.strip().splitlines()[-1], "", "", ""])
            continue
        out = json.loads(result.stdout)
        rows.append(
            [
                budget,
                out["rows"],
                f"{out['seconds']:.1f}",
                f"{out['grown_mib']:.0f}",
                f"{out['unblocked_mib']:.0f}",
            ]
        )
    print(machine_info())
    print(
        f"bins {args.bins}, cases {args.cases}, voxels/case {args.voxels}, resamples {args.resamples}, "
        f"smooth ECE {'yes' if args.smooth else 'no'}"
    )
    print(format_table(["budget MiB", "rows/block", "seconds", "peak growth MiB", "unblocked MiB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
