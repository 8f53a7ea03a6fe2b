"""Stage 2 of the report, scoring: the pure per-case function (`case.score_case`: files -> sufficient
statistics), the aggregator over a process pool (`aggregate.score_report`: statistics -> the typed
`CalibrationReport`), and the typed metrics and report objects the outputs render.
"""

from __future__ import annotations

from nnunet_surgery.report.scoring.aggregate import score_report
from nnunet_surgery.report.scoring.case import CaseStats, CaseTask, ModelCaseStats, score_case
from nnunet_surgery.report.scoring.metrics import (
    CalibrationErrors,
    LabelMetrics,
    LabelScores,
    TopLabelScores,
    TruthMetrics,
    VariantMetrics,
)
from nnunet_surgery.report.scoring.report import (
    Bootstrap,
    CalibrationReport,
    ClasswiseMetrics,
    LabelSummary,
    ModelSummary,
    MonaiECE,
    Sources,
    TopLabelSummary,
)

__all__ = [
    "Bootstrap",
    "CalibrationErrors",
    "CalibrationReport",
    "CaseStats",
    "CaseTask",
    "ClasswiseMetrics",
    "LabelMetrics",
    "LabelScores",
    "LabelSummary",
    "ModelCaseStats",
    "ModelSummary",
    "MonaiECE",
    "Sources",
    "TopLabelScores",
    "TopLabelSummary",
    "TruthMetrics",
    "VariantMetrics",
    "score_case",
    "score_report",
]
