"""`nnunet-surgery maps`: probability and uncertainty maps (NIfTI) of nnU-Net predictions, for viewers."""

from __future__ import annotations

import argparse

from nnunet_surgery.commands._options import (
    add_common_arguments,
    add_djfile_argument,
    add_output_argument,
    processes,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "write each case's probability maps and entropy as NIfTI in the reference's geometry (ITK-SNAP, 3D "
    "Slicer); with several folders (e.g. the 5 folds) their mean, std and mutual information"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "gt_folder",
        metavar="GT_FOLDER",
        help="reference segmentations CASE{file_ending} or images CASE_0000{file_ending}: the maps get their "
        "geometry (as report and recalibrate fit take it)",
    )
    parser.add_argument(
        "pred_folders",
        metavar="PRED_FOLDER",
        nargs="*",
        help="folder(s) of CASE.npz from nnUNetv2_predict --save_probabilities holding the same cases "
        "(several: an ensemble; .pkl files are never read)",
    )
    parser.add_argument(
        "-ref",
        dest="reference",
        default=None,
        metavar="GT_FOLDER",
        help="the reference folder given as an option (the earlier form: every positional folder is then a "
        "PRED_FOLDER)",
    )
    add_djfile_argument(parser)
    add_output_argument(parser, "OUT_DIR", "output folder (OUT_DIR/CASE/*.nii.gz)")
    add_common_arguments(parser, overwrite="replace maps of cases already in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from nnunet_surgery.cases import printable
    from nnunet_surgery.maps.export import export_maps

    if args.reference is None:
        reference, pred_folders = args.gt_folder, args.pred_folders
    else:  # `maps PRED_FOLDER... -ref GT_FOLDER`: the first positional is a prediction folder too
        reference, pred_folders = args.reference, [args.gt_folder, *args.pred_folders]
    cases = export_maps(
        pred_folders,
        reference,
        args.djfile,
        args.output,
        num_processes=processes(args),
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {printable(args.output)} ({len(cases)} case(s), {len(pred_folders)} folder(s) each)")
    return 0
