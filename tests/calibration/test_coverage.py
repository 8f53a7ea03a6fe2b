"""Coverage and bias of the pooled metrics' intervals against closed-form population values
(docs/calibration.md#bca): 200 replicated datasets of 40 cases from a calibrated, an over-confident and
an under-confident model whose cases differ (synthetic_population.py), 300 case resamples each, BCa at
95%. All replicates are computed at once: the per-case sums carry a replicate axis."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_population import CONFIDENCE, MODELS, population, population_distribution, simulate

from nnunet_surgery.calibration.bootstrap import bootstrap_bounds
from nnunet_surgery.calibration.pooled import FINE_KEYS, PLUG_IN, label_statistic
from nnunet_surgery.calibration.resampling import bootstrap_values, jackknife_values, point_values
from nnunet_surgery.calibration.smooth import smooth_ece

REPLICATES, CASES, RESAMPLES = 200, 40, 300
# the population value each estimate's interval is checked against
TARGETS = {
    "nll": "nll",
    "brier": "brier",
    "ece_debiased": "ece",
    "ce_l2sq_debiased": "ce_l2sq",
    "smooth_ece": "smooth_ece",
}


def _statistic(metrics: tuple[str, ...]):
    """label_statistic over (k, replicates, ...) sums, rows and replicates flattened."""

    def statistic(sums):
        k, replicates = next(iter(sums.values())).shape[:2]
        flat = {name: values.reshape(k * replicates, *values.shape[2:]) for name, values in sums.items()}
        values = label_statistic(flat)
        return {name: values[name].reshape(k, replicates) for name in metrics}

    return statistic


def _population_smooth_ece(truth: np.ndarray) -> float:
    """smECE of the population: the voxel distribution pi with residual p - q, no finite-sample offset."""
    pi = population_distribution()
    return float(smooth_ece(pi, pi * CONFIDENCE, pi * truth, density_eps=0.0).value)


def _intervals(model: str, metrics: tuple[str, ...], seed: int, with_fine: bool):
    truth = MODELS[model](CONFIDENCE)
    sums = simulate(np.random.default_rng(seed), truth, REPLICATES, CASES)
    if not with_fine:
        sums = {name: values for name, values in sums.items() if name not in FINE_KEYS}
    statistic = _statistic(tuple(sorted({*metrics, *(PLUG_IN[m] for m in metrics if m in PLUG_IN)})))
    point = point_values(sums, statistic)
    resampled = bootstrap_values(sums, statistic, RESAMPLES, seed + 1)
    jackknife = jackknife_values(sums, statistic)
    bounds = {
        name: bootstrap_bounds(
            point[name],
            resampled[name],
            jackknife[name],
            reference=point[PLUG_IN[name]] if name in PLUG_IN else None,
        )
        for name in metrics
    }
    return point, bounds, truth


def _coverage(bounds, value: float) -> float:
    low, high = bounds
    return float(np.mean((low <= value) & (value <= high)))


def _z(point: np.ndarray, value: float) -> float:
    """(mean - value) / its standard error over the replicates."""
    return float((point.mean() - value) / (point.std(ddof=1) / np.sqrt(point.size)))


@pytest.mark.parametrize("model", list(MODELS))
def test_binned_metrics_cover_their_population_values(model):
    metrics = ("nll", "brier", "ece", "ece_debiased", "ce_l2sq", "ce_l2sq_debiased")
    point, bounds, truth = _intervals(model, metrics, seed=list(MODELS).index(model), with_fine=False)
    values = population(truth)
    for name in ("nll", "brier", "ece_debiased", "ce_l2sq_debiased"):
        assert _coverage(bounds[name], values[TARGETS[name]]) >= 0.9, (
            name,
            _coverage(bounds[name], values[TARGETS[name]]),
        )
        assert abs(_z(point[name], values[TARGETS[name]])) < 3.0, (
            name,
            _z(point[name], values[TARGETS[name]]),
        )
    for name, (low, high) in bounds.items():
        assert np.all((low <= point[name]) & (point[name] <= high)), name
    if model == "calibrated":
        # the plug-in errors sit above 0 in every replicate: biased, and no interval of theirs covers 0
        assert _z(point["ece"], 0.0) > 10 and _coverage(bounds["ece"], 0.0) == 0.0
        assert _z(point["ce_l2sq"], 0.0) > 10


def test_population_smooth_ece_is_relplots_on_the_population():
    relplot = pytest.importorskip("relplot")
    pi = population_distribution()
    truth = MODELS["over-confident"](CONFIDENCE)
    repeats = np.round(pi * 2e6).astype(int)  # the population as 2 million samples with fractional targets
    reference = relplot.smECE(np.repeat(CONFIDENCE, repeats), np.repeat(truth, repeats))
    assert _population_smooth_ece(truth) == pytest.approx(reference, abs=2e-5)
    assert _population_smooth_ece(CONFIDENCE) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_smooth_ece_covers_its_population_value_where_it_is_not_zero(model):
    point, bounds, truth = _intervals(model, ("smooth_ece",), seed=list(MODELS).index(model), with_fine=True)
    value = _population_smooth_ece(truth)
    low, high = bounds["smooth_ece"]
    assert np.all((low <= point["smooth_ece"]) & (point["smooth_ece"] <= high))
    if model == "calibrated":
        # a calibrated model's smooth ECE is 0; the estimate is positive (noise smoothed at a bandwidth
        # that shrinks as N^(-1/3)), so no interval of it covers 0: read the debiased errors there
        assert value == 0.0 and np.all(low > 0.0)
    else:
        assert _coverage(bounds["smooth_ece"], value) >= 0.9
        assert abs(_z(point["smooth_ece"], value)) < 3.0
