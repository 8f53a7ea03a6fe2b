"""`nnunet-surgery report`: calibration of nnU-Net probability predictions, streamed case by case.

Three stages, data flowing one way, as nnU-Net's evaluation layers a per-case function, a folder
aggregator and a thin CLI:

    inputs/   options, dataset.json, labels, folder pairing, safe reading, ROI    -> CaseTask per case
    scoring/  CaseTask -> per-case statistics -> pooled, typed CalibrationReport
    outputs/  CalibrationReport -> calibration.json / .csv / .md, reliability PNGs, atomic write

`pipeline.generate_report` calls them in that order; `nnunet_surgery.commands.report` is the argparse
entry. The math lives in `nnunet_surgery.calibration` (docs/calibration.md). Module-level imports stay
light (no torch) so that spawned workers start fast.
"""

from __future__ import annotations

from nnunet_surgery.cases import ReportError, RoiSpec, parse_roi
from nnunet_surgery.report.pipeline import build_report, generate_report
from nnunet_surgery.report.scoring import CalibrationReport

__all__ = ["CalibrationReport", "ReportError", "RoiSpec", "build_report", "generate_report", "parse_roi"]
