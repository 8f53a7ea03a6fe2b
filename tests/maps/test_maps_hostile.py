"""Hostile inputs of `maps` (issue 29): outputs that are inputs, named but unreadable cases, bounded JSON,
npz archives larger than their reference allows; one line, exit 2, nothing written (not even OUT_DIR or
its parents), memory near a valid run's."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile_files import UNREADABLE, make_unreadable, npy_header
from peak_memory import measured_run
from test_maps import _maps, _one_line, _two_cases


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("out", "relation"),
    [("", "holds the input"), ("gt", "is the input"), ("fold_0", "is the input"), ("gt/maps", "lies inside"),
     ("dataset.json", "is the input")],
)  # fmt: skip
def test_maps_never_overwrites_its_inputs(tmp_path, capsys, out, relation):
    """`maps -ref DIR/gt -o DIR --overwrite` once deleted the reference folder."""
    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    before = _snapshot(tmp_path)
    for overwrite in ((), ("--overwrite",)):
        args = [str(folders[0]), "-ref", str(gt), "-djfile", str(dataset), "-o", str(tmp_path / out)]
        assert _maps(*args, *overwrite) == 2
        _one_line(capsys, f"OUT_DIR {relation}")
        assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", UNREADABLE)
def test_a_named_but_unreadable_case_is_an_error(tmp_path, capsys, kind):
    gt, folders, _, dataset = _two_cases(tmp_path, members=2)
    make_unreadable(folders[1] / "case_c.npz", kind, tmp_path / "missing.npz")
    out = tmp_path / "new" / "deep" / "maps"
    assert _maps(*map(str, folders), "-ref", str(gt), "-djfile", str(dataset), "-o", str(out)) == 2
    _one_line(capsys, "case_c.npz", "prediction file of case case_c")
    assert not (tmp_path / "new").exists()


def test_a_failing_case_leaves_no_output_folder_nor_its_parents(tmp_path, capsys):
    gt, folders, arrays, dataset = _two_cases(tmp_path, members=1)
    bad = arrays["case_b"][0].copy()
    bad[1, 1, 1, 1] = np.inf
    np.savez_compressed(folders[0] / "case_b.npz", probabilities=bad)
    before = _snapshot(tmp_path)
    out = tmp_path / "new" / "deep" / "maps"
    for processes in ("1", "2"):
        args = [str(gt), str(folders[0]), "-djfile", str(dataset), "-o", str(out), "-np", processes]
        assert _maps(*args) == 2
        _one_line(capsys, "case_b.npz", "inf")
        assert _snapshot(tmp_path) == before and not (tmp_path / "new").exists()


def test_a_deeply_nested_dataset_json_is_one_line(tmp_path, capsys):
    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    dataset.write_text('{"labels": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert _maps(str(gt), str(folders[0]), "-djfile", str(dataset), "-o", str(tmp_path / "o")) == 2
    _one_line(capsys, "dataset.json", "nests 200001 levels")


def test_hidden_files_are_said(tmp_path, capsys):
    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    (folders[0] / ".case_a.npz").write_bytes(b"")
    assert _maps(str(gt), str(folders[0]), "-djfile", str(dataset), "-o", str(tmp_path / "o")) == 0
    err = capsys.readouterr().err
    assert "left out 1 hidden prediction file(s) (.case_a.npz)" in err, err


def test_an_unknown_option_names_the_subcommand(tmp_path, capsys):
    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    with pytest.raises(SystemExit) as exited:
        _maps(str(gt), str(folders[0]), "-djfile", str(dataset), "-o", str(tmp_path / "o"), "--roi", "all")
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "nnunet-surgery maps: error: unrecognized arguments: --roi all", last
    assert not (tmp_path / "o").exists()


def test_a_bomb_of_another_shape_is_refused_from_its_header(tmp_path):
    """768 MiB of zeros in under 1 MB, declared (3, 64, 1024, 1024) where the reference is 3x4x5: refused before
    a byte of data is decompressed, at a valid run's memory."""
    gt, folders, _, dataset = _two_cases(tmp_path, members=1)
    valid = measured_run("maps", str(gt), str(folders[0]), "-djfile", str(dataset), "-o", str(tmp_path / "v"))
    header_only = tmp_path / "bomb"
    header_only.mkdir()
    with zipfile.ZipFile(header_only / "case_a.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("probabilities.npy", "w", force_zip64=True) as member:
            member.write(npy_header((3, 64, 1024, 1024)))
            block = bytes(1 << 24)
            for _ in range(48):
                member.write(block)
    (gt / "case_b.nii.gz").unlink()
    bomb = measured_run("maps", str(gt), str(header_only), "-djfile", str(dataset), "-o", str(tmp_path / "o"))
    assert valid.rc == 0 and bomb.rc == 2, bomb.stderr
    assert "case_a.npz" in bomb.stderr and "does not match" in bomb.stderr, bomb.stderr
    assert bomb.peak_mib < valid.peak_mib + 32, (bomb.peak_mib, valid.peak_mib)
    assert not (tmp_path / "o").exists()
