"""Validation of probability maps: NaN/inf, range, softmax sums; region channels need not sum to 1."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.calibration import ProbabilityError, check_probabilities


def _softmax() -> np.ndarray:
    p = np.random.default_rng(0).random((3, 50)).astype(np.float32)
    return p / p.sum(axis=0)


def test_valid_softmax_and_sigmoid_pass():
    check_probabilities(_softmax(), softmax=True)
    check_probabilities(np.random.default_rng(1).random((2, 40)), softmax=False)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    p = _softmax()
    p[1, 7] = bad
    with pytest.raises(ProbabilityError, match="NaN or inf"):
        check_probabilities(p, softmax=False)


@pytest.mark.parametrize("bad", [-0.1, 1.2])
def test_values_outside_unit_interval_are_refused(bad):
    p = np.full((2, 10), 0.5)
    p[0, 0] = bad
    with pytest.raises(ProbabilityError, match=r"\[0, 1\]"):
        check_probabilities(p, softmax=False)


def test_softmax_must_sum_to_one_but_regions_need_not():
    p = np.full((2, 10), 0.7, dtype=np.float32)
    check_probabilities(p, softmax=False)
    with pytest.raises(ProbabilityError, match="sum to 1"):
        check_probabilities(p, softmax=True)


def test_integer_arrays_are_refused():
    with pytest.raises(ProbabilityError, match="floating"):
        check_probabilities(np.zeros((2, 3), dtype=np.int64), softmax=False)
