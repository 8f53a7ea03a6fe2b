"""Resampling in bounded memory (docs/calibration.md#bounded-resampling): with 2^20 bins and 64
resamples the unblocked resampled sums would need 64 x 2^20 x 8 bytes per array (0.5 GiB, 3 GiB for the
six binned arrays of a label); the blocked bootstrap and jackknife stay within the budget. Peak RSS is
read in a fresh subprocess (ru_maxrss), no timing. Slow: 64 resamples of 2^20 bins take about 30 s."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from nnunet_surgery.calibration.pooled import label_statistic
    from nnunet_surgery.calibration.resampling import bootstrap_values, jackknife_values

    n_bins, n_cases, resamples, budget = (int(v) for v in sys.argv[1:5])
    rng = np.random.default_rng(0)
    count = rng.integers(0, 3, (n_cases, n_bins)).astype(np.float64)
    s_conf = count * (np.arange(n_bins) + 0.5) / n_bins
    s_target = np.minimum(count, rng.integers(0, 2, (n_cases, n_bins)))
    residual = s_target - s_conf
    per_case = {
        "count": count, "sum_confidence": s_conf, "sum_target": s_target,
        "residual_sq": residual * residual, "residual_count": residual * count, "count_sq": count * count,
        "cases": np.ones(n_cases), "nll_sum": rng.random(n_cases), "brier_sum": rng.random(n_cases),
        "tp": np.ones(n_cases), "fp": np.ones(n_cases), "fn": np.ones(n_cases),
    }
    del residual
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    values = bootstrap_values(per_case, label_statistic, resamples, 1, memory_budget=budget)
    jack = jackknife_values(per_case, label_statistic, memory_budget=budget)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_kib": baseline, "peak_kib": peak, "resamples": int(values["ece"].size),
                      "jackknife": int(jack["ece"].size), "finite": bool(np.isfinite(values["ece"]).all())}))
    """
)


def _run(n_bins: int, n_cases: int, resamples: int, budget: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(n_bins), str(n_cases), str(resamples), str(budget)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_million_bins_resample_within_the_memory_budget():
    budget = 512 * 2**20  # one resample of a label's six binned arrays is 48 MiB, plus the statistic's work
    n_bins = 2**20
    run = _run(n_bins, 3, 64, budget)
    assert run["resamples"] == 64 and run["jackknife"] == 3 and run["finite"]
    grown = (run["peak_kib"] - run["baseline_kib"]) * 1024
    unblocked = 64 * n_bins * 8 * 6  # the six (R, bins) resampled arrays alone: 3 GiB
    assert grown <= budget, (grown, budget)
    assert grown < unblocked / 20
