"""Pairing the files of each case across the reference, prediction, truth and mask folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.report.errors import ReportError

__all__ = ["NPZ_ENDING", "CaseFiles", "collect_cases", "model_names"]

NPZ_ENDING = ".npz"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case.

    Attributes:
        case: case identifier (file name without ending).
        reference: reference segmentation `CASE{file_ending}`.
        predictions: `CASE.npz` of each model, in model order.
        truth: `CASE.npz` of true probabilities, or None.
        mask: ROI mask `CASE{file_ending}`, or None.
    """

    case: str
    reference: Path
    predictions: tuple[Path, ...]
    truth: Path | None = None
    mask: Path | None = None


def _list(folder: Path, ending: str, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ReportError(f"{folder}: {what} folder does not exist or is not a folder")
    files = {
        entry.name[: -len(ending)]: entry
        for entry in folder.iterdir()
        if entry.name.endswith(ending) and not entry.name.startswith(".") and entry.is_file()
    }
    files.pop("", None)
    if not files:
        hint = " (write them with nnUNetv2_predict --save_probabilities)" if ending == NPZ_ENDING else ""
        raise ReportError(f"{folder}: empty {what} folder, no *{ending} files{hint}")
    return files


def _few(names: set[str] | list[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def collect_cases(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    file_ending: str,
    *,
    truth_folder: str | Path | None = None,
    mask_folder: str | Path | None = None,
) -> list[CaseFiles]:
    """Pair every reference case with its prediction in each folder (and its truth map and mask).

    Every reference needs a prediction in every folder and vice versa. Truth and mask folders must cover
    every case and may hold more.

    Raises:
        ReportError: a missing or empty folder, or a case missing on either side.
    """
    gt_folder = Path(gt_folder)
    references = _list(gt_folder, file_ending, "reference")
    predictions = []
    for folder in map(Path, pred_folders):
        files = _list(folder, NPZ_ENDING, "prediction")
        missing = references.keys() - files.keys()
        if missing:
            raise ReportError(
                f"{folder}: no CASE.npz prediction for reference case(s) {_few(missing)} of {gt_folder}"
            )
        extra = files.keys() - references.keys()
        if extra:
            raise ReportError(
                f"{folder}: prediction(s) {_few(extra)} have no reference CASE{file_ending} in {gt_folder}"
            )
        predictions.append(files)
    extras = {}
    for folder, ending, what in ((truth_folder, NPZ_ENDING, "truth"), (mask_folder, file_ending, "mask")):
        if folder is None:
            continue
        files = _list(Path(folder), ending, what)
        missing = references.keys() - files.keys()
        if missing:
            raise ReportError(f"{folder}: no {what} file CASE{ending} for case(s) {_few(missing)}")
        extras[what] = files
    return [
        CaseFiles(
            case=case,
            reference=references[case],
            predictions=tuple(files[case] for files in predictions),
            truth=extras["truth"][case] if "truth" in extras else None,
            mask=extras["mask"][case] if "mask" in extras else None,
        )
        for case in sorted(references)
    ]


def model_names(pred_folders: list[str | Path], names: list[str] | None = None) -> list[str]:
    """Model names: `names` if given, else each folder's name, lengthened with its parents where two collide.

    Raises:
        ReportError: wrong number of names, empty or duplicate names.
    """
    folders = [Path(folder).resolve() for folder in pred_folders]
    if names is not None:
        if len(names) != len(folders):
            raise ReportError(f"--names: got {len(names)} name(s) for {len(folders)} prediction folder(s)")
        if any(not name.strip() for name in names) or len(set(names)) != len(names):
            raise ReportError(f"--names: names must be non-empty and unique, but got {names}")
        return list(names)
    if len(set(folders)) != len(folders):
        raise ReportError(
            f"PRED_FOLDER: a prediction folder is given twice ({_few([str(f) for f in folders])})"
        )
    depth = 1
    while True:
        candidates = ["/".join(folder.parts[-depth:]) for folder in folders]
        if len(set(candidates)) == len(candidates):
            return candidates
        depth += 1
