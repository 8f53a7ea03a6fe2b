"""`report --ensemble NAME=DIR1,DIR2,...`: scored exactly as a folder of the members' averaged maps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_cli import run_report_command


def _averaged_folder(folders, target):
    """The members' mean written as a plain prediction folder (float64 mean, stored as float32)."""
    target.mkdir()
    for case in folders.references:
        mean = np.mean([maps[case].astype(np.float64) for maps in folders.probabilities], axis=0)
        np.savez_compressed(target / f"{case}.npz", probabilities=mean.astype(np.float32))
    return target


@pytest.mark.parametrize("kind", ["multiclass", "regions"])
def test_ensemble_equals_its_averaged_folder(build, tmp_path, kind, no_plots):
    folders = build(kind, n_models=3)
    averaged = _averaged_folder(folders, tmp_path / "averaged")
    out = tmp_path / "report"
    members = ",".join(map(str, folders.preds))
    code = run_report_command(
        folders, out, "--ensemble", f"folds={members}", "--bootstrap", "0", preds=[folders.preds[0], averaged]
    )
    assert code == 0
    report = json.loads((out / "calibration.json").read_text())
    assert report["model_order"] == ["model_0", "averaged", "folds"]
    ensemble, reference = report["models"]["folds"], report["models"]["averaged"]
    assert ensemble["ensemble"] == [str(p) for p in folders.preds] and ensemble["folder"] is None
    assert ensemble["labels"] == reference["labels"]
    assert ensemble["cases"] == reference["cases"]


def test_bad_ensembles(build, tmp_path, capsys):
    folders = build("binary", n_models=2)
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        run_report_command(folders, out, "--ensemble", "no-equals-sign")
    assert exit_info.value.code == 2 and "NAME=DIR1,DIR2" in capsys.readouterr().err
    both = ",".join(map(str, folders.preds))
    assert run_report_command(folders, out, "--ensemble", f"model_0={both}") == 2
    assert "'model_0' is given to two models" in capsys.readouterr().err
    (folders.preds[1] / "case_001.npz").unlink()
    assert run_report_command(folders, out, "--ensemble", f"folds={both}", preds=[folders.preds[0]]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and str(folders.preds[1]) in error and "case_001" in error
    assert not out.exists()
