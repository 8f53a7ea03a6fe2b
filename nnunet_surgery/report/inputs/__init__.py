"""Stage 1 of the report, inputs: the report's options, checked once where they enter; its models and
cases, paired and checked before anything is scored (`read_inputs`); and, once the gallery's cases are
chosen, their slices (`read_gallery`).

Reading the cases themselves (dataset.json, pairing, safe readers, ROI, slices) is the case layer's
(`nnunet_surgery.cases`); nothing here scores or writes.
"""

from __future__ import annotations

from nnunet_surgery.report.inputs.gallery_slices import read_gallery
from nnunet_surgery.report.inputs.models import ReportInputs, Sources, read_inputs
from nnunet_surgery.report.inputs.options import (
    ReportOptions,
    RunOptions,
    ScoringOptions,
    check_gallery,
    check_options,
)

__all__ = [
    "ReportInputs",
    "ReportOptions",
    "RunOptions",
    "ScoringOptions",
    "Sources",
    "check_gallery",
    "check_options",
    "read_gallery",
    "read_inputs",
]
