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


def _channel_name(calibrator, channel: int) -> str:
    """A probability channel named as dataset.json names it (softmax channel 0 is the background)."""
    if calibrator.region_based:
        return calibrator.names[channel]
    return "background" if channel == 0 else calibrator.names[channel - 1]


def _bound_warning(calibrator, method: str) -> str | None:
    """What a temperature at its limit (1 / SCALE_MIN) means, naming the channels, or None."""
    from nnunet_surgery.recalibration.objective import SCALE_MIN

    limit = 1.0 / SCALE_MIN
    at_limit = [k for k, t in enumerate(calibrator.temperatures) if t >= limit * (1 - 1e-9)]
    if not at_limit:
        return None
    if method == "temperature" or len(at_limit) == len(calibrator.temperatures):
        return (
            f"warning: the temperature stopped at its limit of {limit:g}: the validation probabilities carry "
            "(almost) no information on the labels, or rank voxels against them (an undertrained model?)"
        )
    names = ", ".join(f"{k} ({_channel_name(calibrator, k)!r})" for k in at_limit)
    reason = (
        "its logits add nothing the other channels' logits do not already carry (softmax channels are "
        "redundant: here the fit works through the others)"
        if not calibrator.region_based
        else "its probabilities carry (almost) no information on its region's labels"
    )
    return (
        f"warning: the temperature of channel {names} stopped at its limit of {limit:g} (its logits scaled to ~0): "
        f"{reason}; compare with --method temperature"
    )


def _fit(args: argparse.Namespace, num_processes: int) -> str:
    from nnunet_surgery.cases import printable
    from nnunet_surgery.cases.staging import made_parents
    from nnunet_surgery.recalibration.fit import fit_calibrator

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
    with made_parents(output):
        calibrator.write(output)
    fit = calibrator.fit
    shown = ", ".join(
        f"{t:.4g}" for t in calibrator.temperatures[: 1 if args.method == "temperature" else None]
    )
    warning = _bound_warning(calibrator, args.method)
    if warning:
        print(warning, file=sys.stderr)
    # an NLL is >= 0; rounding can leave -1e-16 on separable data
    return (
        f"wrote {printable(output)}: {args.method} T = {shown}; NLL {max(fit.nll_before, 0.0):.5g} -> "
        f"{max(fit.nll_after, 0.0):.5g} nats/voxel on {fit.voxels} voxels of {fit.cases} case(s), {fit.passes} passes"
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
    from nnunet_surgery.cases import printable

    return f"wrote {printable(args.output)} ({written} case(s))"


def run(args: argparse.Namespace) -> int:
    print((_fit if args.action == "fit" else _apply)(args, processes(args)))
    return 0
