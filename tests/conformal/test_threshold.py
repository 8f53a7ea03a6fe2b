"""The conformal threshold equals a brute-force search over every candidate threshold in exact rationals,
on small random cases with tied probabilities, float32 edge values and empty references."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conformal_reference import brute_force_threshold, exact_fnr, reference_values, tied_cases

from nnunet_surgery.conformal import (
    N_COARSE,
    RISK_GRID,
    BinFnrStats,
    FnrStats,
    case_bin_stats,
    case_fnr_stats,
    conformal_threshold,
    fit_fnr_threshold,
    locate_crossing,
)


def _fit(cases, alpha, empty_references="count"):
    return fit_fnr_threshold(lambda: ([case] for case in cases), alpha, empty_references=empty_references)


def _pass1(cases) -> FnrStats:
    stats = FnrStats.zeros()
    for case in cases:
        stats = stats.merge(case_fnr_stats([case]))
    return stats


ALPHAS = (0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 0.9)


@pytest.mark.parametrize("empty_references", ["count", "exclude"])
def test_threshold_equals_brute_force_over_all_candidates(empty_references):
    rng = np.random.default_rng(28)
    paths = {"infeasible": 0, "one": 0, "refined": 0}
    for trial in range(150):
        cases = tied_cases(rng, int(rng.integers(1, 16)))
        if trial % 5 == 0:  # mostly saturated probabilities: t = 1 can satisfy the condition
            cases = [(np.where(rng.random(p.size) < 0.9, np.float32(1), p), ref) for p, ref in cases]
        if empty_references == "exclude" and all(not ref.any() for _, ref in cases):
            continue
        alpha = ALPHAS[trial % len(ALPHAS)] if trial % 3 else float(rng.uniform(0.02, 0.95))
        fitted = _fit(cases, alpha, empty_references)
        expected, feasible = brute_force_threshold(cases, alpha, empty_references)
        assert (fitted.threshold, fitted.feasible) == (expected, feasible), (trial, alpha)
        values = reference_values(cases)
        if empty_references == "exclude":
            values = [case for case in values if case]
        mean = sum((exact_fnr(case, Fraction(fitted.threshold)) for case in values), Fraction(0)) / len(
            values
        )
        assert fitted.mean_risk == pytest.approx(float(mean), abs=1e-12)
        assert fitted.n == len(values)
        kind = "infeasible" if not feasible else "one" if expected == 1.0 else "refined"
        paths[kind] += 1
    assert min(paths.values()) >= 5, paths  # every branch of the search was exercised


def test_nothing_above_the_threshold_satisfies_the_condition():
    """sup over all t, not only candidates: the next float32 above t_hat already fails."""
    rng = np.random.default_rng(5)
    for _ in range(40):
        cases = tied_cases(rng, 10)
        fitted = _fit(cases, 0.2)
        if not fitted.feasible or fitted.threshold == 1.0:
            continue
        values = reference_values(cases)
        above = Fraction(float(np.nextafter(np.float32(fitted.threshold), np.float32(2))))
        risk = sum((exact_fnr(case, above) for case in values), Fraction(0)) / len(values)
        n = len(values)
        assert Fraction(n, n + 1) * risk + Fraction(1, n + 1) > Fraction("0.2")
        assert fitted.adjusted_risk <= 0.2 < fitted.adjusted_risk_above


def test_alpha_below_one_over_n_plus_one_is_infeasible_and_keeps_everything():
    cases = [(np.array([0.9, 0.8], dtype=np.float32), np.array([True, True]))] * 9
    fitted = _fit(cases, 0.09)  # 1 / (9 + 1) = 0.1 > 0.09
    assert (fitted.threshold, fitted.feasible) == (0.0, False)
    assert fitted.adjusted_risk == pytest.approx(0.1)
    at_tie = _fit(cases, 0.1)  # 1 / 10 <= 0.1: an exact tie counts as satisfied
    assert at_tie.feasible and at_tie.threshold == pytest.approx(0.8, rel=1e-7)


def test_all_references_empty_gives_threshold_one():
    cases = [(np.array([0.2, 0.7], dtype=np.float32), np.array([False, False]))] * 19
    fitted = _fit(cases, 0.1)
    assert (fitted.threshold, fitted.feasible, fitted.n_empty, fitted.mean_risk) == (1.0, True, 19, 0.0)
    with pytest.raises(ValueError, match="non-empty reference"):
        _fit(cases, 0.1, "exclude")


def test_empty_references_count_in_n():
    """Empty cases have FNR 0 and count in n: with them, t_hat can only rise (the bound loosens)."""
    rng = np.random.default_rng(1)
    full = [(rng.random(40).astype(np.float32), rng.random(40) < 0.5) for _ in range(20)]
    empty = [(rng.random(40).astype(np.float32), np.zeros(40, dtype=bool)) for _ in range(10)]
    alone, counted = _fit(full, 0.1), _fit(full + empty, 0.1)
    excluded = _fit(full + empty, 0.1, "exclude")
    assert counted.threshold > alone.threshold
    assert excluded.threshold == alone.threshold and excluded.n == 20 and counted.n == 30


def test_risk_curve_on_the_grid_is_the_exact_mean_fnr():
    rng = np.random.default_rng(2)
    cases = tied_cases(rng, 12, max_voxels=30)
    fitted = _fit(cases, 0.2)
    values = reference_values(cases)
    for k in (0, 1, 13, 30, 50, 87, 99, 100):
        t = Fraction(k, 100)  # the real number k / 100
        exact = sum((exact_fnr(case, t) for case in values), Fraction(0)) / len(values)
        assert fitted.grid[k] == RISK_GRID[k] == k / 100
        assert fitted.grid_mean_risk[k] == pytest.approx(float(exact), abs=1e-12)
        n = len(values)
        assert fitted.grid_adjusted_risk[k] == pytest.approx(float(exact * n / (n + 1) + Fraction(1, n + 1)))


def test_json_form_holds_method_alpha_threshold_n_and_curve():
    rng = np.random.default_rng(3)
    fitted = _fit(tied_cases(rng, 10), 0.25)
    record = fitted.to_dict()
    assert record["alpha"] == 0.25 and record["threshold"] == fitted.threshold and record["n"] == 10
    assert record["method"].startswith("conformal risk control")
    assert len(record["risk_curve"]["threshold"]) == len(record["risk_curve"]["mean_fnr"]) == 101
    import json

    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_pass_two_must_match_pass_one():
    rng = np.random.default_rng(4)
    cases = [(rng.random(200).astype(np.float32), rng.random(200) < 0.5) for _ in range(20)]
    stats = _pass1(cases)
    crossing = locate_crossing(stats, 0.1)
    assert crossing.bin is not None and 0 <= crossing.bin < N_COARSE
    with pytest.raises(ValueError, match="pass 2"):
        conformal_threshold(stats, 0.1)
    partial = BinFnrStats.zeros(crossing.bin)
    for case in cases[:-1]:
        partial = partial.merge(case_bin_stats([case], crossing.bin))
    with pytest.raises(ValueError, match="does not match pass 1"):
        conformal_threshold(stats, 0.1, partial)
    wrong_bin = case_bin_stats([cases[0]], crossing.bin + 1)
    with pytest.raises(ValueError, match="does not match pass 1"):
        conformal_threshold(stats, 0.1, wrong_bin)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, float("nan"), "0.1", True])
def test_bad_alpha_is_refused(alpha):
    stats = _pass1([(np.array([0.5], dtype=np.float32), np.array([True]))])
    with pytest.raises(ValueError, match="alpha"):
        locate_crossing(stats, alpha)


def test_bad_empty_references_and_no_case_are_refused():
    with pytest.raises(ValueError, match="empty_references"):
        locate_crossing(
            _pass1([(np.array([0.5], dtype=np.float32), np.array([True]))]), 0.1, empty_references="drop"
        )
    with pytest.raises(ValueError, match="at least one calibration case"):
        locate_crossing(FnrStats.zeros(), 0.1)


def test_a_strictly_increasing_map_of_the_probabilities_gives_the_same_masks():
    """The fit sees p only through the order of the voxels: relabel every distinct value by an increasing
    map g (0 and 1 kept), and t_hat moves to g(t_hat) while every calibration mask stays the same. So
    temperature scaling of a sigmoid or two-channel softmax cannot change conformal masks
    (docs/conformal.md#does-calibration-buy-smaller-masks)."""
    rng = np.random.default_rng(6)
    for _ in range(20):
        cases = [(rng.random(60).astype(np.float32) ** 3, rng.random(60) < 0.4) for _ in range(15)]
        values = np.unique(np.concatenate([p for p, _ in cases] + [np.float32([0, 1])]))
        mapped = np.sort(rng.choice(np.arange(1, 2**23, dtype=np.uint32), values.size - 2, replace=False))
        image = np.concatenate([[0], mapped.astype(np.float32) / 2**23, [1]]).astype(np.float32)
        moved = [(image[np.searchsorted(values, p)], reference) for p, reference in cases]
        fitted, refitted = _fit(cases, 0.15), _fit(moved, 0.15)
        assert refitted.threshold == image[np.searchsorted(values, np.float32(fitted.threshold))]
        for (p, _), (q, _) in zip(cases, moved):
            np.testing.assert_array_equal(p >= fitted.threshold, q >= refitted.threshold)
