"""Stage 3 of the report, outputs: the typed `CalibrationReport` rendered as calibration.json
(`calibration_json`), calibration.csv / calibration.md (`tables`) and reliability diagrams (`plots`),
written atomically into OUT_DIR (`writer`). Nothing here reads inputs or computes a metric.
"""

from __future__ import annotations

from nnunet_surgery.report.outputs.calibration_json import report_json
from nnunet_surgery.report.outputs.tables import markdown_report
from nnunet_surgery.report.outputs.writer import check_out_dir, read_report_json, write_report

__all__ = ["check_out_dir", "markdown_report", "read_report_json", "report_json", "write_report"]
