"""The typed report as the calibration.json structure (plain dicts and lists, NaN where undefined).

Layout (keys sorted when written): bins, bin_edges, bin_convention, nll_eps, roi, roi_voxels,
region_based, label_names, model_order, sources, bootstrap, and models.MODEL = {folder, labels.LABEL =
{pooled, case_mean, reliability, truth?, pooled_ci95?, case_mean_ci95?, paired?}, cases.CASE.LABEL,
top_label? = {pooled, case_mean, reliability, cases, pooled_ci95?, case_mean_ci95?, paired?}}.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from nnunet_surgery.calibration import BIN_CONVENTION, NLL_EPS, BinnedStats, bin_edges, reliability_curve
from nnunet_surgery.calibration.bootstrap import Interval
from nnunet_surgery.report.scoring import (
    CalibrationReport,
    LabelScores,
    LabelSummary,
    ModelSummary,
    TopLabelScores,
    TopLabelSummary,
)

__all__ = ["METRIC_DEFINITIONS", "report_json"]

#: What every metric key means (docs/calibration.md), written into calibration.json so that no name is
#: ambiguous: "ACE" means the average over bins here (MONAI, netcal), the adaptive ECE elsewhere.
METRIC_DEFINITIONS = {
    "nll": "mean -log p_y, p clipped to [nll_eps, 1 - nll_eps]",
    "brier": "mean (p - y)^2",
    "ece": "expected calibration error, L1, equal-width bins: sum_b n_b/N |mean y_b - mean p_b|",
    "mce": "maximum calibration error: max over non-empty equal-width bins of |mean y_b - mean p_b|",
    "ace": "average calibration error: unweighted mean over non-empty equal-width bins (MONAI, netcal); "
    "not torch-uncertainty's adaptive ACE, which is ece_equal_mass",
    "ece_equal_mass": "adaptive ECE: as ece over `bins` equal-mass bins formed from 2^16 fine bins "
    "(torch-uncertainty's ACE, netcal's ECE with equal_intervals=False)",
    "ce_rms": "RMS (L2) calibration error over the equal-width bins: sqrt(sum_b n_b/N (mean y_b - mean p_b)^2) "
    "(torchmetrics norm='l2')",
    "dice": "2 TP / (2 TP + FP + FN) over all non-ignored voxels; NaN when reference and prediction are empty",
    "classwise": "mean over foreground labels of the per-label pooled ece, ece_equal_mass, ce_rms",
    "monai": "MONAI CalibrationErrorMetric ECE (20 bins, its (lo, hi] edges, include_background=False): "
    "ece_mean = metric_reduction 'mean', ece_mean_batch = 'mean_batch' per label",
    "pooled": "over all ROI voxels of all cases; case_mean: mean over cases of each case's value, NaN ignored",
    "ce_l2sq": "plug-in squared L2 calibration error sum_b n_b/N (mean y_b - mean p_b)^2 (ce_rms^2); biased "
    "upwards by the bins' sampling noise",
    "ce_l2sq_debiased": "debiased squared L2 calibration error (Kumar, Liang, Ma 2019): sum_b n_b/N "
    "((mean y_b - mean p_b)^2 - V_b), V_b the case-level variance of the bin's gap; unbiased for the "
    "population's squared L2 error, may be < 0 for a calibrated model",
    "ece_debiased": "bias-corrected ECE: sum_b n_b/N (|g_b| - (2/sqrt(pi)) sqrt(V_b) exp(-g_b^2 / (2 V_b))), "
    "g_b = mean y_b - mean p_b, V_b its case-level variance; exact at g_b = 0 and far from 0, may be < 0",
    "smooth_ece": "smooth ECE (Blasiok and Nakkiran 2023; relplot's smECE with its bandwidth rule) of the "
    "pooled 2^16-bin histogram, each fine bin at its mean confidence",
    "ci95": "95% interval over case-level bootstrap resamples (see bootstrap): method bca (bias-corrected "
    "and accelerated, jackknife over cases; contains its estimate) or percentile (central percentiles); "
    "for ce_l2sq_debiased and ece_debiased the resamples are centered on the estimate",
}


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _label_scores(scores: LabelScores, *, with_truth: bool) -> dict:
    entry = {
        **asdict(scores.metrics),
        **asdict(scores.variants),
        **({} if scores.estimators is None else asdict(scores.estimators)),
        "n_voxels": scores.n_voxels,
        "tp": scores.tp,
        "fp": scores.fp,
        "fn": scores.fn,
    }
    if with_truth and scores.truth is not None:
        entry["truth"] = asdict(scores.truth)
    return entry


def _top_label_scores(scores: TopLabelScores) -> dict:
    return {**asdict(scores.errors), "n_voxels": scores.n_voxels}


def _reliability(stats: BinnedStats) -> dict:
    mean_confidence, mean_outcome = reliability_curve(stats)
    return {
        "count": [int(c) for c in stats.count],
        "mean_confidence": [float(v) for v in mean_confidence],
        "mean_outcome": [float(v) for v in mean_outcome],
    }


def _intervals(intervals: dict[str, Interval]) -> dict[str, list[float]]:
    return {name: [interval.low, interval.high] for name, interval in intervals.items()}


def _uncertainty(summary: LabelSummary | TopLabelSummary) -> dict:
    """`pooled_ci95`, `case_mean_ci95` and `paired`, where the bootstrap made them."""
    entry: dict = {}
    if summary.intervals is not None:
        entry["pooled_ci95"] = _intervals(summary.intervals.pooled)
        entry["case_mean_ci95"] = _intervals(summary.intervals.case_mean)
    if summary.paired is not None:
        entry["paired"] = {
            "reference": summary.paired.reference,
            "metrics": {
                name: {
                    "difference": comparison.difference,
                    "ci95": [comparison.interval.low, comparison.interval.high],
                    "fraction_better": comparison.fraction_better,
                }
                for name, comparison in summary.paired.metrics.items()
            },
        }
    return entry


def _label(summary: LabelSummary) -> dict:
    entry = {
        "pooled": _label_scores(summary.pooled, with_truth=False),
        "case_mean": {**asdict(summary.case_mean), **asdict(summary.variants_case_mean)},
        "reliability": _reliability(summary.reliability),
        **_uncertainty(summary),
    }
    if summary.pooled.truth is not None:
        entry["truth"] = {
            "pooled": asdict(summary.pooled.truth),
            "case_mean": asdict(summary.truth_case_mean),
        }
    return entry


def _top_label(summary: TopLabelSummary) -> dict:
    return {
        "pooled": _top_label_scores(summary.pooled),
        "case_mean": asdict(summary.case_mean),
        "reliability": _reliability(summary.reliability),
        "cases": {case: _top_label_scores(scores) for case, scores in summary.cases.items()},
        **_uncertainty(summary),
    }


def _model(model: ModelSummary, cases: list[str]) -> dict:
    entry = {
        "folder": str(model.folders[0]) if len(model.folders) == 1 else None,
        "ensemble": [str(folder) for folder in model.folders] if len(model.folders) > 1 else None,
        "labels": {name: _label(label) for name, label in model.labels.items()},
        "cases": {
            case: {
                name: _label_scores(label.cases[case], with_truth=True)
                for name, label in model.labels.items()
            }
            for case in cases
        },
    }
    if model.top_label is not None:
        entry["top_label"] = _top_label(model.top_label)
    entry["classwise"] = asdict(model.classwise)
    if model.monai is not None:
        entry["monai"] = {"ece_mean": model.monai.mean, "ece_mean_batch": dict(model.monai.per_label)}
    return entry


def report_json(report: CalibrationReport) -> dict:
    """The whole calibration.json content of `report`."""
    cases = list(report.roi_voxels)
    return {
        "bins": report.n_bins,
        "bin_edges": [float(e) for e in bin_edges(report.n_bins)],
        "bin_convention": BIN_CONVENTION,
        "nll_eps": NLL_EPS,
        "roi": report.roi,
        "roi_voxels": dict(report.roi_voxels),
        "region_based": report.region_based,
        "label_names": list(report.label_names),
        "model_order": [model.name for model in report.models],
        "sources": {
            "dataset_json": str(report.sources.dataset_json),
            "gt_folder": str(report.sources.gt_folder),
            "truth_folder": _path(report.sources.truth_folder),
        },
        "models": {model.name: _model(model, cases) for model in report.models},
        "bootstrap": None if report.bootstrap is None else {**asdict(report.bootstrap), "unit": "case"},
        "preset": report.preset,
        "metric_definitions": METRIC_DEFINITIONS,
    }
