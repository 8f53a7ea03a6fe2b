"""Probability archives (`CASE.npz` of `nnUNetv2_predict --save_probabilities`), read memory-safely and never
unpickled: the `.npy` member's header is checked before any data are decompressed; then the values are
checked once, in one place (`valid_probabilities`: check, raise, clip)."""

from __future__ import annotations

import math
import mmap
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO

import numpy as np

from nnunet_surgery.cases.errors import InputError, first_line
from nnunet_surgery.cases.labels import LabelLayout

__all__ = [
    "DEFLATE_MAX_RATIO",
    "MAX_ELEMENTS",
    "PROBABILITIES_KEY",
    "READ_CHUNK",
    "check_probabilities_by_chunk",
    "check_probability_shape",
    "load_probabilities",
    "load_valid_probabilities",
    "valid_probabilities",
]

PROBABILITIES_KEY = "probabilities"
# Hard cap on the values one probability array may declare (2**33 float32 values = 32 GiB), whatever the
# caller's shape check says. Label images (references, masks) are capped at as many voxels: nnU-Net's
# readers return them as float32 (the same 32 GiB), and a reference with more voxels could never be
# matched by a probability map, which holds at least one value per voxel.
MAX_ELEMENTS = 2**33
# Bytes decompressed per read where zipfile reads the member (stored members, or no libdeflate): the only
# buffer besides the array itself. A megabyte, as numpy's own npz reader reads (2^18 float32 values): each
# chunk is decompressed and copied while it is in the cache, where 16 MiB chunks cost 25% more than np.load
# (bench/results/report-stages-cpu.txt).
READ_CHUNK = 1 << 20
# Most bytes deflate can expand one compressed byte into (its format's limit is 1032:1): a member whose
# header declares more data than its compressed size could ever hold is refused before anything is
# allocated, whatever the zip directory claims.
DEFLATE_MAX_RATIO = 1032
# numpy writes npz members stored or deflated; other methods (bzip2, lzma) are refused.
_METHODS = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: DEFLATE_MAX_RATIO}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature, name and extra lengths
_NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class _ArrayHeader:
    """What an .npy member declares before its data: shape, dtype and memory order."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _check_archive_magic(path: Path, key: str) -> None:
    try:
        with path.open("rb") as handle:
            magic = handle.read(6)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    if not magic.startswith(_ZIP_MAGIC):
        if magic[:1] == b"\x80":
            problem = "is a Python pickle, not an npz archive (refused: pickles are never loaded)"
        elif magic.startswith(_NPY_MAGIC):
            problem = f"is a single .npy array, not an npz archive holding {key!r}"
        else:
            problem = "is not an npz (zip) archive (corrupt or wrong file)"
        raise InputError(f"{path}: {problem}")


def _read_header(path: Path, key: str, stream: IO[bytes]) -> _ArrayHeader:
    """Parse the .npy header (only the header is decompressed) and refuse non-float or object dtypes."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise InputError(f"{path}: {key!r} has an unsupported .npy format version {version}")
    if dtype.hasobject:
        raise InputError(
            f"{path}: {key!r} is a pickled object array (refused: pickled objects are never loaded)"
        )
    if not np.issubdtype(dtype, np.floating):
        raise InputError(f"{path}: {key!r} must be a floating-point array, but has dtype {dtype}")
    return _ArrayHeader(tuple(int(n) for n in shape), dtype, bool(fortran_order))


def _check_size(path: Path, key: str, info: zipfile.ZipInfo, header: _ArrayHeader, declared: int) -> None:
    """Refuse, from the headers alone, an array larger than MAX_ELEMENTS, larger than the zip directory says
    the member holds (`declared` bytes after the .npy header), or larger than the member's compressed bytes
    could decompress to (the directory's compressed size, at most the file's size, times the method's
    largest ratio): a lying zip directory or a decompression bomb is refused before any allocation."""
    if math.prod(header.shape) > MAX_ELEMENTS:
        raise InputError(
            f"{path}: {key!r} declares {math.prod(header.shape)} values, more than the limit of {MAX_ELEMENTS}"
        )
    if header.nbytes > declared:
        raise InputError(
            f"{path}: {key!r} is truncated: its header declares {header.nbytes} bytes of data, the archive holds {declared}"
        )
    compressed = min(info.compress_size, path.stat().st_size)
    if header.nbytes > compressed * _METHODS[info.compress_type] + READ_CHUNK:
        raise InputError(
            f"{path}: {key!r} declares {header.nbytes} bytes of data, more than its {compressed} compressed "
            "bytes can hold (a corrupt archive or a decompression bomb)"
        )


def _read_data(path: Path, key: str, stream: IO[bytes], header: _ArrayHeader) -> np.ndarray:
    """Read exactly the bytes the header declares, in bounded chunks, into a fresh array."""
    array = np.empty(header.shape[::-1] if header.fortran_order else header.shape, dtype=header.dtype)
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    offset = 0
    while offset < header.nbytes:
        read = stream.readinto(buffer[offset : offset + READ_CHUNK])
        if not read:
            raise InputError(f"{path}: {key!r} is truncated after {offset} of {header.nbytes} bytes")
        offset += read
    if stream.read(1):
        raise _too_long(path, key, header)
    return array.T if header.fortran_order else array


def _too_long(path: Path, key: str, header: _ArrayHeader, maybe: str = "") -> InputError:
    return InputError(f"{path}: {key!r} holds more data than its header declares ({header.shape}){maybe}")


def _libdeflate() -> ModuleType | None:
    """imagecodecs (which nnU-Net requires) where it has libdeflate, else None. libdeflate decodes a member
    2.5x as fast as zlib (`bench/results/report-stages-cpu.txt`)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs if imagecodecs.DEFLATE.available else None


def _member_bytes(path: Path, handle: IO[bytes], info: zipfile.ZipInfo) -> memoryview:
    """The compressed bytes of a zip member, mapped from the file (read-only; nothing is copied)."""
    handle.seek(info.header_offset)
    local = handle.read(_LOCAL_HEADER.size)
    signature, name_length, extra_length = (
        _LOCAL_HEADER.unpack(local) if len(local) == _LOCAL_HEADER.size else (b"", 0, 0)
    )
    if signature != b"PK\x03\x04":
        raise InputError(f"{path}: corrupt npz archive (bad local header of {info.filename!r})")
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if start + info.compress_size > len(mapped):
        mapped.close()
        raise InputError(f"{path}: corrupt npz archive ({info.filename!r} is cut short)")
    return memoryview(mapped)[start : start + info.compress_size]


def _decode_data(
    path: Path, key: str, info: zipfile.ZipInfo, header: _ArrayHeader, header_bytes: int, codecs: ModuleType
) -> np.ndarray:
    """A deflated member decoded at once, .npy header and data, into one buffer of exactly the declared size
    and a byte more: a member that holds fewer or more bytes than its header declares is refused, and its
    CRC-32 is checked as zipfile checks it. Memory: the array (and its header); the compressed bytes stay
    in the file's pages."""
    total = header_bytes + header.nbytes
    buffer = np.empty(total + 1 + 64, dtype=np.uint8)
    pad = -(buffer.ctypes.data + header_bytes) % 64  # the data start 64-byte aligned, as numpy allocates
    out = buffer[pad : pad + total + 1]
    with path.open("rb") as handle:
        compressed = _member_bytes(path, handle, info)
        try:
            decoded = len(codecs.deflate_decode(compressed, raw=True, out=out))
        except codecs.DeflateError as error:
            if "INSUFFICIENT_SPACE" in str(error):  # the stream goes on past the declared size
                raise _too_long(path, key, header, ", or is corrupt") from None
            raise InputError(f"{path}: corrupt npz archive ({key!r}: {first_line(error)})") from None
        finally:
            mapped = compressed.obj
            compressed.release()
            mapped.close()
    if decoded < total:
        raise InputError(
            f"{path}: {key!r} is truncated after {decoded - header_bytes} of {header.nbytes} bytes"
        )
    if decoded > total:
        raise _too_long(path, key, header)
    if codecs.deflate_crc32(out[:total]) != info.CRC:
        raise InputError(f"{path}: corrupt npz archive (bad CRC-32 of {info.filename!r})")
    data = out[header_bytes:total].view(header.dtype)
    if header.fortran_order:
        return data.reshape(header.shape[::-1]).T
    return data.reshape(header.shape)


def load_probabilities(
    path: str | Path,
    key: str = PROBABILITIES_KEY,
    *,
    check_shape: Callable[[tuple[int, ...]], None] | None = None,
) -> np.ndarray:
    """Load `key` from an npz archive written by `nnUNetv2_predict --save_probabilities`, memory-safely.

    Nothing is unpickled: the `.npy` member's header is parsed first and an object dtype (a pickle) is
    refused, as is any non-floating dtype. `check_shape` then sees the declared shape before any data is
    decompressed (e.g. to refuse a shape that does not fit the reference); the data are read into an array
    of exactly the declared size, at most MAX_ELEMENTS values and at most what the member's compressed bytes
    can hold (`_check_size`: a lying zip directory or a bomb is refused from the headers), and a member
    holding fewer or more bytes than declared (truncated, or a decompression bomb) is refused. A deflated
    member (what `np.savez_compressed` writes) is decoded at once by libdeflate (imagecodecs) straight into
    the array's buffer, its CRC-32 checked; a stored one is read in chunks. The `.pkl` file nnU-Net writes
    beside it is never opened.

    Args:
        path: the `CASE.npz` file.
        key: array name inside the archive.
        check_shape: raises InputError for a declared shape the caller cannot use.

    Returns:
        The floating-point array (C, *spatial), as stored.

    Raises:
        InputError: unreadable, corrupt, truncated, oversized, pickled, missing key, or a non-floating dtype.
    """
    path = Path(path)
    _check_archive_magic(path, key)
    member = f"{key}.npy"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if member not in names:
                found = sorted(name[: -len(".npy")] if name.endswith(".npy") else name for name in names)
                raise InputError(f"{path}: no array {key!r} in the npz archive (found {found})")
            info = archive.getinfo(member)
            if info.compress_type not in _METHODS:
                raise InputError(
                    f"{path}: {key!r} is compressed with zip method {info.compress_type} (numpy writes only "
                    "stored or deflated archives)"
                )
            with archive.open(info) as stream:
                header = _read_header(path, key, stream)
                if check_shape is not None:
                    check_shape(header.shape)
                header_bytes = stream.tell()
                _check_size(path, key, info, header, info.file_size - header_bytes)
                codecs = _libdeflate() if info.compress_type == zipfile.ZIP_DEFLATED else None
                if codecs is None or info.flag_bits & 1:  # stored, or encrypted (zipfile refuses it)
                    return _read_data(path, key, stream, header)
            return _decode_data(path, key, info, header, header_bytes, codecs)
    except InputError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, RuntimeError) as error:
        raise InputError(f"{path}: corrupt npz archive ({first_line(error)})") from None


def check_probability_shape(
    path: Path, shape: tuple[int, ...], expected: tuple[int, ...], layout: LabelLayout
) -> None:
    """Refuse a probability array's (declared) shape unless it is `expected`, saying how it differs."""
    if shape == expected:
        return
    if len(shape) != len(expected):
        problem = f"has shape {shape} but the reference needs (C, *spatial) = {expected}: axis count differs"
    elif shape[0] != expected[0]:
        meaning = "one per region" if layout.region_based else "background + one per label"
        problem = f"has {shape[0]} channels but dataset.json needs {expected[0]} ({meaning})"
    elif sorted(shape[1:]) == sorted(expected[1:]):
        problem = (
            f"spatial shape {shape[1:]} is an axis permutation of the reference's {expected[1:]}: "
            "axis order mismatch (expected the order nnU-Net's reader gives)"
        )
    else:
        problem = f"spatial shape {shape[1:]} does not match the reference's {expected[1:]}"
    raise InputError(f"{path}: {problem}")


def valid_probabilities(path: str | Path, values: np.ndarray, *, softmax: bool, hint: str = "") -> np.ndarray:
    """The one probability check: `values` (C, ...) read from `path` checked (finite, in [0, 1], softmax
    channels summing to 1: `calibration.check_probabilities`) and clipped into [0, 1] where rounding put
    them a hair outside (a clipped copy; `values` itself when nothing is outside).

    Args:
        path: the file the values come from, named in the error.
        values: (C, ...) probabilities, channels first.
        softmax: whether the channels must sum to 1.
        hint: appended to the error (e.g. what the caller expected the map to be).

    Raises:
        InputError: NaN/inf, values outside [0, 1] beyond rounding, softmax sums off 1, naming `path`.
    """
    from nnunet_surgery.calibration import ProbabilityError, check_probabilities

    try:
        low, high = check_probabilities(values, softmax=softmax)
    except ProbabilityError as error:
        raise InputError(f"{path}: {error}{hint}") from None
    return values if low >= 0.0 and high <= 1.0 else np.clip(values, 0.0, 1.0)


def check_probabilities_by_chunk(
    path: str | Path, values: np.ndarray, *, softmax: bool, hint: str = "", chunk_elements: int | None = None
) -> None:
    """`valid_probabilities` of a `(C, N)` array, a chunk of voxels at a time: the check's temporaries stay
    chunk-sized, whatever the size of the map (values a hair outside [0, 1] are left to the caller's use).

    Raises:
        InputError: as `valid_probabilities`, for the first chunk that fails.
    """
    from nnunet_surgery.cases.chunks import CHUNK_ELEMENTS, voxel_chunks

    for chunk in voxel_chunks(values.shape[1], values.shape[0], chunk_elements or CHUNK_ELEMENTS):
        valid_probabilities(path, values[:, chunk], softmax=softmax, hint=hint)


def load_valid_probabilities(
    path: str | Path,
    *,
    softmax: bool,
    check_shape: Callable[[tuple[int, ...]], None] | None = None,
    hint: str = "",
) -> np.ndarray:
    """`load_probabilities`, then `valid_probabilities` of the whole array.

    Args:
        path, check_shape: as `load_probabilities`.
        softmax, hint: as `valid_probabilities`.

    Raises:
        InputError: as `load_probabilities`, or values the check refuses.
    """
    return valid_probabilities(
        path, load_probabilities(path, check_shape=check_shape), softmax=softmax, hint=hint
    )
