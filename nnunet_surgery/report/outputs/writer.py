"""Writing the report atomically: everything goes to a staging folder beside OUT_DIR, then is moved in;
and reading back the calibration.json it wrote (`read_report_json`), for whoever uses a finished report.

A failure before the move leaves no trace; an OUT_DIR holding an older report is refused unless
`overwrite` is given, in which case the old report's files (stale diagrams included) are replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nnunet_surgery.cases import InputError, read_json
from nnunet_surgery.cases.staging import check_writable, move_folder_into_place, staging_folder
from nnunet_surgery.report.outputs.calibration_json import report_json
from nnunet_surgery.report.outputs.conformal_tables import conformal_json, conformal_markdown
from nnunet_surgery.report.outputs.gallery_plots import GALLERY_FOLDER, write_case_ece_plots, write_gallery
from nnunet_surgery.report.outputs.plots import write_reliability_diagrams
from nnunet_surgery.report.outputs.tables import comparison_report, write_csv, write_markdown
from nnunet_surgery.report.scoring import CalibrationReport
from nnunet_surgery.report.scoring.conformal_masks import ConformalScores
from nnunet_surgery.report.scoring.gallery_choice import GalleryCase

__all__ = [
    "JSON_NAME",
    "check_out_dir",
    "is_report_file",
    "read_report_json",
    "report_content",
    "write_report",
    "write_report_files",
]

JSON_NAME = "calibration.json"
_TABLE_NAMES = ("calibration.csv", "calibration.md", "comparison.md")


def is_report_file(name: str) -> bool:
    """Whether a name in OUT_DIR belongs to a report (calibration.json/csv/md, comparison.md,
    reliability_*.png, case_ece_*.png, the gallery folder)."""
    return (
        name in (JSON_NAME, *_TABLE_NAMES, GALLERY_FOLDER)
        or (name.startswith("reliability_") and name.endswith(".png"))
        or (name.startswith("case_ece_") and name.endswith(".png"))
    )


def check_out_dir(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse an OUT_DIR that is a file, that cannot be created or written, or that holds a report when
    `overwrite` is False.

    Raises:
        InputError: naming OUT_DIR and the problem.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: OUT_DIR exists and is not a folder")
    check_writable(out_dir)
    if out_dir.is_dir() and not overwrite:
        old = sorted(entry.name for entry in out_dir.iterdir() if is_report_file(entry.name))
        if old:
            raise InputError(
                f"{out_dir}: OUT_DIR holds an older report ({old[0]}); pass --overwrite to replace it"
            )


def report_content(report: CalibrationReport, conformal: ConformalScores | None = None) -> dict:
    """calibration.json's content: `report_json`, with the "conformal" section when masks were scored."""
    content = report_json(report)
    if conformal is not None:
        content["conformal"] = conformal_json(conformal)
    return content


def write_report_files(
    folder: str | Path,
    report: CalibrationReport,
    gallery: tuple[GalleryCase, ...] = (),
    conformal: ConformalScores | None = None,
) -> None:
    """calibration.json (sort_keys, NaN where undefined), calibration.csv, calibration.md, comparison.md
    (several models, with bootstrap) and the diagrams; with a gallery, gallery/CASE.png and the per-case
    ECE plots; with `conformal`, its section in calibration.json and calibration.md."""
    folder = Path(folder)
    with (folder / JSON_NAME).open("w") as handle:
        json.dump(report_content(report, conformal), handle, indent=2, sort_keys=True)
        handle.write("\n")
    write_csv(folder / _TABLE_NAMES[0], report)
    write_markdown(folder / _TABLE_NAMES[1], report)
    if conformal is not None:
        with (folder / _TABLE_NAMES[1]).open("a") as handle:
            handle.write(conformal_markdown(conformal))
    if report.bootstrap is not None and len(report.models) > 1:
        (folder / _TABLE_NAMES[2]).write_text(comparison_report(report))
    write_reliability_diagrams(folder, report)
    if gallery:
        write_gallery(folder, gallery)
        write_case_ece_plots(folder, report)


def write_report(
    out_dir: str | Path,
    report: CalibrationReport,
    *,
    overwrite: bool = False,
    gallery: tuple[GalleryCase, ...] = (),
    conformal: ConformalScores | None = None,
) -> Path:
    """Write all report files into OUT_DIR atomically (`staging_folder`, placed by `_place`).

    Returns:
        OUT_DIR.

    Raises:
        InputError: OUT_DIR is refused (`check_out_dir`) or cannot be written.
    """
    out_dir = Path(out_dir).absolute()
    check_out_dir(out_dir, overwrite)

    def place(staging: Path, target: Path) -> None:
        _place(staging, target, overwrite)

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with staging_folder(out_dir, place) as staging:
            extra = {} if conformal is None else {"conformal": conformal}  # the call without it unchanged
            write_report_files(staging, report, gallery, **extra)
    except OSError as error:  # a full disk, a folder made read-only meanwhile
        raise InputError(f"{out_dir}: cannot write the report ({error.strerror or error})") from None
    return out_dir


def _place(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Put the finished report in place: the whole folder where OUT_DIR does not exist yet; else its files
    into OUT_DIR (calibration.json last), the older report's files that it does not replace removed and
    every other file of OUT_DIR kept."""
    if not out_dir.exists():
        move_folder_into_place(staging, out_dir)
        return
    check_out_dir(out_dir, overwrite)
    new = sorted(staging.iterdir(), key=lambda entry: entry.name == JSON_NAME)  # calibration.json last
    for old in out_dir.iterdir():
        if is_report_file(old.name) and (old.is_dir() or not (staging / old.name).exists()):
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    for entry in new:
        os.replace(entry, out_dir / entry.name)


def read_report_json(path: str | Path) -> dict:
    """The calibration.json a report wrote, as `write_report_files` wrote it.

    Args:
        path: the calibration.json file, or the report folder holding it.

    Raises:
        InputError: the file cannot be read, is not JSON, or is not a report's (a JSON object with
            `model_order`, `label_names` and `models`), naming it.
    """
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME
    content = read_json(path, "the report", allow_nan=True)
    if not isinstance(content, dict) or not {"model_order", "label_names", "models"} <= content.keys():
        raise InputError(
            f"{path}: not a calibration.json of nnunet-surgery report (expected model_order, label_names, models)"
        )
    return content
