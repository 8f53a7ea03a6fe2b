"""`nnunet-surgery report`: calibration report (NLL, ECE, MCE, ACE, Brier, Dice) of nnU-Net predictions."""

from __future__ import annotations

import argparse

from nnunet_surgery.commands._options import (
    add_common_arguments,
    add_djfile_argument,
    add_output_argument,
    processes,
    roi_argument,
)

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "calibration report (NLL, ECE, MCE, ACE, Brier, Dice, reliability diagrams) of nnU-Net probability maps"
)


def _ensemble(text: str):
    from nnunet_surgery.cases import parse_ensemble

    try:
        return parse_ensemble(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _shard(text: str) -> tuple[int, int]:
    from nnunet_surgery.report.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_surgery.calibration.bootstrap import DEFAULT_METHOD, DEFAULT_RESAMPLES, METHODS
    from nnunet_surgery.report.inputs.options import PRESETS

    parser.add_argument(
        "gt_folder", metavar="GT_FOLDER", help="folder with reference segmentations CASE{file_ending}"
    )
    parser.add_argument(
        "pred_folders",
        metavar="PRED_FOLDER",
        nargs="*",
        help="folder(s) with CASE.npz from nnUNetv2_predict --save_probabilities (one per model; .pkl files are never read)",
    )
    add_djfile_argument(parser)
    add_output_argument(parser, "OUT_DIR", "output folder for the report")
    parser.add_argument(
        "--bins", type=int, default=20, help="number of equal-width confidence bins. Default: 20"
    )
    parser.add_argument(
        "--names", nargs="+", default=None, metavar="NAME", help="model names. Default: each folder's name"
    )
    parser.add_argument(
        "--roi",
        type=roi_argument,
        default="all",
        metavar="{all,band:D,mask:FOLDER}",
        help="voxels scored by the calibration metrics: all (default), the reference foreground plus a band of D "
        "voxels around it, or voxels > 0 in FOLDER/CASE{file_ending}. Dice always uses all voxels",
    )
    parser.add_argument(
        "--truth",
        default=None,
        metavar="FOLDER",
        help="optional folder of true probability maps CASE.npz (key probabilities, laid out as the predictions)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_RESAMPLES,
        metavar="N",
        help="case-level bootstrap resamples for the 95%% intervals of every pooled metric and the paired "
        f"comparisons of each model with the first (0: none). Default: {DEFAULT_RESAMPLES}",
    )
    parser.add_argument(
        "--bootstrap-seed", type=int, default=0, metavar="SEED", help="seed of the bootstrap. Default: 0"
    )
    parser.add_argument(
        "--interval",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="how the 95%% intervals are read from the bootstrap resamples: bca (bias-corrected and "
        "accelerated, with the jackknife over cases; every estimate inside its interval) or percentile "
        f"(the central percentiles, the report's interval before BCa). Default: {DEFAULT_METHOD}",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default=None,
        help="also compute another tool's conventions: monai adds MONAI's per-image CalibrationErrorMetric ECE "
        "(20 bins, its edges, background excluded, mean over cases)",
    )
    parser.add_argument(
        "--ensemble",
        dest="ensembles",
        type=_ensemble,
        action="append",
        default=[],
        metavar="NAME=DIR1,DIR2,...",
        help="also score an ensemble: the folders' probabilities averaged case by case (as nnUNetv2_ensemble "
        "does), e.g. the 5 folds' predictions of the test set; repeatable, scored after the PRED_FOLDERs",
    )
    parser.add_argument(
        "--images",
        default=None,
        metavar="IMAGES_FOLDER",
        help="images CASE_0000{file_ending} (e.g. imagesTs) for --gallery",
    )
    parser.add_argument(
        "--gallery",
        type=int,
        default=0,
        metavar="K",
        help="gallery/CASE.png for the K cases where the models' case ECE differs most and each model's worst "
        "case (image slice, reference contour, each model's probability), and case_ece_<label>.png. Default: 0",
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="score only every N-th case (cases I, I+N, ...; 0 <= I < N, e.g. $SLURM_ARRAY_TASK_ID/N) and write "
        "their statistics to the partial file -o PARTIAL.npz; `nnunet-surgery report merge PARTIAL... -o OUT_DIR` "
        "then writes the report of all cases",
    )
    parser.add_argument(
        "--conformal",
        nargs="+",
        default=None,
        metavar="CONFORMAL.json",
        help="also score each model's conformal masks (predictors of `conformal fit`: one for every model, or one "
        "per model in model order): achieved FNR with its case-bootstrap interval, and mask size relative to "
        "the segmentation and to the reference",
    )
    add_common_arguments(parser, overwrite="replace a report (or partial file) already in OUT_DIR")


def _options(args: argparse.Namespace) -> dict:
    """The scoring keywords of `generate_report` and `write_shard`."""
    return {
        "names": args.names,
        "n_bins": args.bins,
        "roi": args.roi,
        "truth_folder": args.truth,
        "num_processes": processes(args),
        "bootstrap": args.bootstrap,
        "seed": args.bootstrap_seed,
        "preset": args.preset,
        "interval": args.interval,
        "ensembles": args.ensembles,
    }


def run(args: argparse.Namespace) -> int:
    from nnunet_surgery.report import generate_report

    if args.shard is not None:
        from nnunet_surgery.cases import InputError
        from nnunet_surgery.report.shards import write_shard

        if args.gallery:
            raise InputError("--gallery: not with --shard (the gallery needs every case; run it without)")
        if args.conformal:
            raise InputError(
                "--conformal: not with --shard (report merge has no conformal masks; run it without)"
            )
        scored = write_shard(
            args.gt_folder,
            args.pred_folders,
            args.djfile,
            args.output,
            args.shard,
            overwrite=args.overwrite,
            progress=args.progress,
            **_options(args),
        )
        print(f"wrote {args.output} (shard {args.shard[0]}/{args.shard[1]}: {scored} case(s))")
        return 0

    summary = generate_report(
        args.gt_folder,
        args.pred_folders,
        args.djfile,
        args.output,
        images_folder=args.images,
        gallery=args.gallery,
        conformal=args.conformal,
        overwrite=args.overwrite,
        progress=args.progress,
        **_options(args),
    )
    print(f"wrote {args.output} ({len(summary['models'])} model(s), {len(summary['roi_voxels'])} case(s))")
    return 0
