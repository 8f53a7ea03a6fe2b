"""Hostile probability archives: absurd declared shapes, decompression bombs and truncated members get
the one-line error, exit 2, nothing written, and cost no more memory than a valid case."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from report_cli import run_report_process

from nnunet_surgery.cases import load_probabilities
from nnunet_surgery.cases.npz import MAX_ELEMENTS, READ_CHUNK
from nnunet_surgery.report import ReportError

PREFIX = "nnunet-surgery report: error: "
# peak memory a hostile file may add over a valid case: one read chunk plus zip and interpreter slack
MEMORY_SLACK = READ_CHUNK + (24 << 20)


def _write_member(path: Path, shape: tuple[int, ...], data_bytes: int, dtype: str = "<f4") -> None:
    """An npz whose `probabilities.npy` declares `shape` and holds `data_bytes` zero bytes (streamed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w", force_zip64=True) as member:
            header = {"descr": dtype, "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            zeros = bytes(min(data_bytes, 1 << 24))
            left = data_bytes
            while left > 0:
                member.write(zeros[: min(left, len(zeros))])
                left -= len(zeros)


@pytest.fixture
def dataset(build, no_plots):
    """A binary dataset whose cases are 2 x 16 x 64 x 64 float32 probabilities (about 0.5 MiB each)."""
    return build("binary", ((16, 64, 64), (16, 64, 64)), n_models=1)


def _refused(dataset, tmp_path, path: Path, needle: str) -> None:
    code, error, _ = run_report_process(dataset, tmp_path / "out")
    assert code == 2, error
    assert error.count("\n") == 0 and error.startswith(PREFIX) and str(path) in error and needle in error, (
        error
    )
    assert not (tmp_path / "out").exists()


def test_a_declared_shape_of_a_trillion_values_is_refused_before_reading(dataset, tmp_path):
    path = dataset.preds[0] / "case_001.npz"
    _write_member(path, (2, 10**4, 10**4, 10**4), 64)
    _refused(dataset, tmp_path, path, "does not match the reference's")
    with pytest.raises(ReportError, match="more than the limit"):
        load_probabilities(path)  # no shape to check against: the hard cap
    assert 2 * 10**12 > MAX_ELEMENTS


def test_a_truncated_member_is_refused(dataset, tmp_path):
    path = dataset.preds[0] / "case_001.npz"
    shape = dataset.probabilities[0]["case_001"].shape
    _write_member(path, shape, 4 * int(np.prod(shape)) - 100)
    _refused(dataset, tmp_path, path, "truncated")


def test_a_member_with_more_data_than_declared_is_refused(dataset, tmp_path):
    path = dataset.preds[0] / "case_001.npz"
    shape = dataset.probabilities[0]["case_001"].shape
    _write_member(path, shape, 4 * int(np.prod(shape)) + (8 << 20))
    _refused(dataset, tmp_path, path, "more data than its header declares")


def test_a_one_gib_bomb_of_the_wrong_shape_costs_no_more_memory_than_a_valid_case(dataset, tmp_path):
    code, error, valid_peak = run_report_process(dataset, tmp_path / "valid")
    assert code == 0, error
    assert json.loads((tmp_path / "valid" / "calibration.json").read_text())["bins"] == 20

    path = dataset.preds[0] / "case_001.npz"
    _write_member(path, (2, 1 << 10, 1 << 8, 1 << 9), 1 << 30)  # 2^28 float32 values: 1 GiB of zeros
    assert path.stat().st_size < (8 << 20)  # it compresses to a few MB
    code, error, bomb_peak = run_report_process(dataset, tmp_path / "out")
    assert code == 2 and "does not match the reference's" in error, error
    assert not (tmp_path / "out").exists()
    assert bomb_peak <= valid_peak + MEMORY_SLACK, (bomb_peak, valid_peak)


def test_a_valid_archive_reads_back_exactly_in_c_and_fortran_order(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.random((3, 5, 7, 4)).astype(np.float32)
    for name, stored in (("c", array), ("fortran", np.asfortranarray(array))):
        path = tmp_path / f"{name}.npz"
        np.savez_compressed(path, probabilities=stored)
        loaded = load_probabilities(path)
        assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
