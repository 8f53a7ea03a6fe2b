"""Fitting recovers a known temperature, agrees with an independent float64 fit and with netcal, and
lowers the NLL on the data it was fitted on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from nnunet_surgery.recalibration.fit import fit_calibrator
from nnunet_surgery.recalibration.logits import logits_from_probabilities

CASES_2D = ((120, 120), (100, 130), (110, 110))
CASES_3D = ((12, 40, 40), (10, 40, 44), (8, 44, 40))


def _pooled(data) -> tuple[np.ndarray, np.ndarray]:
    """(C, N) saved probabilities and (N,) labels of every case, in case order."""
    probabilities = np.concatenate(
        [data.probabilities[c].reshape(data.probabilities[c].shape[0], -1) for c in sorted(data.references)],
        axis=1,
    )
    labels = np.concatenate([data.references[c].reshape(-1) for c in sorted(data.references)])
    return probabilities, labels


def _targets(labels: np.ndarray, region_based: bool) -> np.ndarray:
    return np.stack([np.isin(labels, [1, 2]), labels == 2]) if region_based else labels


def reference_nll(
    scale: np.ndarray, bias: np.ndarray, logits: np.ndarray, target, region_based: bool
) -> float:
    """Mean NLL of scaled logits, written independently (scipy.special) in float64."""
    from scipy.special import log_softmax

    s = scale[:, None] * logits + bias[:, None]
    if region_based:
        return float(np.sum(np.logaddexp(0, s) - target * s) / logits.shape[1])
    return float(-np.mean(log_softmax(s, axis=0)[target, np.arange(logits.shape[1])]))


@pytest.mark.parametrize(
    "kind, shapes",
    [
        (2, CASES_2D),
        (4, CASES_2D),
        ("regions", CASES_2D),
        (2, CASES_3D),
        (4, CASES_3D),
        ("regions", CASES_3D),
    ],
    ids=["2d-softmax2", "2d-softmax4", "2d-regions", "3d-softmax2", "3d-softmax4", "3d-regions"],
)
def test_temperature_is_recovered(overconfident, kind, shapes):
    temperature = 2.5
    data = overconfident(kind, temperature, shapes)
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json)
    fitted = calibrator.temperatures[0]
    # the statistical error of the MLE: 1 / sqrt(Fisher information) in beta = 1 / T, at the fit
    probabilities, labels = _pooled(data)
    logits = logits_from_probabilities(probabilities, softmax=not data.region_based)
    beta = 1 / fitted
    step = 1e-4
    curvature = (
        (
            reference_nll(
                np.full(len(logits), beta + step),
                np.zeros(len(logits)),
                logits,
                _targets(labels, data.region_based),
                data.region_based,
            )
            - 2
            * reference_nll(
                np.full(len(logits), beta),
                np.zeros(len(logits)),
                logits,
                _targets(labels, data.region_based),
                data.region_based,
            )
            + reference_nll(
                np.full(len(logits), beta - step),
                np.zeros(len(logits)),
                logits,
                _targets(labels, data.region_based),
                data.region_based,
            )
        )
        / step**2
        * logits.shape[1]
    )
    standard_error_t = fitted**2 / np.sqrt(curvature)  # delta method: dT = T^2 d beta
    assert abs(fitted - temperature) <= 4 * standard_error_t
    assert abs(fitted - temperature) / temperature < 0.02
    assert calibrator.fit.nll_after <= calibrator.fit.nll_before
    assert all(t == fitted for t in calibrator.temperatures)
    assert calibrator.biases == (0.0,) * len(calibrator.biases)


@pytest.mark.parametrize("kind", [2, 4, "regions"])
def test_temperature_equals_an_independent_float64_fit(overconfident, kind):
    data = overconfident(kind, 1.7, CASES_3D[:2], folds=2, seed=3)
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json)
    probabilities, labels = _pooled(data)
    logits = logits_from_probabilities(probabilities, softmax=not data.region_based)
    target = _targets(labels, data.region_based)
    c = len(logits)
    best = minimize_scalar(
        lambda beta: reference_nll(np.full(c, beta), np.zeros(c), logits, target, data.region_based),
        bounds=(0.05, 5.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert calibrator.temperatures[0] == pytest.approx(1 / best.x, rel=1e-6)
    assert calibrator.fit.nll_after == pytest.approx(best.fun, rel=1e-9)
    assert calibrator.fit.nll_before == pytest.approx(
        reference_nll(np.ones(c), np.zeros(c), logits, target, data.region_based), rel=1e-12
    )


@pytest.mark.parametrize("kind", [2, 4, "regions"])
def test_vector_scaling_equals_an_independent_float64_fit(overconfident, kind):
    data = overconfident(kind, 1.5, CASES_3D[:2], seed=5)
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json, method="vector")
    probabilities, labels = _pooled(data)
    logits = logits_from_probabilities(probabilities, softmax=not data.region_based)
    target = _targets(labels, data.region_based)
    c = len(logits)
    free_bias = c - 1 if not data.region_based else c

    def objective(theta):
        bias = np.concatenate(([0.0], theta[c:])) if not data.region_based else theta[c:]
        return reference_nll(theta[:c], bias, logits, target, data.region_based)

    best = minimize(
        objective, np.concatenate((np.ones(c), np.zeros(free_bias))), method="BFGS", options={"gtol": 1e-10}
    )
    fitted = np.concatenate(
        (
            1 / np.asarray(calibrator.temperatures),
            calibrator.biases[1:] if not data.region_based else calibrator.biases,
        )
    )
    assert calibrator.fit.nll_after <= best.fun + 1e-12  # Newton's optimum is at least as good as BFGS's
    assert calibrator.fit.nll_after == pytest.approx(best.fun, rel=1e-7)
    np.testing.assert_allclose(fitted, best.x, rtol=1e-3, atol=1e-3)
    # vector scaling has more freedom than one temperature: never a worse fit
    single = fit_calibrator(data.gt, data.folds, data.dataset_json)
    assert calibrator.fit.nll_after <= single.fit.nll_after + 1e-12


@pytest.fixture
def torch_float64():
    """netcal builds its tensors with the default dtype; in float32 its finite-difference gradients vanish
    and scipy stops at T = 1, so the reference runs in float64."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("kind", [2, 4])
def test_temperature_agrees_with_netcal(overconfident, torch_float64, kind):
    from netcal.scaling import TemperatureScaling

    data = overconfident(kind, 2.2, CASES_2D[:2], seed=7)
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json)
    probabilities, labels = _pooled(data)
    netcal = TemperatureScaling()
    if kind == 2:  # binary: netcal takes the foreground confidence; sigmoid(logit p / T) is softmax / T
        netcal.fit(probabilities[1].astype(np.float64), labels)
    else:
        netcal.fit(probabilities.T.astype(np.float64), labels)
    assert calibrator.temperatures[0] == pytest.approx(1 / float(netcal.weights[0]), rel=1e-4)


def test_roi_restricts_the_fit_to_its_voxels(overconfident):
    from scipy.ndimage import distance_transform_edt

    data = overconfident(2, 2.0, CASES_3D[:2], seed=11)
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json, roi="band:1")
    logits, target = [], []
    for case in sorted(data.references):
        labels = data.references[case]
        band = distance_transform_edt(labels == 0) <= 1  # the foreground and every voxel within 1 of it
        flat = data.probabilities[case].reshape(2, -1)[:, band.reshape(-1)]
        logits.append(logits_from_probabilities(flat, softmax=True))
        target.append(labels.reshape(-1)[band.reshape(-1)])
    logits, target = np.concatenate(logits, axis=1), np.concatenate(target)
    best = minimize_scalar(
        lambda beta: reference_nll(np.full(2, beta), np.zeros(2), logits, target, False),
        bounds=(0.05, 5.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert calibrator.fit.voxels == target.size < sum(r.size for r in data.references.values())
    assert calibrator.temperatures[0] == pytest.approx(1 / best.x, rel=1e-6)
    assert calibrator.fit.roi == "band:1"


def test_processes_do_not_change_the_fit(overconfident):
    data = overconfident(4, 1.8, CASES_3D, folds=3, seed=2)
    one = fit_calibrator(data.gt, data.folds, data.dataset_json, method="vector")
    two = fit_calibrator(data.gt, data.folds, data.dataset_json, method="vector", num_processes=2)
    assert one.temperatures == two.temperatures and one.biases == two.biases
    assert one.fit == two.fit


def test_saturated_probabilities_stay_finite(overconfident):
    # temperature 40: most saved probabilities are exactly 0 or 1 in float32
    data = overconfident("regions", 40.0, CASES_3D[:2], seed=4)
    saved = np.concatenate([p.reshape(2, -1) for p in data.probabilities.values()], axis=1)
    assert np.mean((saved == 0) | (saved == 1)) > 0.3
    for method in ("temperature", "vector"):
        calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json, method=method)
        assert np.all(np.isfinite(calibrator.temperatures)) and np.all(np.isfinite(calibrator.biases))
        assert np.isfinite(calibrator.fit.nll_after) and calibrator.fit.nll_after <= calibrator.fit.nll_before
        # the fraction reported is the fraction of values outside the dtype's faithful range
        low, high = np.finfo(np.float32).tiny, 1 - np.finfo(np.float32).eps / 2
        assert calibrator.fit.saturated_fraction == pytest.approx(np.mean((saved < low) | (saved > high)))
        recalibrated = calibrator.transform(data.probabilities["case_000"])
        assert np.all(np.isfinite(recalibrated))


@pytest.mark.parametrize("method", ["temperature", "vector"])
def test_uninformative_probabilities_stop_at_the_temperature_limit(overconfident, method):
    from nnunet_surgery.recalibration.objective import SCALE_MIN

    data = overconfident(2, 2.0, CASES_3D[:2], seed=6)
    for case, saved in data.probabilities.items():  # channels swapped: the model ranks voxels backwards
        np.savez_compressed(data.folds[0] / f"{case}.npz", probabilities=saved[::-1])
    calibrator = fit_calibrator(data.gt, data.folds, data.dataset_json, method=method)
    assert calibrator.fit.at_bound
    assert max(calibrator.temperatures) == pytest.approx(1 / SCALE_MIN)
    assert calibrator.fit.nll_after <= calibrator.fit.nll_before
    # at the bound the NLL still falls towards it: the constrained optimum is there
    probabilities, labels = _pooled(data)
    logits = logits_from_probabilities(probabilities[::-1], softmax=True)
    if method == "temperature":
        nll = [
            reference_nll(np.full(2, beta), np.zeros(2), logits, labels, False)
            for beta in (SCALE_MIN, 2 * SCALE_MIN)
        ]
        assert nll[0] < nll[1]
        assert calibrator.fit.nll_after == pytest.approx(nll[0], rel=1e-12)


def test_fit_memory_does_not_grow_with_the_number_of_cases(overconfident):
    import tracemalloc

    shape = (24, 64, 64)
    case_bytes = 4 * 2 * np.prod(shape)  # one case's float32 probabilities
    warm = overconfident(2, 2.0, CASES_3D[:1], seed=1)
    fit_calibrator(warm.gt, warm.folds, warm.dataset_json)  # imports (nnU-Net's LabelManager) before tracing
    peaks = {}
    for n in (2, 8):
        data = overconfident(2, 2.0, (shape,) * n, seed=n)
        tracemalloc.start()
        fit_calibrator(data.gt, data.folds, data.dataset_json)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # one case being scored, the next read ahead (whether both overlap at the peak depends on the reading
    # thread's timing: one case at most), float64 chunks; holding every case would add 6 cases
    assert peaks[2] > 2 * case_bytes  # the cases themselves are traced
    assert peaks[8] - peaks[2] < 1.5 * case_bytes, peaks
