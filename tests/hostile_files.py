"""Hostile files the tests of every command build: names that cannot be read as files, and npz archives
that lie about their size (written without ever holding the data they declare in memory)."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np

UNREADABLE = ("dangling", "loop", "folder")


def make_unreadable(path: Path, kind: str, elsewhere: Path) -> None:
    """`path` as a name that is no readable file: a symlink to the missing `elsewhere`, a symlink to
    itself, or a folder."""
    if kind == "dangling":
        path.symlink_to(elsewhere)
    elif kind == "loop":
        path.symlink_to(path)
    else:
        path.mkdir()


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a C-order float32 array of `shape`."""
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return stream.getvalue()


def lying_directory(path: Path, shape: tuple[int, ...]) -> None:
    """An npz whose .npy header and zip directory both declare `shape` (float32) while the member holds
    4 KB: the directory's uncompressed size is patched (it stays below 4 GiB: no zip64 record)."""
    header = npy_header(shape)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", header + bytes(4096))
    data = bytearray(path.read_bytes())
    size = len(header) + 4 * int(np.prod(shape))
    assert size < 2**32
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = struct.pack("<I", size)  # central directory: uncompressed size
    data[22:26] = struct.pack("<I", size)  # local header: uncompressed size
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("probabilities.npy").file_size == size


def zip_bomb(path: Path, shape: tuple[int, ...]) -> None:
    """A valid npz of zeros (`shape`, float32): deflate shrinks it about 1000-fold; written in 16 MiB steps."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w", force_zip64=True) as member:
            member.write(npy_header(shape))
            left = 4 * int(np.prod(shape))
            block = bytes(1 << 24)
            while left:
                member.write(block[: min(left, len(block))])
                left -= min(left, len(block))
