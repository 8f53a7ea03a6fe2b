"""From merged statistics to the `calibration.json` structure (plain dicts, NaN where undefined)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from nnunet_surgery.calibration import (
    NLL_EPS,
    BinnedStats,
    LabelStats,
    bin_edges,
    calibration_errors,
    label_metrics,
    nan_mean,
    reliability_curve,
    truth_metrics,
)

if TYPE_CHECKING:
    from nnunet_surgery.report.aggregate import ModelTotals

__all__ = [
    "BIN_CONVENTION",
    "LABEL_METRICS",
    "TRUTH_METRICS",
    "build_summary",
    "label_entry",
    "model_summary",
    "reliability_entry",
    "top_label_entry",
]

LABEL_METRICS = ("nll", "ece", "mce", "ace", "brier", "dice")
TOP_LABEL_METRICS = ("ece", "mce", "ace")
TRUTH_METRICS = ("mae", "ece", "ece_truth_self")
BIN_CONVENTION = (
    "equal-width bins [k/B, (k+1)/B), the last one closed [(B-1)/B, 1]: p = 0 in bin 0, p = 1 in bin B-1 "
    "(numpy.histogram / netcal); bin index floor(p*B) in float64, exact for float32 p"
)


def label_entry(stats: LabelStats) -> dict:
    """Metrics of one label on one case (or pooled): LABEL_METRICS, voxel and confusion counts, truth."""
    entry: dict = label_metrics(stats)
    entry.update(n_voxels=int(stats.n), tp=int(stats.tp), fp=int(stats.fp), fn=int(stats.fn))
    if stats.truth is not None:
        entry["truth"] = truth_metrics(stats.truth)
    return entry


def top_label_entry(stats: BinnedStats) -> dict:
    """Top-label ECE, MCE, ACE (confidence max_c p_c, outcome argmax == reference) and the voxel count."""
    return {**calibration_errors(stats), "n_voxels": int(stats.total)}


def reliability_entry(stats: BinnedStats) -> dict:
    """Pooled reliability diagram: per-bin count, mean confidence and mean outcome (NaN if empty)."""
    mean_confidence, mean_outcome = reliability_curve(stats)
    return {
        "count": [int(c) for c in stats.count],
        "mean_confidence": [float(v) for v in mean_confidence],
        "mean_outcome": [float(v) for v in mean_outcome],
    }


def _case_mean(entries: Iterable[dict], keys: tuple[str, ...]) -> dict:
    entries = list(entries)
    return {key: nan_mean([entry[key] for entry in entries]) for key in keys}


def model_summary(totals: ModelTotals, folder: str) -> dict:
    """One model's part of calibration.json: pooled and case-mean metrics per label, per-case metrics."""
    labels = {}
    for name, stats in totals.labels.items():
        per_case = [case[name] for case in totals.cases.values()]
        pooled = label_entry(stats)
        truth = pooled.pop("truth", None)
        labels[name] = {
            "pooled": pooled,
            "case_mean": _case_mean(per_case, LABEL_METRICS),
            "reliability": reliability_entry(stats.reliability),
        }
        if truth is not None:
            labels[name]["truth"] = {
                "pooled": truth,
                "case_mean": _case_mean((case["truth"] for case in per_case), TRUTH_METRICS),
            }
    summary = {"folder": folder, "labels": labels, "cases": totals.cases}
    if totals.top_label is not None:
        summary["top_label"] = {
            "pooled": top_label_entry(totals.top_label),
            "case_mean": _case_mean(totals.top_label_cases.values(), TOP_LABEL_METRICS),
            "reliability": reliability_entry(totals.top_label),
            "cases": totals.top_label_cases,
        }
    return summary


def build_summary(
    totals: dict[str, ModelTotals],
    *,
    folders: dict[str, str],
    n_bins: int,
    roi: str,
    roi_voxels: dict[str, int],
    label_names: tuple[str, ...],
    region_based: bool,
    sources: dict[str, str | None],
) -> dict:
    """The whole calibration.json.

    Args:
        totals: merged statistics per model name (in the models' order).
        folders: prediction folder per model name.
        n_bins: number of bins.
        roi: the ROI as given (`all`, `band:D`, `mask:FOLDER`).
        roi_voxels: number of scored voxels per case.
        label_names: foreground label / region names in channel order.
        region_based: whether channels are sigmoid regions.
        sources: input paths to record (dataset_json, gt_folder, truth_folder).
    """
    return {
        "bins": n_bins,
        "bin_edges": [float(e) for e in bin_edges(n_bins)],
        "bin_convention": BIN_CONVENTION,
        "nll_eps": NLL_EPS,
        "roi": roi,
        "roi_voxels": roi_voxels,
        "region_based": region_based,
        "label_names": list(label_names),
        "model_order": list(totals),
        "sources": sources,
        "models": {
            model: model_summary(model_totals, folders[model]) for model, model_totals in totals.items()
        },
    }
