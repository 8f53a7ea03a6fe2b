"""`nnunet-surgery report`: calibration of nnU-Net probability predictions, streamed case by case.

Three stages, data flowing one way, as nnU-Net's evaluation layers a per-case function, a folder
aggregator and a thin CLI; every case is read through the case layer (`nnunet_surgery.cases`):

    inputs/   options, models (folders, ensembles), cases paired        -> ReportInputs (one CaseTask per case)
    scoring/  each case scored -> pooled, typed CalibrationReport; the gallery's cases chosen
    outputs/  CalibrationReport -> calibration.json / .csv / .md, reliability PNGs, gallery, atomic write

`pipeline.generate_report` calls them in that order (the gallery's slices are read by the input stage once
the scores chose them); `nnunet_surgery.commands.report` is the argparse entry. The math lives in
`nnunet_surgery.calibration` (docs/calibration.md). Module-level imports stay light (no torch) so that
spawned workers start fast.
"""

from __future__ import annotations

from nnunet_surgery.cases import RoiSpec, parse_roi
from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.pipeline import build_report, generate_report
from nnunet_surgery.report.scoring import CalibrationReport

__all__ = ["CalibrationReport", "ReportError", "RoiSpec", "build_report", "generate_report", "parse_roi"]
