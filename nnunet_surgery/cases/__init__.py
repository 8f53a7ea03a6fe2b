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
    geometry      maps and masks written in the geometry nnU-Net's reader found in a reference file
    pool          cases mapped over worker processes, in order, without a hang when a worker dies
    staging       outputs written whole: a staging file or folder renamed into place; an output never
                  the same as, holding or inside an input

`report/`, `recalibration/` and `maps/` stand on this layer side by side and import nothing from each
other. Every name below is importable from the package (`from nnunet_surgery.cases import CaseTask`);
each module is imported on the first use of one of its names, so that a light one (`errors`, `staging`,
`folders`) does not bring numpy or nnU-Net along: the demo command's `--help` imports neither. Module-level
imports stay light (numpy; nnU-Net and scipy inside functions), so that spawned workers start fast.
"""

from __future__ import annotations

import importlib

#: module -> the names it defines that the package hands on
_NAMES = {
    "chunks": ("CHUNK_ELEMENTS", "voxel_chunks"),
    "dataset": ("DatasetInfo", "load_dataset_json", "read_json", "reader_for"),
    "errors": ("InputError", "check_count", "printable"),
    "folders": (
        "CaseFiles",
        "collect_cases",
        "collect_pooled_cases",
        "case_files",
        "model_names",
        "parse_ensemble",
        "NPZ_ENDING",
        "IMAGE_SUFFIX",
    ),
    "geometry": ("ReferenceGeometry", "label_file_name", "read_geometry"),
    "label_images": ("check_label_image", "read_label_image", "read_label_image_and_properties"),
    "labels": ("LabelLayout", "label_layout"),
    "npz": (
        "PROBABILITIES_KEY",
        "check_probabilities_by_chunk",
        "check_probability_shape",
        "load_probabilities",
        "load_valid_probabilities",
        "valid_probabilities",
    ),
    "pool": ("WorkerPool", "check_processes", "iterate_cases", "ordered_map", "read_ahead"),
    "reading": ("CaseTask", "PreparedCase", "Reference", "load_model", "prepare_case", "read_reference"),
    "roi": ("RoiSpec", "check_roi", "parse_roi", "roi_mask"),
    "staging": (
        "check_output_apart",
        "check_writable",
        "staged_folder",
        "staging_folder",
        "write_text_atomic",
    ),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> object:
    """`name` from the module that defines it, imported on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
