"""`cases.npz`: the size of an array bounded from the headers alone, whatever the zip directory claims."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from hostile_files import lying_directory, npy_header, zip_bomb

from nnunet_surgery.cases import InputError, load_probabilities
from nnunet_surgery.cases.npz import DEFLATE_MAX_RATIO, READ_CHUNK, _ArrayHeader, _check_size


def _info(compress_size: int, file_size: int, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("probabilities.npy")
    info.compress_size, info.file_size, info.compress_type = compress_size, file_size, method
    return info


def test_a_directory_declaring_32_gib_over_4_kb_is_refused_before_allocation(tmp_path):
    """The issue's case: 32 GiB declared by the .npy header and the (zip64) directory, 4 KB compressed."""
    path = tmp_path / "x.npz"
    path.write_bytes(bytes(4096))
    header = _ArrayHeader((2, 2**32), np.dtype("<f4"), False)
    with pytest.raises(InputError, match="more than its 4096 compressed bytes can hold"):
        _check_size(path, "probabilities", _info(4096, header.nbytes), header, header.nbytes)


def test_the_compressed_size_is_bounded_by_the_file_size(tmp_path):
    """A directory may lie about the compressed size too: the file's size bounds it."""
    path = tmp_path / "x.npz"
    path.write_bytes(bytes(1000))
    nbytes = 1000 * DEFLATE_MAX_RATIO + READ_CHUNK + 4
    header = _ArrayHeader((nbytes // 4,), np.dtype("<f4"), False)
    with pytest.raises(InputError, match="more than its 1000 compressed bytes"):
        _check_size(path, "probabilities", _info(2**40, nbytes), header, nbytes)


def test_a_stored_member_holds_at_most_its_compressed_size(tmp_path):
    path = tmp_path / "x.npz"
    header = _ArrayHeader((READ_CHUNK,), np.dtype("<f4"), False)  # 4 x READ_CHUNK bytes
    with path.open("wb") as handle:
        handle.truncate(header.nbytes)  # sparse
    with pytest.raises(InputError, match="compressed bytes can hold"):
        _check_size(
            path,
            "probabilities",
            _info(READ_CHUNK // 2, header.nbytes, zipfile.ZIP_STORED),
            header,
            header.nbytes,
        )
    _check_size(
        path, "probabilities", _info(header.nbytes, header.nbytes, zipfile.ZIP_STORED), header, header.nbytes
    )


def test_a_lying_directory_is_refused_by_the_reader(tmp_path):
    lying_directory(tmp_path / "x.npz", (2, 2**27))
    with pytest.raises(
        InputError, match=r"x.npz: 'probabilities' declares 1073741824 bytes of data, more than"
    ):
        load_probabilities(tmp_path / "x.npz")


def test_a_bomb_within_deflates_ratio_is_read_whole(tmp_path):
    """Zeros compress about 1000-fold, within deflate's limit: a valid archive, read exactly."""
    zip_bomb(tmp_path / "x.npz", (2, 1 << 20))
    array = load_probabilities(tmp_path / "x.npz")
    assert array.shape == (2, 1 << 20) and not array.any()


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_methods_numpy_never_writes_are_refused(tmp_path, method):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("probabilities.npy", npy_header((2, 4)) + bytes(32))
    with pytest.raises(InputError, match=f"compressed with zip method {method}"):
        load_probabilities(path)
