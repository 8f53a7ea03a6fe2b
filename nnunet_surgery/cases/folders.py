"""Pairing the files of each case across the reference, prediction, truth and mask folders."""

from __future__ import annotations

import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.cases.errors import InputError, printable

__all__ = [
    "IMAGE_SUFFIX",
    "NPZ_ENDING",
    "CaseFiles",
    "case_files",
    "collect_cases",
    "collect_pooled_cases",
    "model_names",
    "parse_ensemble",
]

NPZ_ENDING = ".npz"
#: A case's first image channel is `CASE_0000{file_ending}`, as nnU-Net names images.
IMAGE_SUFFIX = "_0000"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case.

    Attributes:
        case: case identifier (file name without ending).
        reference: reference segmentation `CASE{file_ending}`.
        predictions: per model, in model order, its `CASE.npz` files: one, or one per member of an ensemble
            (whose probabilities are averaged).
        truth: `CASE.npz` of true probabilities, or None.
        mask: ROI mask `CASE{file_ending}`, or None.
    """

    case: str
    reference: Path
    predictions: tuple[tuple[Path, ...], ...]
    truth: Path | None = None
    mask: Path | None = None


def _hidden(name: str, ending: str) -> bool:
    return name.startswith(".") or name == ending


def _unreadable(entry: Path) -> str | None:
    """Why `entry` (a name in a folder) cannot be read as a file, or None when it can."""
    try:
        mode = entry.stat().st_mode  # follows symbolic links
    except OSError as error:  # a dangling symlink, a symlink loop, no permission
        kind = "a symbolic link that cannot be followed" if entry.is_symlink() else "unreadable"
        return f"{kind} ({error.strerror or error})"
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def case_files(folder: str | Path, ending: str, what: str) -> dict[str, Path]:
    """`{case: path}` of the files `CASE{ending}` in `folder`.

    Every such name is a case the user gave: one that cannot be read as a file (a dangling symbolic link, a
    symlink loop, a folder named `CASE.npz`, a pipe) is an error, never a skip. Hidden names (`.CASE.npz`,
    e.g. macOS's `._CASE.npz`) are left out, and said: one line on stderr.

    Args:
        what: what the folder holds, for the error message ("reference", "prediction", ...).

    Raises:
        InputError: the folder is missing, not a folder, holds an unreadable `CASE{ending}`, or no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder does not exist or is not a folder")
    try:
        entries = sorted(entry for entry in folder.iterdir() if entry.name.endswith(ending))
    except OSError as error:
        raise InputError(f"{folder}: cannot list the {what} folder ({error.strerror or error})") from None
    hidden = [entry.name for entry in entries if _hidden(entry.name, ending)]
    if hidden:
        print(
            printable(f"note: {folder}: left out {len(hidden)} hidden {what} file(s) ({_few(hidden)})"),
            file=sys.stderr,
        )
    files = {}
    for entry in entries:
        if _hidden(entry.name, ending):
            continue
        problem = _unreadable(entry)
        if problem is not None:
            raise InputError(f"{entry}: {what} file of case {entry.name[: -len(ending)]} is {problem}")
        files[entry.name[: -len(ending)]] = entry
    if not files:
        hint = " (write them with nnUNetv2_predict --save_probabilities)" if ending == NPZ_ENDING else ""
        raise InputError(f"{folder}: empty {what} folder, no *{ending} files{hint}")
    return files


def _few(names: set[str] | list[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def collect_cases(
    gt_folder: str | Path,
    pred_folders: Sequence[str | Path | Sequence[str | Path]],
    file_ending: str,
    *,
    truth_folder: str | Path | None = None,
    mask_folder: str | Path | None = None,
) -> list[CaseFiles]:
    """Pair every reference case with its prediction in each folder (and its truth map and mask).

    `pred_folders` holds one entry per model: a folder, or the member folders of an ensemble. Every
    reference needs a prediction in every folder and vice versa. Truth and mask folders must cover
    every case and may hold more.

    Raises:
        InputError: a missing or empty folder, or a case missing on either side.
    """
    gt_folder = Path(gt_folder)
    references = case_files(gt_folder, file_ending, "reference")
    models = [(model,) if isinstance(model, (str, Path)) else tuple(model) for model in pred_folders]
    predictions: list[list[dict[str, Path]]] = []
    for folder in (Path(folder) for model in models for folder in model):
        files = case_files(folder, NPZ_ENDING, "prediction")
        missing = references.keys() - files.keys()
        if missing:
            raise InputError(
                f"{folder}: no CASE.npz prediction for reference case(s) {_few(missing)} of {gt_folder}"
            )
        extra = files.keys() - references.keys()
        if extra:
            raise InputError(
                f"{folder}: prediction(s) {_few(extra)} have no reference CASE{file_ending} in {gt_folder}"
            )
        predictions.append(files)
    members, start = [], 0
    for model in models:
        members.append(predictions[start : start + len(model)])
        start += len(model)
    extras = {}
    for folder, ending, what in ((truth_folder, NPZ_ENDING, "truth"), (mask_folder, file_ending, "mask")):
        if folder is None:
            continue
        files = case_files(Path(folder), ending, what)
        missing = references.keys() - files.keys()
        if missing:
            raise InputError(f"{folder}: no {what} file CASE{ending} for case(s) {_few(missing)}")
        extras[what] = files
    return [
        CaseFiles(
            case=case,
            reference=references[case],
            predictions=tuple(tuple(files[case] for files in model) for model in members),
            truth=extras["truth"][case] if "truth" in extras else None,
            mask=extras["mask"][case] if "mask" in extras else None,
        )
        for case in sorted(references)
    ]


def collect_pooled_cases(
    gt_folder: str | Path,
    pred_folders: list[str | Path],
    file_ending: str,
    *,
    mask_folder: str | Path | None = None,
) -> list[CaseFiles]:
    """Cases of one model spread over several folders (e.g. the 5 folds' `validation/`), each paired with
    its reference (and mask): one prediction per case.

    Every prediction needs a reference; the reference folder may hold more cases (those of other folds).
    A case may appear in one folder only.

    Raises:
        InputError: a missing or empty folder, a prediction without reference or mask, or a case in two
            folders.
    """
    gt_folder = Path(gt_folder)
    references = case_files(gt_folder, file_ending, "reference")
    found: dict[str, Path] = {}
    given: dict[Path, Path] = {}
    for folder in map(Path, pred_folders):
        same = given.setdefault(folder.resolve(), folder)
        if same is not folder:
            raise InputError(
                f"{folder}: VAL_PRED_FOLDER is given twice (as {same} too); give each fold's validation folder once"
            )
        files = case_files(folder, NPZ_ENDING, "prediction")
        orphans = files.keys() - references.keys()
        if orphans:
            raise InputError(
                f"{folder}: prediction(s) {_few(orphans)} have no reference CASE{file_ending} in {gt_folder}"
            )
        twice = files.keys() & found.keys()
        if twice:
            case = sorted(twice)[0]
            raise InputError(
                f"{folder}: case {case} is also in {found[case].parent} (each case may be given once: "
                "give each fold's validation folder once)"
            )
        found.update(files)
    masks = None
    if mask_folder is not None:
        masks = case_files(Path(mask_folder), file_ending, "mask")
        missing = found.keys() - masks.keys()
        if missing:
            raise InputError(f"{mask_folder}: no mask file CASE{file_ending} for case(s) {_few(missing)}")
    return [
        CaseFiles(
            case=case,
            reference=references[case],
            predictions=((found[case],),),
            mask=None if masks is None else masks[case],
        )
        for case in sorted(found)
    ]


def parse_ensemble(text: str) -> tuple[str, tuple[Path, ...]]:
    """Parse `--ensemble NAME=DIR1,DIR2,...` into the name and its member folders.

    Raises:
        ValueError: no `=`, an empty name, or no folder.
    """
    name, sep, folders = text.partition("=")
    members = tuple(Path(folder) for folder in folders.split(",") if folder.strip())
    if not sep or not name.strip() or not members:
        raise ValueError(f"expected NAME=DIR1,DIR2,... (the folds' prediction folders), but got {text!r}")
    return name.strip(), members


def model_names(pred_folders: list[str | Path], names: list[str] | None = None) -> list[str]:
    """Model names: `names` if given, else each folder's name, lengthened with its parents where two collide.

    Raises:
        InputError: wrong number of names, empty or duplicate names.
    """
    folders = [Path(folder).resolve() for folder in pred_folders]
    if names is not None:
        if len(names) != len(folders):
            raise InputError(f"--names: got {len(names)} name(s) for {len(folders)} prediction folder(s)")
        if any(not name.strip() for name in names) or len(set(names)) != len(names):
            raise InputError(f"--names: names must be non-empty and unique, but got {names}")
        return list(names)
    if len(set(folders)) != len(folders):
        raise InputError(
            f"PRED_FOLDER: a prediction folder is given twice ({_few([str(f) for f in folders])})"
        )
    depth = 1
    while True:
        candidates = ["/".join(folder.parts[-depth:]) for folder in folders]
        if len(set(candidates)) == len(candidates):
            return candidates
        depth += 1
