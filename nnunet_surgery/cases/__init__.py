"""The case layer: everything a command needs to read nnU-Net cases, below every command.

    errors        the one input error type (a one-line message naming the file or argument)
    dataset       dataset.json: file ending, label layout, nnU-Net's image reader
    labels        labels and regions as the channels of nnU-Net's probability maps
    folders       pairing each case's files across the reference, prediction, truth and mask folders
    npz           probability archives read memory-safely (never unpickled), values checked once
    label_images  references and masks checked from their header, then read with nnU-Net's reader
    roi           the voxels scored or fitted on (`all`, `band:D`, `mask:FOLDER`)
    reading       one case read and checked: reference, ROI, truth, each model's probabilities (`CaseTask`)
    chunks        the voxels of a case a slice at a time
    slices        one 2D slice of a case (the report's gallery)
    pool          cases mapped over worker processes, in order, without a hang when a worker dies
    staging       outputs written whole: a staging file or folder renamed into place

`report/`, `recalibration/` and `maps/` stand on this layer side by side and import nothing from each
other. Module-level imports stay light (numpy; nnU-Net and scipy inside functions), so that spawned
workers start fast.
"""

from __future__ import annotations

from nnunet_surgery.cases.chunks import CHUNK_ELEMENTS, voxel_chunks
from nnunet_surgery.cases.dataset import DatasetInfo, load_dataset_json, read_json, reader_for
from nnunet_surgery.cases.errors import InputError, check_count
from nnunet_surgery.cases.folders import (
    IMAGE_SUFFIX,
    NPZ_ENDING,
    CaseFiles,
    case_files,
    collect_cases,
    collect_pooled_cases,
    model_names,
    parse_ensemble,
)
from nnunet_surgery.cases.label_images import (
    check_label_image,
    read_label_image,
    read_label_image_and_properties,
)
from nnunet_surgery.cases.labels import LabelLayout, label_layout
from nnunet_surgery.cases.npz import (
    PROBABILITIES_KEY,
    check_probability_shape,
    load_probabilities,
    load_valid_probabilities,
    valid_probabilities,
)
from nnunet_surgery.cases.pool import (
    WorkerPool,
    check_processes,
    iterate_cases,
    ordered_map,
    read_ahead,
)
from nnunet_surgery.cases.reading import (
    CaseTask,
    PreparedCase,
    Reference,
    load_model,
    prepare_case,
    read_reference,
)
from nnunet_surgery.cases.roi import RoiSpec, check_roi, parse_roi, roi_mask

__all__ = [
    "CHUNK_ELEMENTS",
    "IMAGE_SUFFIX",
    "NPZ_ENDING",
    "PROBABILITIES_KEY",
    "CaseFiles",
    "CaseTask",
    "DatasetInfo",
    "InputError",
    "LabelLayout",
    "PreparedCase",
    "Reference",
    "RoiSpec",
    "WorkerPool",
    "case_files",
    "check_count",
    "check_label_image",
    "check_probability_shape",
    "check_processes",
    "check_roi",
    "collect_cases",
    "collect_pooled_cases",
    "iterate_cases",
    "label_layout",
    "load_dataset_json",
    "load_model",
    "load_probabilities",
    "load_valid_probabilities",
    "model_names",
    "ordered_map",
    "parse_ensemble",
    "parse_roi",
    "prepare_case",
    "read_ahead",
    "read_json",
    "read_label_image",
    "read_label_image_and_properties",
    "read_reference",
    "reader_for",
    "roi_mask",
    "valid_probabilities",
    "voxel_chunks",
]
