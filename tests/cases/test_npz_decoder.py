"""The npz reader's two decoders: libdeflate's whole-member decode (imagecodecs) and zipfile's streamed
reads (stored members, or a build without libdeflate) give np.load's array exactly, and refuse a damaged
member with a one-line InputError naming the file."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnunet_surgery.cases import InputError, load_probabilities
from nnunet_surgery.cases import npz as npz_module

DECODERS = ("libdeflate", "zipfile")


@pytest.fixture(params=DECODERS)
def decoder(request, monkeypatch) -> str:
    """Run the test with each decoder: `zipfile` forces the streamed path, as where libdeflate is missing."""
    if request.param == "zipfile":
        monkeypatch.setattr(npz_module, "_libdeflate", lambda: None)
    else:
        assert npz_module._libdeflate() is not None  # imagecodecs (an nnU-Net requirement) has it
    return request.param


def _write(path: Path, array: np.ndarray, compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        with archive.open("probabilities.npy", "w") as member:
            np.lib.format.write_array(member, array, allow_pickle=False)


@pytest.mark.parametrize("dtype", ["<f2", "<f4", ">f4", "<f8"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_every_float_dtype_and_order_reads_back_as_np_load_gives_it(tmp_path, decoder, dtype, order):
    rng = np.random.default_rng(1)
    array = np.asarray(rng.random((2, 9, 13, 7)), dtype=dtype, order=order)
    path = tmp_path / "case.npz"
    np.savez_compressed(path, probabilities=array)
    loaded = load_probabilities(path)
    with np.load(path) as archive:
        expected = archive["probabilities"]
    assert loaded.dtype == expected.dtype and loaded.shape == expected.shape
    assert loaded.tobytes() == expected.tobytes()
    assert loaded.flags.writeable  # callers clip their copy in place
    assert loaded.flags.f_contiguous if order == "F" else loaded.flags.c_contiguous


def test_a_header_padded_to_16_bytes_still_gives_aligned_data(tmp_path, decoder):
    """Old numpy padded the .npy header to 16 bytes, not 64: the data still start 64-byte aligned."""
    array = np.linspace(0, 1, 2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    header = repr({"descr": "<f4", "fortran_order": False, "shape": array.shape}).encode()
    padding = -(len(np.lib.format.MAGIC_PREFIX) + 2 + 2 + len(header) + 1) % 16
    npy = np.lib.format.MAGIC_PREFIX + b"\x01\x00" + struct.pack("<H", len(header) + padding + 1)
    npy += header + b" " * padding + b"\n" + array.tobytes()
    assert (len(npy) - array.nbytes) % 64 != 0
    path = tmp_path / "case.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("probabilities.npy", npy)
    loaded = load_probabilities(path)
    assert np.array_equal(loaded, array)
    if decoder == "libdeflate":
        assert loaded.ctypes.data % 64 == 0


def test_a_stored_member_is_read_by_zipfile(tmp_path):
    array = np.full((2, 4, 4), 0.25, dtype=np.float32)
    path = tmp_path / "case.npz"
    _write(path, array, zipfile.ZIP_STORED)
    assert np.array_equal(load_probabilities(path), array)


def _member_offsets(path: Path) -> tuple[int, int, int]:
    """(local header offset, central directory entry offset, compressed data offset) of the only member."""
    raw = path.read_bytes()
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    name_length, extra_length = struct.unpack_from("<HH", raw, local + 26)
    return local, central, local + 30 + name_length + extra_length


def _patch(path: Path, offset: int, value: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(value)] = value
    path.write_bytes(bytes(raw))


def _refused(path: Path, needle: str) -> None:
    with pytest.raises(InputError) as error:
        load_probabilities(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)) and needle in message, message


@pytest.fixture
def archive(tmp_path) -> Path:
    """A deflated 2 x 32^3 float32 member of random values (compressible only a little)."""
    array = np.random.default_rng(2).random((2, 32, 32, 32)).astype(np.float32)
    path = tmp_path / "case.npz"
    _write(path, array)
    return path


def test_a_wrong_crc_is_refused(archive, decoder):
    local, central, _ = _member_offsets(archive)
    crc = struct.unpack_from("<I", archive.read_bytes(), central + 16)[0]
    wrong = struct.pack("<I", crc ^ 0x5A5A5A5A)
    _patch(archive, local + 14, wrong)
    _patch(archive, central + 16, wrong)
    _refused(archive, "CRC")


def test_damaged_compressed_data_are_refused(archive, decoder):
    _, _, data = _member_offsets(archive)
    size = archive.stat().st_size
    raw = bytearray(archive.read_bytes())
    for offset in range(data + 200, data + 200 + 64):  # 64 bytes of garbage inside the deflate stream
        raw[offset] ^= 0xA5
    archive.write_bytes(bytes(raw))
    assert archive.stat().st_size == size
    with pytest.raises(InputError) as error:  # damage shows as one of these, depending on where it lands
        load_probabilities(archive)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(archive)), message
    assert any(word in message for word in ("corrupt", "truncated", "more data")), message


def test_a_directory_claiming_more_compressed_bytes_than_the_file_holds_is_refused(archive):
    _, central, _ = _member_offsets(archive)
    _patch(archive, central + 20, struct.pack("<I", archive.stat().st_size + 1000))
    _refused(archive, "cut short")


@pytest.mark.parametrize("extra", [1, 4096])
def test_a_member_with_bytes_beyond_its_declared_data_is_refused(tmp_path, decoder, extra):
    """One byte more than declared is enough (the buffer holds the declared size and one byte)."""
    array = np.full((2, 8, 8), 0.5, dtype=np.float32)
    header = {"descr": "<f4", "fortran_order": False, "shape": array.shape}
    path = tmp_path / "case.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(array.tobytes() + bytes(extra))
    _refused(path, "more data than its header declares")


def test_a_member_shorter_than_declared_is_refused(tmp_path, decoder):
    header = {"descr": "<f4", "fortran_order": False, "shape": (2, 8, 8)}
    path = tmp_path / "case.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(bytes(4 * 2 * 8 * 8 - 1))
    _refused(path, "truncated")
