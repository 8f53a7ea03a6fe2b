"""Estimator names say what they compute; an earlier name stays as an alias of the very same function."""

from __future__ import annotations

import numpy as np

import nnunet_surgery.calibration as calibration
from nnunet_surgery.calibration import (
    FINE_BINS,
    binned_stats,
    calibration_errors,
    equal_mass_ece,
    equal_mass_stats,
)


def test_adaptive_calibration_error_is_the_equal_mass_ece():
    assert calibration.adaptive_calibration_error is equal_mass_ece
    assert calibration.variants.adaptive_calibration_error is equal_mass_ece
    p = np.linspace(0.01, 0.99, 400)
    y = (np.arange(400) % 3 == 0).astype(float)
    fine = binned_stats(p, y, FINE_BINS)
    assert equal_mass_ece(fine, 8) == calibration_errors(equal_mass_stats(fine, 8))["ece"]
