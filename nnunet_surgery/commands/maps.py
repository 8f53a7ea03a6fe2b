"""`nnunet-surgery maps`: probability and uncertainty maps (NIfTI) of nnU-Net predictions, for viewers."""

from __future__ import annotations

import argparse

from nnunet_surgery.commands._options import add_common_arguments, processes

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "write each case's probability maps and entropy as NIfTI in the reference's geometry (ITK-SNAP, 3D "
    "Slicer); with several folders (e.g. the 5 folds) their mean, std and mutual information"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "pred_folders",
        metavar="PRED_FOLDER",
        nargs="+",
        help="folder(s) of CASE.npz from nnUNetv2_predict --save_probabilities holding the same cases "
        "(several: an ensemble; .pkl files are never read)",
    )
    parser.add_argument(
        "-ref",
        dest="reference",
        required=True,
        metavar="GT_OR_IMAGE_FOLDER",
        help="reference segmentations CASE{file_ending} or images CASE_0000{file_ending}: the maps get their geometry",
    )
    parser.add_argument(
        "-djfile", required=True, metavar="DATASET_JSON", help="dataset.json (labels/regions, file_ending)"
    )
    parser.add_argument(
        "-o", dest="out_dir", required=True, metavar="OUT_DIR", help="output folder (OUT_DIR/CASE/*.nii.gz)"
    )
    add_common_arguments(parser, overwrite="replace maps of cases already in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from nnunet_surgery.maps.export import export_maps

    cases = export_maps(
        args.pred_folders,
        args.reference,
        args.djfile,
        args.out_dir,
        num_processes=processes(args),
        overwrite=args.overwrite,
        progress=args.progress,
    )
    print(f"wrote {args.out_dir} ({len(cases)} case(s), {len(args.pred_folders)} folder(s) each)")
    return 0
