"""The same promise for every command that reads cases (issue 29): `report`, `recalibrate fit`,
`recalibrate apply`, `maps` and `conformal fit` answer each hostile input with one line naming the file or argument, exit 2,
and write nothing, not even their output folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hostile_files import lying_directory, make_unreadable
from test_errors import SHAPES, _snapshot

from nnunet_surgery.cli import main
from nnunet_surgery.recalibration.calibrator import Calibrator

COMMANDS = ("report", "fit", "apply", "maps", "conformal")


def _argv(command: str, data, calibrator: Path, out: Path, *, overwrite: bool) -> list[str]:
    gt, fold, dj = str(data.gt), str(data.folds[0]), str(data.dataset_json)
    argv = {
        "report": ["report", gt, fold, "-djfile", dj, "-o", str(out), "--bootstrap", "0"],
        # fit writes a file: over its dataset.json, or a new file in a new folder
        "fit": [
            "recalibrate",
            "fit",
            gt,
            fold,
            "-djfile",
            dj,
            "-o",
            dj if overwrite else str(out / "c.json"),
        ],
        "apply": ["recalibrate", "apply", str(calibrator), fold, "-o", str(out)],
        "conformal": [
            "conformal",
            "fit",
            gt,
            fold,
            "-djfile",
            dj,
            "--alpha",
            "0.5",
            "-o",
            dj if overwrite else str(out / "conformal.json"),
        ],
        "maps": ["maps", gt, fold, "-djfile", dj, "-o", str(out)],
    }[command]
    return [*argv, "--no-progress", *(("--overwrite",) if overwrite else ())]


def _deep_json(data, calibrator: Path, tmp_path: Path):
    for path in (data.dataset_json, calibrator):
        path.write_text('{"labels": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return "nests 100001 levels", False


def _huge_number(data, calibrator: Path, tmp_path: Path):
    for path in (data.dataset_json, calibrator):
        content = json.loads(path.read_text())
        path.write_text(json.dumps(content).replace("{", '{"n": ' + "7" * 4400 + ", ", 1))
    return "number literal of 4400 characters", False


def _dangling_case(data, calibrator: Path, tmp_path: Path):
    (data.folds[0] / "case_000.npz").unlink()
    make_unreadable(data.folds[0] / "case_000.npz", "dangling", tmp_path / "gone.npz")
    return "case_000.npz", False


def _case_folder(data, calibrator: Path, tmp_path: Path):
    (data.folds[0] / "case_000.npz").unlink()
    make_unreadable(data.folds[0] / "case_000.npz", "folder", tmp_path)
    return "a folder, not a file", False


def _newline_name(data, calibrator: Path, tmp_path: Path):
    saved = data.probabilities["case_000"].copy()
    saved[0, 0, 0, 0] = np.nan  # for apply, which needs no reference
    np.savez_compressed(data.folds[0] / "line\nbreak.npz", probabilities=saved)
    return "line\\nbreak", False


def _lying_directory(data, calibrator: Path, tmp_path: Path):
    """case_000.npz declares ~2 GiB in its header and zip directory, holds 4 KB."""
    lying_directory(data.folds[0] / "case_000.npz", (2, 2**28 - 1024))
    return "case_000.npz", False


def _output_is_or_holds_inputs(data, calibrator: Path, tmp_path: Path):
    """OUT_DIR the folder holding every input (fit: -o its dataset.json), with --overwrite."""
    return " the input ", True


HOSTILE = (
    _deep_json,
    _huge_number,
    _dangling_case,
    _case_folder,
    _newline_name,
    _lying_directory,
    _output_is_or_holds_inputs,
)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda f: f.__name__.strip("_"))
def test_every_command_refuses_in_one_line_and_writes_nothing(
    overconfident, tmp_path, capsys, command, hostile
):
    data = overconfident(2, 2.0, SHAPES)
    calibrator = data.root / "calibrator.json"
    Calibrator("temperature", (2.0, 2.0), (0.0, 0.0), 2, False, ("lesion",), ".nii.gz").write(calibrator)
    expected, holds = hostile(data, calibrator, tmp_path)
    out = data.root if holds else tmp_path / "new" / "out"
    before = _snapshot(tmp_path)
    assert main(_argv(command, data, calibrator, out, overwrite=holds)) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    prog = "nnunet-surgery " + {
        "fit": "recalibrate fit",
        "apply": "recalibrate apply",
        "conformal": "conformal fit",
    }.get(command, command)
    assert error[0].startswith(f"{prog}: error: ") and expected in error[0], error
    assert _snapshot(tmp_path) == before and not (tmp_path / "new").exists()
