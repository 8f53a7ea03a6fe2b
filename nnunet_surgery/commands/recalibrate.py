"""`nnunet-surgery recalibrate fit|apply`: post-hoc temperature / vector scaling fitted on cross-validation."""

from __future__ import annotations

import argparse
import sys

from nnunet_surgery.commands._options import (
    add_action,
    add_calibration_folders,
    add_common_arguments,
    add_output_argument,
    check_output_file,
    processes,
    roi_argument,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "post-hoc recalibration: fit temperature or vector scaling on nnU-Net's validation probabilities "
    "(fit), apply it to a folder of predictions (apply)"
)

_FIT_HELP = (
    "fit a calibrator on out-of-fold validation probabilities (e.g. fold_0..4/validation of "
    "nnUNetv2_train --npz), minimising the NLL over the ROI voxels"
)
_APPLY_HELP = "write recalibrated CASE.npz for every case of PRED_FOLDER (segmentations copied unchanged)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_surgery.recalibration.objective import METHODS

    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fit = add_action(actions, "fit", _FIT_HELP)
    add_calibration_folders(
        fit,
        "folder(s) of CASE.npz validation probabilities, each case in one folder (.pkl files are never read)",
    )
    add_output_argument(fit, "CALIBRATOR.json", "calibrator file to write")
    fit.add_argument(
        "--method",
        choices=METHODS,
        default="temperature",
        help="temperature: one T for all channels (keeps argmax and the 0.5 threshold); vector: a temperature "
        "and a bias per channel or region. Default: temperature",
    )
    fit.add_argument(
        "--roi",
        type=roi_argument,
        default="all",
        metavar="{all,band:D,mask:FOLDER}",
        help="voxels fitted on, as the report's --roi. Default: all",
    )
    add_common_arguments(fit, overwrite="replace an existing CALIBRATOR.json", progress="no progress output")

    apply = add_action(actions, "apply", _APPLY_HELP)
    apply.add_argument("calibrator", metavar="CALIBRATOR.json", help="a calibrator of `recalibrate fit`")
    apply.add_argument(
        "pred_folder", metavar="PRED_FOLDER", help="CASE.npz of nnUNetv2_predict --save_probabilities"
    )
    add_output_argument(apply, "OUT_FOLDER", "new folder to write")
    add_common_arguments(apply, overwrite="replace an existing OUT_FOLDER")


def _fit(args: argparse.Namespace, num_processes: int) -> str:
    from nnunet_surgery.recalibration.fit import fit_calibrator
    from nnunet_surgery.recalibration.objective import SCALE_MIN

    output = check_output_file(args, "CALIBRATOR.json", "the calibrator")
    calibrator = fit_calibrator(
        args.gt_folder,
        args.pred_folders,
        args.djfile,
        method=args.method,
        roi=args.roi,
        num_processes=num_processes,
        progress=args.progress,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    calibrator.write(output)
    fit = calibrator.fit
    shown = ", ".join(
        f"{t:.4g}" for t in calibrator.temperatures[: 1 if args.method == "temperature" else None]
    )
    if fit.at_bound:
        print(
            f"warning: a temperature reached its limit of {1 / SCALE_MIN:g}: the validation probabilities carry "
            "(almost) no information on the labels (an undertrained model?)",
            file=sys.stderr,
        )
    return (
        f"wrote {output}: {args.method} T = {shown}; NLL {fit.nll_before:.5g} -> {fit.nll_after:.5g} nats/voxel "
        f"on {fit.voxels} voxels of {fit.cases} case(s), {fit.passes} passes"
    )


def _apply(args: argparse.Namespace, num_processes: int) -> str:
    from nnunet_surgery.recalibration.apply import apply_calibrator

    written = apply_calibrator(
        args.calibrator,
        args.pred_folder,
        args.output,
        overwrite=args.overwrite,
        num_processes=num_processes,
        progress=args.progress,
    )
    return f"wrote {args.output} ({written} case(s))"


def run(args: argparse.Namespace) -> int:
    print((_fit if args.action == "fit" else _apply)(args, processes(args)))
    return 0
