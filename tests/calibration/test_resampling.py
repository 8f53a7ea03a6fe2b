"""Blocked case resampling (calibration/resampling.py) and the label statistic (calibration/pooled.py):
blocks change nothing, the values are those of a direct resampling of the cases' sums, paired
differences share their cases."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import label_metrics, label_stats
from nnunet_surgery.calibration.bootstrap import bootstrap_bounds, case_weights
from nnunet_surgery.calibration.estimators import debiased_ece
from nnunet_surgery.calibration.pooled import PLUG_IN, label_case_sums, label_statistic
from nnunet_surgery.calibration.resampling import (
    block_rows,
    bootstrap_values,
    estimate_with_interval,
    jackknife_values,
    paired,
    point_values,
    weight_blocks,
    weighted_sums,
)

N_BINS = 8


def _cases(seed: int, n_cases: int = 7, fine_factor: int = 1) -> list:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n_cases):
        size = int(rng.integers(200, 600))
        p = rng.beta(0.8, 0.8, size).astype(np.float32)
        y = rng.random(size) < np.clip(p * 1.1 - 0.05 + rng.normal(0, 0.03), 0, 1)
        cases.append(label_stats(p, y, N_BINS, counts=(3.0, 1.0, 2.0), fine_factor=fine_factor))
    return cases


def _statistic(sums):
    metrics = label_statistic(sums)
    return {name: metrics[name] for name in ("nll", "brier", "ece", "ece_debiased", "ce_l2sq_debiased")}


@pytest.mark.parametrize("n", [7, 8])
def test_weight_blocks_and_their_sums_do_not_depend_on_the_block_size(n):
    expected = case_weights(n, 53, seed=9)
    values = np.random.default_rng(n).normal(size=(n, 6))
    for rows in (1, 5, 53, 100):
        blocks = list(weight_blocks(n, 53, 9, rows))
        assert np.array_equal(np.concatenate(blocks), expected)
        summed = np.concatenate([weighted_sums(block, values) for block in blocks])
        assert np.array_equal(summed, weighted_sums(expected, values))


def test_resampled_values_are_the_statistic_of_the_resampled_sums_whatever_the_budget():
    per_case = label_case_sums(_cases(0))
    weights = case_weights(7, 40, seed=3)
    # one resample at a time, the drawn cases' sums added in case order
    rows = [
        {name: sum(weights[r, c] * values[c] for c in range(7)) for name, values in per_case.items()}
        for r in range(40)
    ]
    direct = _statistic({name: np.stack([row[name] for row in rows]) for name in per_case})
    per_row = block_rows(per_case, 1 << 30)
    assert per_row >= 40
    for budget in (1 << 30, 8 * 400, 8 * 2000):
        blocked = bootstrap_values(per_case, _statistic, 40, 3, memory_budget=budget)
        for name, values in direct.items():
            # the sums are bit-equal (`weighted_sums`); numpy's reductions inside the statistic may
            # round differently for other shapes and alignments, by an ulp or so
            assert np.allclose(blocked[name], values, rtol=1e-14, atol=0), name


def test_jackknife_leaves_out_one_case_and_the_point_value_is_the_pooled_metric():
    cases = _cases(1)
    per_case = label_case_sums(cases)
    jackknife = jackknife_values(per_case, _statistic, memory_budget=8 * 800)  # two cases at a time
    for left_out in range(len(cases)):
        rest = cases[:left_out] + cases[left_out + 1 :]
        pooled = rest[0]
        for case in rest[1:]:
            pooled = pooled.merge(case)
        metrics = label_metrics(pooled)
        assert jackknife["nll"][left_out] == pytest.approx(metrics["nll"], rel=1e-12)
        assert jackknife["ece"][left_out] == pytest.approx(metrics["ece"], rel=1e-12)
        r = pooled.reliability
        assert jackknife["ece_debiased"][left_out] != pytest.approx(
            float(debiased_ece(r.count, r.sum_confidence, r.sum_target)), rel=1e-6
        )  # the report's statistic uses the case-level variance, not the binomial one
    pooled = cases[0]
    for case in cases[1:]:
        pooled = pooled.merge(case)
    point = point_values(per_case, _statistic)
    assert point["brier"] == pytest.approx(label_metrics(pooled)["brier"], rel=1e-12)


def test_paired_differences_resample_the_same_cases():
    first, second = label_case_sums(_cases(2)), label_case_sums(_cases(3))
    joint, difference = paired(first, second, _statistic)
    values = bootstrap_values(joint, difference, 30, 4)
    a, b = bootstrap_values(first, _statistic, 30, 4), bootstrap_values(second, _statistic, 30, 4)
    assert np.allclose(values["ece"], a["ece"] - b["ece"], rtol=0, atol=1e-15)
    same, itself = paired(first, first, _statistic)
    estimates = estimate_with_interval(same, itself, n_resamples=50, seed=1)
    for estimate in estimates.values():
        assert estimate.value == 0.0 and estimate.interval.low == estimate.interval.high == 0.0


def test_estimates_use_the_plug_in_reference_of_debiased_metrics_and_contain_their_estimate():
    per_case = label_case_sums(_cases(4, n_cases=12))
    estimates = estimate_with_interval(
        per_case, label_statistic, n_resamples=200, seed=2, references=PLUG_IN, memory_budget=1 << 22
    )
    point = point_values(per_case, label_statistic)
    resampled = bootstrap_values(per_case, label_statistic, 200, 2)
    jackknife = jackknife_values(per_case, label_statistic)
    low, high = bootstrap_bounds(
        point["ece_debiased"], resampled["ece_debiased"], jackknife["ece_debiased"], reference=point["ece"]
    )
    assert estimates["ece_debiased"].interval.low == float(low) and estimates[
        "ece_debiased"
    ].interval.high == float(high)
    for name, estimate in estimates.items():
        if not np.isnan(estimate.value):
            assert estimate.interval.low <= estimate.value <= estimate.interval.high, name


def test_smooth_ece_enters_the_statistic_with_fine_sums():
    cases = _cases(5, n_cases=4, fine_factor=64)
    per_case = label_case_sums(cases, fine=True)
    assert per_case["fine_count"].shape == (4, N_BINS * 64)
    point = point_values(per_case, label_statistic)
    assert 0.0 < point["smooth_ece"] < 1.0
    with pytest.raises(ValueError, match="fine statistics"):
        label_case_sums(_cases(5, n_cases=2), fine=True)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="memory_budget must hold one resample"):
        block_rows({"count": np.zeros((3, 1000))}, 100)
    with pytest.raises(ValueError, match="one n_cases"):
        block_rows({"a": np.zeros((3, 2)), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="n_resamples and rows >= 1"):
        next(weight_blocks(3, 0, 0, 1))
    with pytest.raises(ValueError, match="at least one case"):
        label_case_sums([])
