"""`report --conformal`: the conformal masks' section of calibration.json (`conformal_json`) and of
calibration.md (`conformal_markdown`), from the scoring stage's `ConformalScores`."""

from __future__ import annotations

import math

from nnunet_surgery.conformal import METHOD
from nnunet_surgery.report.scoring.conformal_masks import ConformalScores

__all__ = ["conformal_json", "conformal_markdown"]

#: metric -> what it means, in calibration.json's "conformal" section.
METRICS = {
    "mean_fnr": "achieved risk: mean over cases of the case's false-negative rate of {p >= threshold} "
    "(what alpha bounds in expectation)",
    "pooled_fnr": "missed reference voxels / reference voxels over all cases (not the bounded risk)",
    "size_to_segmentation": "mask voxels / voxels of nnU-Net's hard segmentation (argmax or region 0.5), summed",
    "size_to_reference": "mask voxels / reference voxels, summed over cases",
}


def conformal_json(scores: ConformalScores) -> dict:
    """The "conformal" entry of calibration.json: the predictor, and per model and label each metric's
    value with its 95% case-bootstrap interval (`ci95`, null without bootstrap)."""
    document = scores.document
    return {
        "predictor": scores.source,
        "method": METHOD,
        "risk": "fnr",
        "alpha": document.alpha,
        "empty_references": document.empty_references,
        "n_cases": scores.n_cases,
        "bootstrap": scores.bootstrap,
        "metrics": dict(METRICS),
        "labels": {
            label.name: {"threshold": label.threshold, "feasible": label.feasible, "n_calibration": label.n}
            for label in document.labels
        },
        "models": {
            model.name: {
                label: {
                    name: {
                        "value": estimate.value,
                        "ci95": None
                        if math.isnan(estimate.interval.low)
                        else [estimate.interval.low, estimate.interval.high],
                    }
                    for name, estimate in estimates.items()
                }
                for label, estimates in model.labels.items()
            }
            for model in scores.models
        },
    }


def _shown(estimate) -> str:
    if math.isnan(estimate.value):
        return "n/a"
    if math.isnan(estimate.interval.low):
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} [{estimate.interval.low:.3f}, {estimate.interval.high:.3f}]"


def conformal_markdown(scores: ConformalScores) -> str:
    """calibration.md's section: one row per model and label."""
    document = scores.document
    interval = f", 95% case-bootstrap intervals ({scores.bootstrap} resamples)" if scores.bootstrap else ""
    lines = [
        "",
        "## Conformal masks",
        "",
        f"Masks {{p >= threshold}} of `{scores.source}` (conformal risk control, alpha = {document.alpha:g}, "
        f"empty references: {document.empty_references}) on {scores.n_cases} case(s){interval}. The guarantee is "
        "E[mean FNR] <= alpha over calibration and test draws, for cases exchangeable with the calibration cases; "
        "sizes are mask voxels over nnU-Net's segmentation and over the reference (docs/conformal.md).",
        "",
        "| Model | Label | Threshold | Achieved FNR | Pooled FNR | Size / segmentation | Size / reference |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    thresholds = {label.name: label.threshold for label in document.labels}
    for model in scores.models:
        for label, estimates in model.labels.items():
            lines.append(
                f"| {model.name} | {label} | {thresholds[label]:.4g} | {_shown(estimates['mean_fnr'])} | "
                f"{_shown(estimates['pooled_fnr'])} | {_shown(estimates['size_to_segmentation'])} | "
                f"{_shown(estimates['size_to_reference'])} |"
            )
    return "\n".join(lines) + "\n"
