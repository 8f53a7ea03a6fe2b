"""Which cases the gallery shows (a pure function of the scored report), and what one gallery figure shows.

A gallery entry is a (case, label) pair. Chosen are the K pairs where the models' case ECEs differ most
(the largest max - min over models), then for each model its worst pair (the highest case ECE), each
case once (its first reason wins). One model: its K worst pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnunet_surgery.cases.slices import CaseSlice
from nnunet_surgery.report.scoring.summary import CalibrationReport

__all__ = ["GalleryCase", "GallerySelection", "select_gallery"]


@dataclass(frozen=True)
class GallerySelection:
    """A (case, label) pair to show and why.

    Attributes:
        case: case identifier.
        label: label or region name.
        reason: "largest difference" or "worst of MODEL".
        ece: each model's case ECE of the label, in model order.
    """

    case: str
    label: str
    reason: str
    ece: tuple[float, ...]


@dataclass(frozen=True)
class GalleryCase:
    """A selection with its slice: what one gallery figure shows."""

    selection: GallerySelection
    models: tuple[str, ...]
    slice: CaseSlice


def _ece(report: CalibrationReport, case: str, label: str) -> tuple[float, ...]:
    return tuple(model.labels[label].cases[case].metrics.ece for model in report.models)


def select_gallery(report: CalibrationReport, k: int) -> list[GallerySelection]:
    """Up to `k` pairs of largest difference plus each model's worst pair, each case once, in that order."""
    pairs = [(case, label) for case in report.roi_voxels for label in report.label_names]
    eces = {pair: _ece(report, *pair) for pair in pairs}
    finite = [pair for pair in pairs if all(math.isfinite(e) for e in eces[pair])]
    chosen: list[GallerySelection] = []
    seen: set[str] = set()

    def take(pair: tuple[str, str], reason: str) -> None:
        if pair[0] not in seen:
            seen.add(pair[0])
            chosen.append(GallerySelection(pair[0], pair[1], reason, eces[pair]))

    if len(report.models) > 1:
        for pair in sorted(finite, key=lambda p: -(max(eces[p]) - min(eces[p])))[:k]:
            take(pair, "largest difference")
        for index, model in enumerate(report.models):
            worst = max(finite, key=lambda p: eces[p][index], default=None)
            if worst is not None:
                take(worst, f"worst of {model.name}")
    else:
        for pair in sorted(finite, key=lambda p: -eces[p][0])[:k]:
            take(pair, f"worst of {report.models[0].name}")
    return chosen
