"""Hostile label images (references, ROI masks) and truth maps: absurd declared sizes, gzip bombs,
truncated files and wrong shapes get the one-line error, exit 2, nothing written, and cost no more
memory than a valid case."""

from __future__ import annotations

import gzip
import io
import math
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from report_cli import run_report_process
from report_images import write_image

from nnunet_surgery.cases import check_label_image, read_label_image
from nnunet_surgery.cases.npz import MAX_ELEMENTS, READ_CHUNK
from nnunet_surgery.report import ReportError

PREFIX = "nnunet-surgery report: error: "
# peak memory a hostile file may add over a valid case: one read chunk plus gzip and interpreter slack
MEMORY_SLACK = READ_CHUNK + (24 << 20)
SHAPE = (16, 64, 64)  # (z, y, x) of every case: a uint8 reference of 64 KiB
BOMB_BYTES = 1 << 30  # zeros a bomb decompresses to
NIFTI_EXTENSION_FLAG = 4  # bytes between a NIfTI-1 header and its data when there are no extensions


def _write_nifti(path: Path, shape_zyx: tuple[int, ...], data_bytes: int, dtype=np.uint8) -> int:
    """A .nii.gz declaring `shape_zyx` of `dtype` and holding `data_bytes` zero bytes of voxel data,
    streamed through gzip (a bomb stays a few MB); the bytes its header declares, header included."""
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header.set_data_shape(shape_zyx[::-1])  # NIfTI stores (x, y, z)
    offset = header.sizeof_hdr + NIFTI_EXTENSION_FLAG
    header.set_data_offset(offset)
    raw = io.BytesIO()
    header.write_to(raw)
    with gzip.open(path, "wb", compresslevel=1) as stream:
        stream.write(raw.getvalue().ljust(offset, b"\0"))
        zeros, left = bytes(min(data_bytes, 1 << 24)), data_bytes
        while left > 0:
            stream.write(zeros[: min(left, len(zeros))])
            left -= len(zeros)
    return offset + math.prod(shape_zyx) * np.dtype(dtype).itemsize


def _write_probabilities(path: Path, shape: tuple[int, ...]) -> None:
    """An npz whose `probabilities.npy` declares float32 `shape` and holds a few bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w") as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            member.write(bytes(64))


@pytest.fixture
def dataset(build, no_plots):
    """A binary dataset of two 16 x 64 x 64 cases, one model."""
    return build("binary", (SHAPE, SHAPE), n_models=1)


@pytest.fixture
def masks(dataset):
    """A valid ROI mask per case (the reference's shape); the report's `--roi mask:FOLDER` arguments."""
    folder = dataset.root / "masks"
    folder.mkdir()
    for case, reference in dataset.references.items():
        mask = np.zeros(reference.shape, dtype=np.uint8)
        mask[:, 4:-4, 4:-4] = 1
        write_image(folder / f"{case}.nii.gz", mask)
    return folder


def _valid_peak(dataset, tmp_path: Path, *extra: str) -> int:
    code, error, peak = run_report_process(dataset, tmp_path / "valid", *extra)
    assert code == 0, error
    return peak


def _refused(dataset, tmp_path: Path, path: Path, needle: str, *extra: str) -> int:
    """Assert the report refuses `path` in one line containing `needle`, writing nothing; its peak RSS."""
    code, error, peak = run_report_process(dataset, tmp_path / "out", *extra)
    assert code == 2, error
    assert error.count("\n") == 0 and error.startswith(PREFIX), error
    assert str(path) in error and needle in error, error
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")], "temporary output left behind"
    return peak


def _error_of(path: Path, expected_shape=None) -> ReportError:
    with pytest.raises(ReportError) as caught:
        check_label_image(path, expected_shape=expected_shape)
    return caught.value


def test_a_reference_declaring_a_trillion_voxels_is_refused_from_its_header(dataset, tmp_path):
    valid = _valid_peak(dataset, tmp_path)
    path = dataset.gt / "case_001.nii.gz"
    huge = (10**4, 10**4, 10**4)
    assert math.prod(huge) > MAX_ELEMENTS
    _write_nifti(path, huge, 64)
    peak = _refused(dataset, tmp_path, path, f"declares {math.prod(huge)} voxels")
    assert f"more than the limit of {MAX_ELEMENTS}" in str(_error_of(path))
    assert peak <= valid + MEMORY_SLACK, (peak, valid)


def test_a_gzip_bomb_reference_of_the_right_declared_shape_is_refused_cheaply(dataset, tmp_path):
    """The header declares the case's shape, the gzip stream holds 1 GiB: refused after reading one
    byte past what is declared (nnU-Net's reader would silently ignore the rest)."""
    valid = _valid_peak(dataset, tmp_path)
    path = dataset.gt / "case_001.nii.gz"
    declared = _write_nifti(path, SHAPE, BOMB_BYTES)
    assert path.stat().st_size < (8 << 20)  # it compresses to a few MB
    peak = _refused(dataset, tmp_path, path, f"holds more data than its header declares ({declared} bytes")
    assert peak <= valid + MEMORY_SLACK, (peak, valid)


def test_a_reference_with_voxel_data_cut_short_is_refused(dataset, tmp_path):
    path = dataset.gt / "case_001.nii.gz"
    declared = _write_nifti(path, SHAPE, math.prod(SHAPE) - 1)  # a complete gzip stream, one voxel short
    _refused(dataset, tmp_path, path, f"truncated: its header declares {declared} bytes")


def test_a_truncated_gzip_reference_is_refused(dataset, tmp_path):
    path = dataset.gt / "case_001.nii.gz"
    rng = np.random.default_rng(1)  # random labels: the compressed stream is long enough to cut
    write_image(path, rng.integers(0, 2, SHAPE, dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # SimpleITK itself reads such a file without an error (the missing voxels as zeros)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(path))).shape == SHAPE
    _refused(dataset, tmp_path, path, "corrupt or truncated file")


def test_a_mask_of_the_wrong_shape_is_refused_from_its_header(dataset, masks, tmp_path):
    path = masks / "case_001.nii.gz"
    write_image(path, np.ones((SHAPE[0], SHAPE[1], SHAPE[2] - 1), dtype=np.uint8))
    _refused(
        dataset, tmp_path, path, "does not match the reference's (1, 16, 64, 64)", "--roi", f"mask:{masks}"
    )


def test_a_mask_with_permuted_axes_is_refused_after_reading(dataset, masks, tmp_path):
    """Same voxel count, other axis order: the header check lets it through, the read shape does not."""
    path = masks / "case_001.nii.gz"
    write_image(path, np.ones((SHAPE[1], SHAPE[0], SHAPE[2]), dtype=np.uint8))
    _refused(dataset, tmp_path, path, "shape (1, 64, 16, 64) does not match", "--roi", f"mask:{masks}")


def test_a_one_gib_mask_bomb_of_the_wrong_shape_costs_no_more_memory_than_a_valid_case(
    dataset, masks, tmp_path
):
    extra = ("--roi", f"mask:{masks}")
    valid = _valid_peak(dataset, tmp_path, *extra)
    path = masks / "case_001.nii.gz"
    bomb = (1 << 10, 1 << 10, BOMB_BYTES >> 20)  # uint8: declares exactly BOMB_BYTES of voxels
    assert _write_nifti(path, bomb, BOMB_BYTES) > BOMB_BYTES and math.prod(bomb) < MAX_ELEMENTS
    assert path.stat().st_size < (8 << 20)
    peak = _refused(dataset, tmp_path, path, "(from its header) does not match the reference's", *extra)
    # reading it would have cost at least the declared voxels as float32 (nnU-Net's readers)
    assert peak <= valid + MEMORY_SLACK < valid + 4 * BOMB_BYTES, (peak, valid)


def test_a_truth_map_declaring_a_trillion_values_is_refused_before_decompression(build, no_plots, tmp_path):
    folders = build("binary", (SHAPE, SHAPE), n_models=1, truth=True)
    extra = ("--truth", str(folders.truth))
    valid = _valid_peak(folders, tmp_path, *extra)
    path = folders.truth / "case_001.npz"
    _write_probabilities(path, (2, 10**4, 10**4, 10**4))
    peak = _refused(folders, tmp_path, path, "does not match the reference's", *extra)
    assert peak <= valid + MEMORY_SLACK, (peak, valid)


# header checks of the other formats nnU-Net reads, without the CLI


def _io(name: str) -> type:
    from nnunetv2.imageio import reader_writer_registry as registry

    return {cls.__name__: cls for cls in registry.LIST_OF_IO_CLASSES}[name]


@pytest.mark.parametrize(
    ("ending", "reader", "shape"),
    [
        (".nii.gz", "SimpleITKIO", SHAPE),
        (".nii.gz", "NibabelIO", SHAPE),
        (".nii", "SimpleITKIO", SHAPE),
        (".nrrd", "SimpleITKIO", SHAPE),
        (".mha", "SimpleITKIO", SHAPE),
        (".tif", "Tiff3DIO", SHAPE),
        (".png", "NaturalImage2DIO", SHAPE[1:]),
    ],
)
def test_valid_images_read_back_as_nnunet_reads_them(tmp_path, ending, reader, shape):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, shape, dtype=np.uint8)
    path = tmp_path / f"case{ending}"
    if ending == ".tif":
        import tifffile

        tifffile.imwrite(path, labels)
    elif ending == ".png":
        from PIL import Image

        Image.fromarray(labels).save(path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(labels), str(path), True)
    expected = (1, *shape) if len(shape) == 3 else (1, 1, *shape)
    assert check_label_image(path) == expected
    image = read_label_image(_io(reader), path, expected_shape=expected)
    direct, _ = _io(reader)().read_seg(str(path))
    assert (
        image.shape == expected
        and np.array_equal(image, direct)
        and np.array_equal(image.reshape(shape), labels)
    )
    wrong = (*expected[:-1], expected[-1] + 1)
    assert "(from its header) does not match the reference's" in str(_error_of(path, wrong))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("huge.nrrd", "NRRD0004\ntype: uint8\ndimension: 3\nsizes: {x} {y} {z}\nencoding: raw\n\n"),
        (
            "huge.mha",
            "ObjectType = Image\nNDims = 3\nDimSize = {x} {y} {z}\nElementType = MET_UCHAR\n"
            "ElementDataFile = LOCAL\n",
        ),
    ],
)
def test_other_headers_declaring_a_trillion_voxels_are_refused(tmp_path, name, text):
    path = tmp_path / name
    x = y = z = 10**4
    path.write_bytes(text.format(x=x, y=y, z=z).encode() + bytes(64))
    assert f"declares {x * y * z} voxels (1, {z}, {y}, {x}), more than the limit" in str(_error_of(path))


def test_nifti_2_and_big_endian_headers_are_parsed(tmp_path):
    labels = np.random.default_rng(0).integers(0, 3, SHAPE).astype(np.int16)
    for name, image in (
        ("two.nii.gz", nib.Nifti2Image(labels.T, np.eye(4))),
        ("big.nii.gz", nib.Nifti1Image(labels.T, np.eye(4), nib.Nifti1Header(endianness=">"))),
    ):
        nib.save(image, tmp_path / name)
        assert check_label_image(tmp_path / name) == (1, *SHAPE)
        assert np.array_equal(read_label_image(_io("NibabelIO"), tmp_path / name)[0], labels)


def test_an_uncompressed_nifti_must_be_as_long_as_its_header_declares(tmp_path):
    path = tmp_path / "case.nii"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE[::-1], dtype=np.uint8), np.eye(4)), path)
    assert check_label_image(path) == (1, *SHAPE)
    data = path.read_bytes()
    declared = len(data)
    path.write_bytes(data[:-1])
    assert f"truncated: its header declares {declared} bytes" in str(_error_of(path))
    path.write_bytes(data + b"\0")
    assert "holds more data than its header declares" in str(_error_of(path))
    path.write_bytes(data[:200])
    assert "truncated NIfTI header" in str(_error_of(path))
