"""dataset.json: file ending, label layout, and nnU-Net's image reader for the reference files."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.cases.errors import InputError, first_line, printable
from nnunet_surgery.cases.label_images import check_label_image
from nnunet_surgery.cases.labels import LabelLayout, label_layout

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NUMBER",
    "DatasetInfo",
    "check_file_ending",
    "image_file_endings",
    "load_dataset_json",
    "read_json",
    "reader_for",
]


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


#: Largest JSON file read (bytes): dataset.json and calibrators are a few kB; a report's calibration.json
#: a few MB.
MAX_JSON_BYTES = 64 << 20
#: Deepest nesting of arrays and objects: ours and nnU-Net's files nest a few levels; Python's parser
#: would raise RecursionError near a thousand.
MAX_JSON_DEPTH = 64
#: Longest number literal (characters): a float's repr needs at most 24; Python refuses integers of more
#: than 4300 digits, and an integer of a few hundred digits overflows a float.
MAX_JSON_NUMBER = 64

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]")


class _Refused(Exception):
    """A value the bounded parser refuses (raised inside json's hooks, told as an InputError)."""


def _number_literal(text: str) -> str:
    if len(text) > MAX_JSON_NUMBER:
        raise _Refused(f"a number literal of {len(text)} characters (at most {MAX_JSON_NUMBER})")
    return text


def _parse_int(text: str) -> int:
    return int(_number_literal(text))


def _parse_float(text: str) -> float:
    value = float(_number_literal(text))
    if not math.isfinite(value):
        raise _Refused(f"the number {text} is too large for a float")
    return value


def _refuse_constant(text: str) -> float:
    raise _Refused(f"a non-finite number ({text})")


def _depth(data: bytes) -> int:
    """Deepest nesting of `[` and `{` outside strings (a few C-speed passes, no recursion)."""
    import numpy as np

    brackets = np.frombuffer(_NOT_BRACKETS.sub(b"", _STRINGS.sub(b"", data)), dtype=np.uint8)
    if not brackets.size:
        return 0
    opening = (brackets == ord("[")) | (brackets == ord("{"))
    return int(np.cumsum(np.where(opening, 1, -1), dtype=np.int64).max())


def read_json(path: str | Path, what: str, *, allow_nan: bool = False) -> object:
    """The parsed content of a JSON file, read within bounds: every JSON file the package reads comes here.

    The file must be a regular file of at most MAX_JSON_BYTES, nest at most MAX_JSON_DEPTH levels, and hold
    number literals of at most MAX_JSON_NUMBER characters that are finite as floats; `NaN` and `Infinity`
    (which Python writes, JSON does not allow) only with `allow_nan`.

    Args:
        path: the file.
        what: how an unreadable file is named in the error ("dataset.json", "the calibrator").
        allow_nan: accept `NaN`, `Infinity` and `-Infinity` (a report's calibration.json holds NaN where a
            metric is undefined).

    Raises:
        InputError: the file cannot be read, is not valid JSON, or exceeds a bound, naming it.
    """
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise InputError(f"{path}: cannot read {what} (not a regular file)")
        with path.open("rb") as handle:
            data = handle.read(MAX_JSON_BYTES + 1)
    except OSError as error:
        raise InputError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    if len(data) > MAX_JSON_BYTES:
        raise InputError(f"{path}: {what} is larger than {MAX_JSON_BYTES >> 20} MiB (not such a file)")
    try:
        text = data.decode(json.detect_encoding(data))
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({first_line(error)})") from None
    depth = _depth(text.encode())
    if depth > MAX_JSON_DEPTH:
        raise InputError(f"{path}: {what} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=float if allow_nan else _refuse_constant,
        )
    except _Refused as error:
        raise InputError(f"{path}: {what} holds {error}") from None
    except (json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else first_line(error)
        raise InputError(f"{path}: not valid JSON ({reason})") from None


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


def image_file_endings() -> tuple[str, ...]:
    """The file endings nnU-Net's image readers and writers support (its registry), e.g. ".nii.gz", ".png"."""
    from nnunetv2.imageio.reader_writer_registry import LIST_OF_IO_CLASSES

    return tuple(sorted({ending for io in LIST_OF_IO_CLASSES for ending in io.supported_file_endings}))


def check_file_ending(value: object, source: str) -> str:
    """`value`, if it is one of the endings nnU-Net writes images with (`image_file_endings`): never a path
    (no separators), never ".npz" (a probability archive).

    Args:
        source: how the error names the value ("CALIBRATOR.json: layout 'file_ending'").

    Raises:
        InputError: naming `source`, the value (escaped) and the endings allowed.
    """
    endings = image_file_endings()
    if not isinstance(value, str) or value not in endings:
        shown = value if not isinstance(value, str) else printable(value)
        raise InputError(
            f"{source} must be one of nnU-Net's image endings ({', '.join(endings)}), but is {shown}"
        )
    return value
