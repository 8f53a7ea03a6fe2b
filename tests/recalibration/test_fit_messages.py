"""What `recalibrate fit` says: which temperature stopped at its bound and why, and an NLL never below 0."""

from __future__ import annotations

import dataclasses

import pytest
from recalibrate_cli import run_recalibrate
from test_errors import SHAPES, _fit_args

from nnunet_surgery.commands.recalibrate import _bound_warning
from nnunet_surgery.recalibration.calibrator import Calibrator
from nnunet_surgery.recalibration.objective import SCALE_MIN

LIMIT = 1.0 / SCALE_MIN


def _calibrator(method, temperatures, region_based=False, names=("liver", "lesion")) -> Calibrator:
    n = len(temperatures)
    return Calibrator(method, tuple(temperatures), (0.0,) * n, n, region_based, names, ".nii.gz")


def test_no_warning_below_the_bound():
    assert _bound_warning(_calibrator("vector", [0.029, 2.0, LIMIT * 0.999]), "vector") is None


def test_vector_scaling_names_the_channel_at_its_bound_and_does_not_blame_the_data():
    """One softmax channel at T = 1000 and the others fitted (the issue's T = 0.029 beside 1000): the
    channel is named, and the message says the other channels carry its information."""
    warning = _bound_warning(_calibrator("vector", [0.029, LIMIT, 0.5]), "vector")
    assert "channel 1 ('liver')" in warning and f"limit of {LIMIT:g}" in warning, warning
    assert "redundant" in warning and "no information" not in warning, warning
    region = _bound_warning(_calibrator("vector", [1.0, LIMIT], True, ("whole", "core")), "vector")
    assert "channel 1 ('core')" in region and "its region" in region, region


@pytest.mark.parametrize("method", ["temperature", "vector"])
def test_every_temperature_at_its_bound_means_no_information(method):
    warning = _bound_warning(_calibrator(method, [LIMIT, LIMIT, LIMIT]), method)
    assert "no information on the labels" in warning and "channel" not in warning, warning


def test_the_nll_is_never_printed_below_zero(overconfident, tmp_path, capsys, monkeypatch):
    """On separable data the fitted NLL rounds to -2.2e-16: shown as 0 (the file keeps the value)."""
    import nnunet_surgery.recalibration.fit as fit

    real = fit.fit_calibrator

    def separable(*args, **kwargs):
        calibrator = real(*args, **kwargs)
        summary = dataclasses.replace(calibrator.fit, nll_after=-2.2e-16)
        return dataclasses.replace(calibrator, fit=summary)

    monkeypatch.setattr(fit, "fit_calibrator", separable)
    data = overconfident(2, 2.0, SHAPES)
    assert run_recalibrate(*_fit_args(data, tmp_path / "c.json")) == 0
    out = capsys.readouterr().out
    assert "-> 0 nats/voxel" in out and "-2.2e-16" not in out, out
