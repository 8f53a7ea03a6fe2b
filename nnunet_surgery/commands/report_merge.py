"""`nnunet-surgery report merge PARTIAL... -o OUT_DIR` (also `report-merge`): the report of all cases from
the partial files of `report --shard I/N`, the same calibration.json as one run over all cases."""

from __future__ import annotations

import argparse

from nnunet_surgery.commands._options import add_output_argument

__all__ = ["HELP", "add_arguments", "run"]

HELP = "merge the partial files of `report --shard I/N` into the report of all cases (also: report merge)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "partials",
        metavar="PARTIAL",
        nargs="+",
        help="the N partial files of one run (report --shard I/N -o PARTIAL)",
    )
    add_output_argument(parser, "OUT_DIR", "output folder for the report")
    parser.add_argument("--overwrite", action="store_true", help="replace a report already in OUT_DIR")


def run(args: argparse.Namespace) -> int:
    from nnunet_surgery.report.shards import merge_partials

    summary = merge_partials(args.partials, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output} ({len(summary['models'])} model(s), {len(summary['roi_voxels'])} case(s))")
    return 0
