"""Stage 2 of the report, scoring: the pure per-case function (`case.score_case`: a case read through the
case layer -> sufficient statistics), the aggregator over a process pool (`aggregate.score_report`:
statistics -> the typed `CalibrationReport`), the typed scores and report the outputs render, and the
gallery's choice of cases (`gallery_choice.select_gallery`, a pure function of the report).
"""

from __future__ import annotations

from nnunet_surgery.report.inputs import Sources
from nnunet_surgery.report.scoring.aggregate import score_report
from nnunet_surgery.report.scoring.case import CaseStats, ModelCaseStats, ScoreTask, score_case
from nnunet_surgery.report.scoring.gallery_choice import GalleryCase, GallerySelection, select_gallery
from nnunet_surgery.report.scoring.scores import (
    CalibrationErrors,
    Estimators,
    LabelMetrics,
    LabelScores,
    TopLabelScores,
    TruthMetrics,
    VariantMetrics,
)
from nnunet_surgery.report.scoring.summary import (
    Bootstrap,
    CalibrationReport,
    ClasswiseMetrics,
    LabelSummary,
    ModelSummary,
    MonaiECE,
    TopLabelSummary,
)

__all__ = [
    "Bootstrap",
    "CalibrationErrors",
    "CalibrationReport",
    "CaseStats",
    "ClasswiseMetrics",
    "Estimators",
    "GalleryCase",
    "GallerySelection",
    "LabelMetrics",
    "LabelScores",
    "LabelSummary",
    "ModelCaseStats",
    "ModelSummary",
    "MonaiECE",
    "ScoreTask",
    "Sources",
    "TopLabelScores",
    "TopLabelSummary",
    "TruthMetrics",
    "VariantMetrics",
    "score_case",
    "score_report",
    "select_gallery",
]
