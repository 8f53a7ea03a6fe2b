"""Options several commands share, declared once: `-djfile`, `-o/--output`, `-np`, `--roi`, `--overwrite`,
`--no-progress`."""

from __future__ import annotations

import argparse

__all__ = [
    "add_action",
    "add_calibration_folders",
    "add_common_arguments",
    "add_djfile_argument",
    "add_output_argument",
    "check_output_file",
    "processes",
    "roi_argument",
]


def roi_argument(text: str):
    """argparse type of `--roi`: `all`, `band:D` or `mask:FOLDER` (a RoiSpec)."""
    from nnunet_surgery.cases import parse_roi

    try:
        return parse_roi(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_djfile_argument(parser: argparse.ArgumentParser) -> None:
    """`-djfile DATASET_JSON`, the dataset's dataset.json."""
    parser.add_argument(
        "-djfile", required=True, metavar="DATASET_JSON", help="dataset.json (labels/regions, file_ending)"
    )


def add_action(actions, name: str, help: str) -> argparse.ArgumentParser:
    """An action of a command (`fit`, `apply`) whose errors name it: `nnunet-surgery recalibrate fit: error: ...`."""
    parser = actions.add_parser(name, help=help, description=help)
    parser.set_defaults(_prog=parser.prog, _parser=parser)
    return parser


def add_calibration_folders(parser: argparse.ArgumentParser, predictions: str) -> None:
    """`GT_FOLDER VAL_PRED_FOLDER... -djfile DATASET_JSON` of a fit on nnU-Net's validation folds.

    Args:
        predictions: the help of VAL_PRED_FOLDER.
    """
    parser.add_argument("gt_folder", metavar="GT_FOLDER", help="reference segmentations CASE{file_ending}")
    parser.add_argument("pred_folders", metavar="VAL_PRED_FOLDER", nargs="+", help=predictions)
    add_djfile_argument(parser)


def add_output_argument(parser: argparse.ArgumentParser, metavar: str, help: str) -> None:
    """`-o/--output PATH`, stored as `output` in every command."""
    parser.add_argument("-o", "--output", dest="output", required=True, metavar=metavar, help=help)


def add_common_arguments(
    parser: argparse.ArgumentParser, *, overwrite: str, progress: str = "no progress bar"
) -> None:
    """`-np`, `--overwrite` (with its help text) and `--no-progress`."""
    parser.add_argument(
        "-np",
        dest="num_processes",
        type=int,
        default=None,
        help="number of processes. Default: nnU-Net's default (nnUNet_def_n_proc, 8), at most the CPU count",
    )
    parser.add_argument("--overwrite", action="store_true", help=overwrite)
    parser.add_argument("--no-progress", dest="progress", action="store_false", help=progress)


def processes(args: argparse.Namespace) -> int:
    """`-np`, or nnU-Net's default number of processes (at most the CPU count)."""
    if args.num_processes is not None:
        return args.num_processes
    import os

    from nnunetv2.configuration import default_num_processes

    return max(1, min(default_num_processes, os.cpu_count() or 1))


def check_output_file(args: argparse.Namespace, name: str, what: str):
    """`-o FILE` (a Path), refused before any work where it is a folder, is, holds or lies inside one of the
    fit's inputs (GT_FOLDER, the VAL_PRED_FOLDERs, -djfile, an --roi mask folder; with or without
    --overwrite), exists without `--overwrite`, or cannot be written.

    Args:
        name: the file as the help names it ("CALIBRATOR.json"); what: what it holds ("the calibrator").

    Raises:
        InputError: naming the file and the problem.
    """
    from pathlib import Path

    from nnunet_surgery.cases import InputError
    from nnunet_surgery.cases.staging import check_output_apart, check_writable

    output = Path(args.output)
    if output.is_dir():
        raise InputError(f"{output}: -o must be a file ({name}), but is a folder")
    roi = getattr(args, "roi", None)
    mask = roi.folder if getattr(roi, "kind", None) == "mask" else None
    check_output_apart(output, (args.gt_folder, *args.pred_folders, args.djfile, mask), f"-o {name}")
    if output.exists() and not args.overwrite:
        raise InputError(f"{output}: {what} exists; pass --overwrite to replace it")
    check_writable(output, f"-o {name}")
    return output
