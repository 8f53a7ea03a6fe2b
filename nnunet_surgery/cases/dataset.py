"""dataset.json: file ending, label layout, and nnU-Net's image reader for the reference files."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.cases.errors import InputError, first_line
from nnunet_surgery.cases.label_images import check_label_image
from nnunet_surgery.cases.labels import LabelLayout, label_layout

__all__ = ["DatasetInfo", "load_dataset_json", "read_json", "reader_for"]


@dataclass(frozen=True)
class DatasetInfo:
    """What the report needs from dataset.json.

    Attributes:
        path: the dataset.json file.
        file_ending: file ending of reference segmentations (and ROI masks), e.g. ".nii.gz".
        layout: labels / regions and their probability channels.
        content: the parsed dataset.json (for nnU-Net's reader lookup).
    """

    path: Path
    file_ending: str
    layout: LabelLayout
    content: dict


def read_json(path: Path, what: str) -> object:
    """The parsed content of a JSON file.

    Args:
        what: how an unreadable file is named in the error ("dataset.json", "the calibrator").

    Raises:
        InputError: the file cannot be read, or is not valid JSON.
    """
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise InputError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None


def load_dataset_json(path: str | Path) -> DatasetInfo:
    """Read and check dataset.json.

    Raises:
        InputError: missing or unparsable file, no `file_ending`, or labels nnU-Net would refuse.
    """
    path = Path(path)
    content = read_json(path, "dataset.json")
    if not isinstance(content, dict):
        raise InputError(f"{path}: expected a JSON object with 'labels' and 'file_ending'")
    file_ending = content.get("file_ending")
    if not isinstance(file_ending, str) or not file_ending:
        raise InputError(f"{path}: missing 'file_ending' (e.g. \".nii.gz\")")
    if "labels" not in content:
        raise InputError(f"{path}: missing 'labels'")
    layout = label_layout(content["labels"], content.get("regions_class_order"), source=str(path))
    return DatasetInfo(path=path, file_ending=file_ending, layout=layout, content=content)


def reader_for(dataset: DatasetInfo, example_file: str | Path) -> type:
    """nnU-Net's reader/writer class for the dataset (honours `overwrite_image_reader_writer`).

    nnU-Net decides by reading `example_file` in full, so its header is checked first (`check_label_image`).

    Raises:
        InputError: `example_file` fails the header checks, or no nnU-Net reader opens it.
    """
    from nnunetv2.imageio.reader_writer_registry import determine_reader_writer_from_dataset_json

    check_label_image(example_file)
    # nnU-Net prints tracebacks of the readers it tries; the report tells its own one-line error instead.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return determine_reader_writer_from_dataset_json(
                dataset.content, str(example_file), verbose=False
            )
        except Exception as error:  # nnU-Net raises RuntimeError, readers anything
            raise InputError(
                f"{example_file}: no nnU-Net reader for {dataset.file_ending!r} opens it ({first_line(error)})"
            ) from None
