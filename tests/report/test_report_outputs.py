"""The files of a report: calibration.json structure, csv rows, md table with the best in bold, PNGs; CLI."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys

import pytest
from report_cli import run_report_command

from nnunet_surgery.cases import model_names
from nnunet_surgery.commands import report as command
from nnunet_surgery.report import build_report, generate_report
from nnunet_surgery.report.outputs import markdown_report


def test_command_writes_json_csv_markdown_and_diagrams(build, tmp_path):
    folders = build("multiclass", ((3, 10, 12), (2, 8, 8)), truth=True)
    out = tmp_path / "out"
    options = [
        "--names",
        "CE",
        "surgery",
        "--bins",
        "10",
        "-np",
        "1",
        "--truth",
        str(folders.truth),
        "--roi",
        "band:1",
    ]
    assert run_report_command(folders, out, *options) == 0
    names = sorted(p.name for p in out.iterdir())
    tables = ["calibration.json", "calibration.csv", "calibration.md", "comparison.md"]
    assert names == sorted(
        [*tables, "reliability_liver.png", "reliability_lesion.png", "reliability_top-label.png"]
    )
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = json.loads((out / "calibration.json").read_text())
    assert report["bins"] == 10 and report["roi"] == "band:1" and list(report["models"]) == ["CE", "surgery"]
    for model in report["models"].values():
        for label in ("liver", "lesion"):
            entry = model["labels"][label]
            assert {"nll", "ece", "mce", "ace", "brier"} <= set(entry["pooled"])
            assert {"nll", "ece", "mce", "ace", "brier", "dice"} <= set(entry["case_mean"])
            assert set(entry["truth"]) == {"pooled", "case_mean"}
            assert len(entry["reliability"]["count"]) == 10
        assert set(model["cases"]) == {"case_000", "case_001"}
        assert {"nll", "ece", "dice", "truth"} <= set(model["cases"]["case_000"]["liver"])
        assert set(model["top_label"]["pooled"]) >= {"ece", "mce", "ace"}

    with (out / "calibration.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (2 * 2 + 2)  # models x (labels x scopes + top-label scopes)
    assert {row["scope"] for row in rows} == {"pooled", "case_mean"}
    assert float(rows[0]["truth_mae"]) >= 0

    markdown = (out / "calibration.md").read_text()
    assert "| Model | NLL | ECE | MCE | Brier | DSC | MAE to p* |" in markdown
    assert "## liver" in markdown and "## Top-label" in markdown and "**" in markdown


def test_markdown_bolds_the_best_value_of_each_column(build, tmp_path, no_plots):
    folders = build("binary", ((3, 10, 12),))
    report = build_report(folders.gt, folders.preds, folders.dataset_json)
    tumor_table = markdown_report(report).split("## Estimator variants")[0]
    lines = [line for line in tumor_table.splitlines() if line.startswith("| model_")]
    assert len(lines) == 2
    cells = [line.strip("|").split("|")[1:] for line in lines]
    for column in range(5):
        values = [float(row[column].split("[")[0].strip(" *")) for row in cells]  # "**value** [lo, hi]"
        bold = [row[column].strip().startswith("**") for row in cells]
        best = max(values) if column == 4 else min(values)
        assert bold == [v == best for v in values], (column, values, bold)


def test_default_model_names_are_folder_names_made_unique(tmp_path):
    a, b = tmp_path / "ce" / "fold_0" / "validation", tmp_path / "surgery" / "fold_0" / "validation"
    assert model_names([a, b]) == ["ce/fold_0/validation", "surgery/fold_0/validation"]
    assert model_names([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]


def test_help_lists_the_options():
    parser = argparse.ArgumentParser(prog="nnunet-surgery report")
    command.add_arguments(parser)
    text = parser.format_help()
    for option in (
        "GT_FOLDER",
        "PRED_FOLDER",
        "-djfile",
        "-o",
        "--bins",
        "--names",
        "-np",
        "--roi",
        "--truth",
    ):
        assert option in text


@pytest.mark.skipif(
    importlib.util.find_spec("nnunet_surgery.commands.demo") is None, reason="demo command not yet added"
)
def test_console_entry_point_help():
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_surgery.cli", "report", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "--roi" in result.stdout


class _Tripwire:
    """Unpickling this creates a folder: proof that a .pkl was loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.mkdir, (self.path,))


def test_pkl_files_beside_the_npz_are_never_unpickled(build, tmp_path, no_plots):
    import pickle

    folders = build("binary", ((3, 8, 8),), n_models=1)
    tripwire = tmp_path / "unpickled"
    (folders.preds[0] / "case_000.pkl").write_bytes(pickle.dumps(_Tripwire(str(tripwire))))
    generate_report(folders.gt, folders.preds, folders.dataset_json, tmp_path / "out")
    assert not tripwire.exists()
