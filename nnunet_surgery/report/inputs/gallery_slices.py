"""The gallery's input: the slice of each chosen (case, label), read from the case's files as paired by
`read_inputs` and its image `CASE_0000{file_ending}` (`cases.slices`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nnunet_surgery.cases import IMAGE_SUFFIX, InputError
from nnunet_surgery.cases.slices import CaseSlice, read_case_slice
from nnunet_surgery.report.inputs.models import ReportInputs

__all__ = ["read_gallery"]


def read_gallery(
    inputs: ReportInputs, chosen: Sequence[tuple[str, str]], images: str | Path
) -> tuple[CaseSlice, ...]:
    """The slice of each chosen (case, label name), in order.

    Raises:
        InputError: a missing or unreadable image, or an unreadable reference or prediction of a chosen case.
    """
    images = Path(images)
    dataset = inputs.dataset
    tasks = {task.files.case: task for task in inputs.cases}
    slices = []
    for case, label in chosen:
        image = images / f"{case}{IMAGE_SUFFIX}{dataset.file_ending}"
        if not image.is_file():
            raise InputError(f"{images}: no image {image.name} for gallery case {case}")
        task = tasks[case]
        index = dataset.layout.names.index(label)
        slices.append(
            read_case_slice(
                image, task.files.reference, task.files.predictions, task.reader_class, dataset.layout, index
            )
        )
    return tuple(slices)
