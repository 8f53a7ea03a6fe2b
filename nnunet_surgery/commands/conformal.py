"""`nnunet-surgery conformal fit|apply`: masks with a guaranteed mean false-negative rate (conformal risk
control, Angelopoulos et al., ICLR 2024) from nnU-Net's out-of-fold validation probabilities."""

from __future__ import annotations

import argparse

from nnunet_surgery.commands._options import (
    add_action,
    add_calibration_folders,
    add_common_arguments,
    add_output_argument,
    check_output_file,
    processes,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "conformal risk control: fit per-label thresholds whose masks {p >= t} miss at most a fraction alpha of "
    "the reference on average over patients (fit), write those masks for a folder of predictions (apply)"
)

_FIT_HELP = (
    "fit the conformal FNR threshold of every label or region on out-of-fold validation probabilities "
    "(e.g. fold_0..4/validation of nnUNetv2_train --npz): exact over all thresholds, two streamed passes"
)
_APPLY_HELP = "write OUT_FOLDER/CASE/<label>_mask.nii.gz ({p >= t}, uint8) in the geometry of nnU-Net's CASE segmentation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = add_action(actions, "fit", _FIT_HELP)
    add_calibration_folders(
        fit,
        "folder(s) of CASE.npz validation probabilities, each case in one folder: the calibration cases",
    )
    add_output_argument(fit, "CONFORMAL.json", "conformal predictor file to write")
    fit.add_argument(
        "--risk", choices=("fnr",), default="fnr", help="the controlled loss: per-case false-negative rate"
    )
    fit.add_argument("--alpha", type=float, required=True, help="target mean FNR over patients, in (0, 1)")
    fit.add_argument(
        "--labels",
        nargs="+",
        default=None,
        metavar="NAME",
        help="labels or regions to fit (dataset.json names). Default: all",
    )
    fit.add_argument(
        "--empty-references",
        dest="empty_references",
        choices=("count", "exclude"),
        default="count",
        help="cases without reference voxels of a label: count them in n with FNR 0 (the method as stated), or "
        "exclude them (the guarantee then averages over patients with the structure). Default: count",
    )
    add_common_arguments(fit, overwrite="replace an existing CONFORMAL.json")

    apply = add_action(actions, "apply", _APPLY_HELP)
    apply.add_argument("conformal", metavar="CONFORMAL.json", help="a predictor of `conformal fit`")
    apply.add_argument(
        "pred_folder",
        metavar="PRED_FOLDER",
        help="CASE.npz and CASE{file_ending} of nnUNetv2_predict --save_probabilities",
    )
    add_output_argument(apply, "OUT_FOLDER", "new folder to write")
    add_common_arguments(apply, overwrite="replace an existing OUT_FOLDER")


def _fit(args: argparse.Namespace, num_processes: int) -> str:
    from nnunet_surgery.cases import printable
    from nnunet_surgery.cases.staging import made_parents, write_text_atomic
    from nnunet_surgery.conformal.document import document_text
    from nnunet_surgery.risk_control import fit_conformal

    output = check_output_file(args, "CONFORMAL.json", "the conformal predictor")
    document = fit_conformal(
        args.gt_folder,
        args.pred_folders,
        args.djfile,
        alpha=args.alpha,
        labels=args.labels,
        empty_references=args.empty_references,
        num_processes=num_processes,
        progress=args.progress,
    )
    with made_parents(output):
        write_text_atomic(output, document_text(document), "the conformal predictor")
    shown = ", ".join(
        f"{label.name} t = {label.threshold:.6g}" + ("" if label.feasible else " (infeasible: too few cases)")
        for label in document.labels
    )
    return f"wrote {printable(output)}: alpha {document.alpha:g}, {shown}; {document.calibration['n_cases']} calibration case(s)"


def _apply(args: argparse.Namespace, num_processes: int) -> str:
    from nnunet_surgery.risk_control import apply_conformal

    options = {"overwrite": args.overwrite, "num_processes": num_processes, "progress": args.progress}
    written = apply_conformal(args.conformal, args.pred_folder, args.output, **options)
    return f"wrote {args.output} ({written} case(s))"


def run(args: argparse.Namespace) -> int:
    print((_fit if args.action == "fit" else _apply)(args, processes(args)))
    return 0
