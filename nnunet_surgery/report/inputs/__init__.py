"""Stage 1 of the report, inputs: options, dataset.json and its labels, the pairing of case files across
folders, safe reading of probability archives and label images, and the region of interest.

Nothing here scores or writes; every problem is a `ReportError` naming the file or option.
"""

from __future__ import annotations

from nnunet_surgery.report.inputs.dataset import DatasetInfo, load_dataset_json, reader_for
from nnunet_surgery.report.inputs.folders import (
    CaseFiles,
    case_files,
    collect_cases,
    collect_pooled_cases,
    model_names,
)
from nnunet_surgery.report.inputs.labels import LabelLayout, label_layout
from nnunet_surgery.report.inputs.options import ReportOptions, check_options
from nnunet_surgery.report.inputs.reading import (
    check_label_image,
    check_probability_shape,
    load_probabilities,
    load_valid_probabilities,
    read_label_image,
)
from nnunet_surgery.report.inputs.roi import RoiSpec, parse_roi, roi_mask

__all__ = [
    "CaseFiles",
    "DatasetInfo",
    "LabelLayout",
    "ReportOptions",
    "RoiSpec",
    "case_files",
    "check_label_image",
    "check_options",
    "check_probability_shape",
    "collect_cases",
    "collect_pooled_cases",
    "label_layout",
    "load_dataset_json",
    "load_probabilities",
    "load_valid_probabilities",
    "model_names",
    "parse_roi",
    "read_label_image",
    "reader_for",
    "roi_mask",
]
