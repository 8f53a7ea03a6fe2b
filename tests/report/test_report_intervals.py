"""Bootstrap intervals and paired comparisons of the report (docs/calibration.md#bootstrap).

Coverage and width are checked on cases drawn from a known model, where the population value of each
pooled metric is derived in closed form; the report's paired intervals are checked against a direct
numpy resampling of the case arrays.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_cli import run_report_command

from nnunet_surgery.calibration import label_stats
from nnunet_surgery.calibration.pooled import label_case_sums, label_statistic
from nnunet_surgery.calibration.resampling import estimate_with_interval
from nnunet_surgery.report import build_report

N_BINS = 4
# probabilities on a grid inside (0.1, 0.9), none on a bin edge; the model's true frequency is
# g(p) = 0.5 + 1.2 (p - 0.5) (under-confident by a known amount) plus a per-case shift d ~ U(-0.02, 0.02)
GRID = np.linspace(0.1, 0.9, 161)[:-1] + 0.0025


def _g(p: np.ndarray) -> np.ndarray:
    return 0.5 + 1.2 * (p - 0.5)


def _population() -> dict[str, float]:
    """Pooled ECE and Brier of the model over infinitely many cases (the shift has mean 0)."""
    bins = np.floor(GRID * N_BINS).astype(int)
    ece = sum(
        np.mean(bins == b) * abs(_g(GRID[bins == b]).mean() - GRID[bins == b].mean()) for b in np.unique(bins)
    )
    # E[(p - y)^2] = p^2 - 2 p q + q for y ~ Bernoulli(q), q = g(p) + d, linear in d with E[d] = 0
    brier = np.mean(GRID**2 - 2 * GRID * _g(GRID) + _g(GRID))
    return {"ece": float(ece), "brier": float(brier)}


def _cases(rng: np.random.Generator, n_cases: int, repeats: int = 25) -> list:
    p = np.tile(GRID, repeats).astype(np.float32)
    cases = []
    for _ in range(n_cases):
        q = _g(p.astype(np.float64)) + rng.uniform(-0.02, 0.02)
        cases.append(label_stats(p, rng.random(p.size) < q, N_BINS))
    return cases


def _intervals(cases: list, seed: int, resamples: int = 500) -> dict:
    """The report's default (BCa) intervals of the pooled ECE and Brier."""
    estimates = estimate_with_interval(
        label_case_sums(cases), label_statistic, n_resamples=resamples, seed=seed
    )
    return {name: estimates[name].interval for name in ("ece", "brier")}


def test_intervals_cover_the_population_value_at_the_nominal_rate():
    truth = _population()
    rng = np.random.default_rng(2024)
    covered = {"ece": 0, "brier": 0}
    repetitions = 200
    for repetition in range(repetitions):
        intervals = _intervals(_cases(rng, 30), seed=repetition)
        for name, interval in intervals.items():
            covered[name] += interval.low <= truth[name] <= interval.high
    assert covered["ece"] >= 0.9 * repetitions and covered["brier"] >= 0.9 * repetitions, covered


def test_interval_width_shrinks_as_one_over_root_cases():
    rng = np.random.default_rng(7)
    widths = {20: [], 80: []}
    for repetition in range(12):
        for n_cases in widths:
            interval = _intervals(_cases(rng, n_cases, repeats=10), seed=repetition)["brier"]
            widths[n_cases].append(interval.high - interval.low)
    ratio = np.mean(widths[80]) / np.mean(widths[20])
    assert 0.4 <= ratio <= 0.625, ratio  # sqrt(20 / 80) = 0.5


def test_a_model_compared_with_itself_differs_by_exactly_zero(build, tmp_path, no_plots):
    folders = build("multiclass", n_models=1)
    report = build_report(
        folders.gt,
        [folders.preds[0], folders.preds[0]],
        folders.dataset_json,
        names=["a", "b"],
        bootstrap=200,
    )
    for paired in [
        *(label.paired for label in report.models[1].labels.values()),
        report.models[1].top_label.paired,
    ]:
        assert paired.reference == "a"
        for comparison in paired.metrics.values():
            assert comparison.difference == 0.0 and comparison.fraction_better == 0.0
            assert comparison.interval.low == comparison.interval.high == 0.0
    assert report.models[0].labels["liver"].paired is None


def _ece_and_brier(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pooled ECE (20 bins [k/20, (k+1)/20), the last closed) and Brier of flat arrays, from scratch."""
    p = p.astype(np.float64)
    bins = np.minimum(np.floor(p * 20).astype(int), 19)
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += inside.sum() / p.size * abs(y[inside].mean() - p[inside].mean())
    return ece, float(np.mean((p - y) ** 2))


def test_paired_intervals_agree_with_direct_resampling_of_the_case_arrays(build, tmp_path, no_plots):
    folders = build("binary", ((3, 9, 8), (2, 10, 7), (4, 6, 6), (3, 8, 8), (2, 7, 9), (3, 6, 10)))
    resamples, seed = 200, 5
    assert (
        run_report_command(
            folders,
            tmp_path / "out",
            "-np",
            "1",
            "--bootstrap",
            str(resamples),
            "--bootstrap-seed",
            str(seed),
            "--interval",
            "percentile",
        )
        == 0
    )
    report = json.loads((tmp_path / "out" / "calibration.json").read_text())
    cases = sorted(folders.references)
    arrays = [
        {case: (maps[case][1].ravel(), folders.references[case].ravel() == 1) for case in cases}
        for maps in folders.probabilities
    ]
    draws = np.random.default_rng(seed).integers(0, len(cases), size=(resamples, len(cases)))
    values = np.empty((2, resamples, 2))
    for model in range(2):
        for r, drawn in enumerate(draws):
            p = np.concatenate([arrays[model][cases[c]][0] for c in drawn])
            y = np.concatenate([arrays[model][cases[c]][1] for c in drawn])
            values[model, r] = _ece_and_brier(p, y)
    tumor = [report["models"][f"model_{m}"]["labels"]["tumor"] for m in range(2)]
    for index, name in enumerate(("ece", "brier")):
        for model in range(2):
            expected = np.percentile(values[model, :, index], [2.5, 97.5])
            assert tumor[model]["pooled_ci95"][name] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        difference = values[1, :, index] - values[0, :, index]
        paired = tumor[1]["paired"]["metrics"][name]
        assert paired["ci95"] == pytest.approx(np.percentile(difference, [2.5, 97.5]), rel=1e-9, abs=1e-12)
        assert paired["fraction_better"] == pytest.approx(np.mean(difference < 0))
        assert paired["difference"] == pytest.approx(tumor[1]["pooled"][name] - tumor[0]["pooled"][name])
    assert report["bootstrap"] == {
        "level": 0.95,
        "method": "percentile",
        "resamples": resamples,
        "seed": seed,
        "unit": "case",
    }
    comparison = (tmp_path / "out" / "comparison.md").read_text()
    assert "### tumor: model_1 vs model_0" in comparison


def test_a_worse_model_is_told_apart_and_a_same_model_is_not(build, tmp_path, no_plots):
    folders = build("binary", ((3, 12, 10),) * 8, n_models=2)
    # model_1 is noisier (logit noise scale 2 vs 1); `twin` is drawn like model_0 (2 one-hot + N(0, 1)
    # logits, as the fixture draws it) with independent noise: the same model up to case-level noise
    twin = folders.root / "twin"
    twin.mkdir()
    rng = np.random.default_rng(1)
    for case, reference in folders.references.items():
        logits = 2.0 * np.stack([reference == 0, reference == 1]) + rng.normal(size=(2, *reference.shape))
        probabilities = np.exp(logits - logits.max(axis=0))
        np.savez_compressed(
            twin / f"{case}.npz", probabilities=(probabilities / probabilities.sum(0)).astype(np.float32)
        )
    report = build_report(folders.gt, [folders.preds[0], folders.preds[1], twin], folders.dataset_json)
    worse, same = (report.models[index].labels["tumor"].paired.metrics for index in (1, 2))
    for name in ("nll", "ece", "brier"):
        assert worse[name].interval.low > 0 and worse[name].fraction_better == 0.0, worse[name]
        assert not same[name].interval.excludes(0.0), same[name]
        assert 0.025 < same[name].fraction_better < 0.975, same[name]


def test_bootstrap_zero_leaves_out_intervals_and_the_comparison(build, tmp_path, no_plots):
    folders = build()
    assert run_report_command(folders, tmp_path / "out", "-np", "1", "--bootstrap", "0") == 0
    report = json.loads((tmp_path / "out" / "calibration.json").read_text())
    assert report["bootstrap"] is None
    label = report["models"]["model_1"]["labels"]["tumor"]
    assert "pooled_ci95" not in label and "paired" not in label
    assert not (tmp_path / "out" / "comparison.md").exists()
    assert "[" not in (tmp_path / "out" / "calibration.md").read_text().split("## tumor")[1]


@pytest.mark.parametrize(("option", "value"), [("--bootstrap", "-1"), ("--bootstrap-seed", "-3")])
def test_negative_bootstrap_options_are_refused(build, tmp_path, capsys, option, value):
    folders = build()
    assert run_report_command(folders, tmp_path / "out", "-np", "1", option, value) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and option in error and ">= 0" in error, error
    assert not (tmp_path / "out").exists()
