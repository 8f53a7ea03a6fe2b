"""Reading one case's files: probability archives (never unpickled) and label images via nnU-Net's reader."""

from __future__ import annotations

import contextlib
import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nnunet_surgery.report.errors import ReportError

__all__ = ["PROBABILITIES_KEY", "load_probabilities", "read_label_image"]

PROBABILITIES_KEY = "probabilities"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_probabilities(path: str | Path, key: str = PROBABILITIES_KEY) -> np.ndarray:
    """Load `key` from an npz archive written by `nnUNetv2_predict --save_probabilities`.

    The archive is opened with `allow_pickle=False`: a pickle, or an archive holding an object array, is
    refused and never unpickled. The `.pkl` file nnU-Net writes beside it is never opened.

    Args:
        path: the `CASE.npz` file.
        key: array name inside the archive.

    Returns:
        The floating-point array (C, *spatial), as stored.

    Raises:
        ReportError: unreadable, corrupt, pickled, missing key, or a non-floating dtype.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(6)
    except OSError as error:
        raise ReportError(f"{path}: cannot read ({error.strerror or error})") from None
    if not magic.startswith(_ZIP_MAGIC):
        if magic[:1] == b"\x80":
            problem = "is a Python pickle, not an npz archive (refused: pickles are never loaded)"
        elif magic.startswith(_NPY_MAGIC):
            problem = f"is a single .npy array, not an npz archive holding {key!r}"
        else:
            problem = "is not an npz (zip) archive (corrupt or wrong file)"
        raise ReportError(f"{path}: {problem}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise ReportError(
                    f"{path}: no array {key!r} in the npz archive (found {sorted(archive.files)})"
                )
            array = archive[key]
    except ReportError:
        raise
    except ValueError as error:
        if "pickle" in str(error).lower():
            raise ReportError(
                f"{path}: {key!r} is a pickled object array (refused: loaded with allow_pickle=False)"
            ) from None
        raise ReportError(f"{path}: corrupt npz archive ({_first_line(error)})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, RuntimeError) as error:
        raise ReportError(f"{path}: corrupt npz archive ({_first_line(error)})") from None
    if not np.issubdtype(array.dtype, np.floating):
        raise ReportError(f"{path}: {key!r} must be a floating-point array, but has dtype {array.dtype}")
    return array


def read_label_image(reader_class: type, path: str | Path) -> np.ndarray:
    """Read a segmentation or mask with nnU-Net's reader: shape (1, *spatial), as nnU-Net's evaluation does.

    Raises:
        ReportError: the reader fails on the file.
    """
    path = Path(path)
    # nnU-Net's readers print warnings (origin / direction) to stdout; keep the report's output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            image, _ = reader_class().read_seg(str(path))
        except Exception as error:  # readers raise whatever their backend raises
            raise ReportError(
                f"{path}: cannot read with {reader_class.__name__} ({_first_line(error)})"
            ) from None
    return np.asarray(image)
