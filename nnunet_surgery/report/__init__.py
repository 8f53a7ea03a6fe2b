"""`nnunet-surgery report`: calibration of nnU-Net probability predictions, streamed case by case.

Layering as nnU-Net's evaluation: a pure per-case function (`case.evaluate_case`) -> a folder
aggregator over a process pool (`aggregate.aggregate_cases`) -> `pipeline.generate_report` -> the thin
argparse entry `nnunet_surgery.commands.report`. The math lives in `nnunet_surgery.calibration`.
Module-level imports stay light (no torch) so that spawned workers start fast.
"""

from __future__ import annotations

from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.pipeline import generate_report
from nnunet_surgery.report.roi import RoiSpec, parse_roi

__all__ = ["ReportError", "RoiSpec", "generate_report", "parse_roi"]
