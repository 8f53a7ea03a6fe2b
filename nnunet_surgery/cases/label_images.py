"""Label images (references, ROI masks, gallery images), checked from their header before nnU-Net's reader
loads their pixels: nothing oversized, of the wrong size or damaged reaches the reader."""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from nnunet_surgery.cases.errors import InputError, backend_message
from nnunet_surgery.cases.npz import MAX_ELEMENTS

__all__ = ["check_label_image", "read_image", "read_label_image", "read_label_image_and_properties"]

# Bytes decompressed at a time while checking a NIfTI file's length (the check keeps nothing).
_SKIP_CHUNK = 1 << 20
# NIfTI datatype code -> bytes per voxel (NIfTI-1/2 standard; the types nifti1_io and nibabel read).
_NIFTI_ITEMSIZE = {
    2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8,
    1536: 16, 1792: 16, 2048: 32, 2304: 4,
}  # fmt: skip
_NIFTI_HEADER_BYTES = (348, 540)  # sizeof_hdr of NIfTI-1 and NIfTI-2


def _reader_order(array_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The (C, *spatial) shape nnU-Net's SimpleITKIO gives an array of `array_shape` (as numpy sees the
    file: slowest axis first): 2D gets (1, 1, y, x), 3D (1, z, y, x), 4D stays as it is."""
    if len(array_shape) == 2:
        return (1, 1, *array_shape)
    if len(array_shape) == 3:
        return (1, *array_shape)
    return array_shape


def _nifti_header(path: Path, head: bytes) -> tuple[tuple[int, ...], int]:
    """(shape in nnU-Net's order, bytes the uncompressed file must hold) from a NIfTI-1/2 header."""
    for order in "<>":
        if len(head) < 4 or struct.unpack_from(f"{order}i", head)[0] not in _NIFTI_HEADER_BYTES:
            continue
        header_bytes = struct.unpack_from(f"{order}i", head)[0]
        if len(head) < header_bytes:
            raise InputError(f"{path}: truncated NIfTI header ({len(head)} of {header_bytes} bytes)")
        if header_bytes == 348:
            dims = struct.unpack_from(f"{order}8h", head, 40)
            datatype = struct.unpack_from(f"{order}h", head, 70)[0]
            offset = struct.unpack_from(f"{order}f", head, 108)[0]
        else:
            datatype = struct.unpack_from(f"{order}h", head, 12)[0]
            dims = struct.unpack_from(f"{order}8q", head, 16)
            offset = struct.unpack_from(f"{order}q", head, 168)[0]
        if not 1 <= dims[0] <= 7:
            raise InputError(f"{path}: damaged NIfTI header (dim[0] = {dims[0]}, expected 1 to 7)")
        if datatype not in _NIFTI_ITEMSIZE:
            raise InputError(f"{path}: unsupported NIfTI datatype code {datatype}")
        # as nifti1_io: sizes below 1 count as 1, and the data never start inside the header
        sizes = tuple(max(int(n), 1) for n in dims[1 : dims[0] + 1])
        start = int(offset) if math.isfinite(offset) and offset >= header_bytes else header_bytes
        return _reader_order(sizes[::-1]), start + math.prod(sizes) * _NIFTI_ITEMSIZE[datatype]
    raise InputError(f"{path}: cannot read: not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")


def _check_declared(path: Path, shape: tuple[int, ...], expected_shape: tuple[int, ...] | None) -> None:
    """Refuse a declared shape over the cap, or whose voxel count cannot give `expected_shape`."""
    voxels = math.prod(shape)
    if voxels > MAX_ELEMENTS:
        raise InputError(f"{path}: declares {voxels} voxels {shape}, more than the limit of {MAX_ELEMENTS}")
    if expected_shape is not None and voxels != math.prod(expected_shape):
        raise InputError(
            f"{path}: shape {shape} (from its header) does not match the reference's {tuple(expected_shape)}"
        )


def _check_nifti(path: Path, size: int, expected_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Check a .nii/.nii.gz header, then stream through the file: it must hold exactly what it declares.

    nnU-Net's readers read only the declared bytes: a truncated gzip stream, or data cut short, would be
    read without an error (as zeros or garbage) and data beyond the declared size silently ignored.
    """
    compressed = path.name.lower().endswith(".gz")
    try:
        with (gzip.open if compressed else open)(path, "rb") as stream:
            head = stream.read(max(_NIFTI_HEADER_BYTES))
            shape, end = _nifti_header(path, head)
            _check_declared(path, shape, expected_shape)
            # an uncompressed file holds what its size says: nothing to stream through
            held = len(head) if compressed else size
            while compressed and held < end:
                read = len(stream.read(min(end - held, _SKIP_CHUNK)))
                if not read:
                    break
                held += read
            if held < end:
                raise InputError(
                    f"{path}: truncated: its header declares {end} bytes (header and voxels), it holds {held}"
                )
            if held > end or (compressed and stream.read(1)):
                raise InputError(f"{path}: holds more data than its header declares ({end} bytes, {shape})")
    except InputError:
        raise
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise InputError(
            f"{path}: cannot read: corrupt or truncated file ({backend_message(error)})"
        ) from None
    return shape


def _other_header(path: Path) -> tuple[int, ...] | None:
    """Declared shape (nnU-Net's order) from a header-only read, or None where no header reader applies."""
    name = path.name.lower()
    if name.endswith((".tif", ".tiff")):
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            return _reader_order(tuple(int(n) for n in tiff.series[0].shape))
    if name.endswith((".png", ".bmp")):
        from PIL import Image

        with Image.open(path) as image:  # reads the header only (and refuses PIL's decompression bombs)
            width, height = image.size
            bands = len(image.getbands())
        return _reader_order((height, width, *((bands,) if bands > 1 else ())))
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()  # .nrrd, .mha, .gipl, ...: the header, no pixels
    except RuntimeError:
        return None
    components = reader.GetNumberOfComponents()
    return _reader_order((*reader.GetSize()[::-1], *((components,) if components > 1 else ())))


def check_label_image(
    path: str | Path, *, expected_shape: tuple[int, ...] | None = None
) -> tuple[int, ...] | None:
    """Check a label image from its header before any reader loads its pixels.

    Refuses an image declaring more than MAX_ELEMENTS voxels, or (with `expected_shape`, nnU-Net's
    (1, *spatial)) a different number of voxels than that shape. NIfTI files (.nii, .nii.gz) are also
    streamed through in chunks of a megabyte, keeping nothing: a corrupt or truncated gzip stream, or
    voxel data shorter or longer than the header declares, is refused (nnU-Net's readers would read such
    a file without complaint). For a format without a header reader here, only the file size is bounded.

    Returns:
        The declared shape in nnU-Net's order, or None where it could not be read from a header.

    Raises:
        InputError: unreadable or damaged header, oversized, wrong voxel count, wrong data length.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror or error})") from None
    if path.name.lower().endswith((".nii", ".nii.gz")):
        return _check_nifti(path, size, expected_shape)
    try:
        shape = _other_header(path)
    except Exception as error:  # header readers raise whatever their backend raises
        raise InputError(f"{path}: cannot read the image header ({backend_message(error)})") from None
    if shape is not None:
        _check_declared(path, shape, expected_shape)
    elif size > MAX_ELEMENTS:  # no header: an uncompressed label image holds at least a byte per voxel
        raise InputError(f"{path}: {size} bytes, more than the limit of {MAX_ELEMENTS} for a label image")
    return shape


def read_label_image(
    reader_class: type, path: str | Path, *, expected_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """Read a segmentation or mask with nnU-Net's reader: shape (1, *spatial), as nnU-Net's evaluation does.

    `check_label_image` checks the header first, so nothing oversized, of the wrong size or damaged
    reaches the reader; the pixels are then read by nnU-Net's reader as they always were.

    Args:
        reader_class: nnU-Net's reader/writer class.
        path: the image.
        expected_shape: the shape the image must have (a mask: its reference's), or None (a reference
            defines its case's shape: only the cap applies).

    Raises:
        InputError: the header checks fail, the reader fails on the file, or the shape is not `expected_shape`.
    """
    return read_label_image_and_properties(reader_class, path, expected_shape=expected_shape)[0]


def read_label_image_and_properties(
    reader_class: type, path: str | Path, *, expected_shape: tuple[int, ...] | None = None
) -> tuple[np.ndarray, dict]:
    """`read_label_image`, also returning the reader's properties (spacing and the backend's geometry, as
    nnU-Net's `read_seg` gives them), for writers of images with the same geometry."""
    path = Path(path)
    check_label_image(path, expected_shape=expected_shape)
    image, properties = _read(reader_class, path, "read_seg")
    image = np.asarray(image)
    if expected_shape is not None and image.shape != tuple(expected_shape):
        raise InputError(
            f"{path}: shape {image.shape} does not match the reference's {tuple(expected_shape)}"
        )
    return image, properties


def read_image(reader_class: type, path: str | Path, *, shape: tuple[int, ...]) -> np.ndarray:
    """The first channel of an image `CASE_0000{file_ending}` as nnU-Net's `read_images` gives it, float32
    of `shape` (its reference's spatial shape), checked from its header first (`check_label_image`).

    Raises:
        InputError: the header checks fail, or the reader fails on the file.
    """
    path = Path(path)
    check_label_image(path, expected_shape=(1, *shape))  # one channel of the reference's size
    image, _ = _read(reader_class, path, "read_images")
    return np.asarray(image[0], dtype=np.float32)


def _read(reader_class: type, path: Path, method: str) -> tuple[np.ndarray, dict]:
    """`reader_class().read_seg(path)` or `.read_images((path,))`, any backend error as one line naming `path`."""
    # nnU-Net's readers print warnings (origin / direction) to stdout; keep the commands' output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            reader = reader_class()
            return reader.read_seg(str(path)) if method == "read_seg" else reader.read_images((str(path),))
        except Exception as error:  # readers raise whatever their backend raises
            raise InputError(
                f"{path}: cannot read with {reader_class.__name__} ({backend_message(error)})"
            ) from None
