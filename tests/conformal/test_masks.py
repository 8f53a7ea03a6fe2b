"""Applying a threshold: the mask, and per-case sums whose metrics equal direct counts and which a case
bootstrap can resample as rows of a matrix."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration.bootstrap import case_weights
from nnunet_surgery.conformal import (
    MASK_FIELDS,
    MaskSums,
    case_mask_counts,
    case_mask_sums,
    mask_metrics,
    threshold_mask,
)


def _cases(seed: int, n_cases: int = 12):
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(n_cases):
        n = int(rng.integers(50, 400))
        p = rng.random(n).astype(np.float32)
        reference = (rng.random(n) < p) & (index % 4 != 0)  # every fourth reference empty
        cases.append((p, reference, p >= 0.5))
    return cases


def test_case_sums_equal_direct_counts():
    t = 0.37
    for p, reference, segmentation in _cases(0):
        sums = case_mask_sums([(p, reference, segmentation)], t)
        mask = p.astype(np.float64) >= t
        missed = int((reference & ~mask).sum())
        assert sums.mask_voxels == mask.sum() and sums.segmentation_voxels == segmentation.sum()
        assert sums.reference_voxels == reference.sum() and sums.missed_voxels == missed
        assert sums.fnr_sum == (missed / reference.sum() if reference.any() else 0.0)
        assert (sums.n_cases, sums.n_empty) == (1, float(not reference.any()))


def test_metrics_of_merged_sums():
    cases = _cases(1)
    t = 0.2
    total = MaskSums()
    for case in cases:
        total = total.merge(case_mask_sums([case], t))
    fnrs = [((ref & (p < t)).sum() / ref.sum()) if ref.any() else 0.0 for p, ref, _ in cases]
    nonempty = [f for f, (_, ref, _) in zip(fnrs, cases) if ref.any()]
    masks = sum(int((p >= np.float32(t)).sum()) for p, _, _ in cases)
    metrics = total.metrics()
    assert metrics["mean_fnr"] == pytest.approx(np.mean(fnrs))
    assert total.metrics("exclude")["mean_fnr"] == pytest.approx(np.mean(nonempty))
    assert metrics["size_to_segmentation"] == pytest.approx(masks / sum(int(s.sum()) for _, _, s in cases))
    assert metrics["size_to_reference"] == pytest.approx(masks / sum(int(r.sum()) for _, r, _ in cases))
    missed = sum(int((r & (p < t)).sum()) for p, r, _ in cases)
    assert metrics["pooled_fnr"] == pytest.approx(missed / sum(int(r.sum()) for _, r, _ in cases))


def test_bootstrap_rows_resample_like_merging_drawn_cases():
    cases = _cases(2)
    per_case = [case_mask_sums([case], 0.3) for case in cases]
    weights = case_weights(len(cases), 5, seed=0)
    resampled = mask_metrics(weights @ np.stack([s.vector() for s in per_case]))
    for r, row in enumerate(weights):
        merged = MaskSums()
        for sums, times in zip(per_case, row.astype(int)):
            for _ in range(times):
                merged = merged.merge(sums)
        for name, value in merged.metrics().items():
            assert resampled[name][r] == pytest.approx(value), name
    assert len(MASK_FIELDS) == per_case[0].vector().size


def test_undefined_ratios_are_nan():
    metrics = MaskSums(n_cases=1.0, n_empty=1.0).metrics("exclude")
    assert all(np.isnan(value) for value in metrics.values())
    assert MaskSums(n_cases=1.0, n_empty=1.0).metrics()["mean_fnr"] == 0.0


def test_threshold_mask_keeps_shape_and_ties():
    p = np.array([[0.25, 0.5], [0.5, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(threshold_mask(p, 0.5), [[False, True], [True, True]])


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ((np.zeros(3, np.float32), np.zeros(3, bool), np.zeros(2, bool), 0.5), "one shape"),
        ((np.zeros(3, np.float32), np.zeros(3, int), np.zeros(3, bool), 0.5), "reference must be a boolean"),
        ((np.zeros(3, np.float32), np.zeros(3, bool), np.zeros(3, bool), 1.5), "threshold"),
        ((np.zeros(3, np.float32), np.zeros(3, bool), np.zeros(3, bool), "0.5"), "threshold"),
    ],
)
def test_bad_inputs_are_refused(arguments, match):
    with pytest.raises(ValueError, match=match):
        case_mask_counts(*arguments)


def test_bad_sums_shape_is_refused():
    with pytest.raises(ValueError, match="MASK_FIELDS"):
        mask_metrics(np.zeros(3))
