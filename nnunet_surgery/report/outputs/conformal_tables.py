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


def _estimates(estimates: dict) -> dict:
    return {
        name: {
            "value": estimate.value,
            "ci95": None
            if math.isnan(estimate.interval.low)
            else [estimate.interval.low, estimate.interval.high],
        }
        for name, estimate in estimates.items()
    }


def conformal_json(scores: ConformalScores) -> dict:
    """The "conformal" entry of calibration.json: per model, its predictor (file, alpha, rule) and per label
    the threshold and each metric's value with its 95% case-bootstrap interval (`ci95`, null without)."""
    return {
        "method": METHOD,
        "risk": "fnr",
        "n_cases": scores.n_cases,
        "bootstrap": scores.bootstrap,
        "metrics": dict(METRICS),
        "models": {
            model.name: {
                "predictor": model.source,
                "alpha": model.document.alpha,
                "empty_references": model.document.empty_references,
                "labels": {
                    label.name: {
                        "threshold": label.threshold,
                        "feasible": label.feasible,
                        "n_calibration": label.n,
                        **_estimates(model.labels[label.name]),
                    }
                    for label in model.document.labels
                },
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
    interval = f", 95% case-bootstrap intervals ({scores.bootstrap} resamples)" if scores.bootstrap else ""
    lines = [
        "",
        "## Conformal masks",
        "",
        f"Masks {{p >= threshold}} of each model's conformal predictor (conformal risk control of the per-case "
        f"false-negative rate) on {scores.n_cases} case(s){interval}. The guarantee is E[FNR] <= alpha, over the "
        "draw of calibration and test cases exchangeable with each other; sizes are mask voxels over nnU-Net's "
        "segmentation and over the reference (docs/conformal.md#reading-the-table).",
        "",
        "| Model | Label | alpha | Threshold | Achieved FNR | Pooled FNR | Size / segmentation | Size / reference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model in scores.models:
        for label in model.document.labels:
            estimates = model.labels[label.name]
            lines.append(
                f"| {model.name} | {label.name} | {model.document.alpha:g} | {label.threshold:.4g}"
                f"{'' if label.feasible else f' (infeasible: n = {label.n} < 1/alpha - 1)'} | "
                f"{_shown(estimates['mean_fnr'])} | {_shown(estimates['pooled_fnr'])} | "
                f"{_shown(estimates['size_to_segmentation'])} | {_shown(estimates['size_to_reference'])} |"
            )
    return "\n".join(lines) + "\n"
