"""Stage 1 of the report, inputs: the report's options, checked once where they enter.

Reading the cases themselves (dataset.json, pairing, safe reading, ROI) is the case layer's
(`nnunet_surgery.cases`); nothing here scores or writes.
"""

from __future__ import annotations

from nnunet_surgery.report.inputs.options import ReportOptions, check_options

__all__ = ["ReportOptions", "check_options"]
