"""`nnunet-surgery demo`: the whole product on the built-in synthetic dataset, in one command."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_surgery.commands._options import add_output_argument

__all__ = ["HELP", "add_arguments", "run"]

HELP = (
    "generate a synthetic dataset (binary lesions, an organ with lesions, or nested regions; 2D or 3D), train "
    "SurgeryTrainer and nnUNetTrainer on a short schedule, fit temperature "
    "scaling on their validation fold, predict the test set and write the calibration report, gallery and maps "
    "(about 15 minutes on 2 CPU cores)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nnunet_surgery.demo import (  # light: no torch, no nnU-Net
        DATASETS,
        SHAPE_2D,
        SHAPE_3D,
        SPACING_3D,
        STOCK_TRAINER,
        DemoSettings,
    )

    defaults = DemoSettings()
    add_output_argument(parser, "OUT_DIR", "output folder (new, or a previous demo run to resume)")
    parser.add_argument(
        "--trainers",
        nargs="+",
        default=list(defaults.trainers),
        # no `choices`: they come from the trainer registry, which imports torch and nnU-Net; the names
        # are checked (DemoSettings.validate) once the command runs, and an unknown one lists them all
        metavar="TRAINER",
        help=(
            f"trainers to compare (default: {' '.join(defaults.trainers)}): nnU-Net's {STOCK_TRAINER} and "
            f"any trainer of nnunet-surgery (a wrong name lists them all)"
        ),
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help=f"epochs per trainer (default {defaults.epochs})"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=defaults.iterations_per_epoch,
        help=f"training iterations per epoch (default {defaults.iterations_per_epoch}; nnU-Net's is 250)",
    )
    parser.add_argument(
        "--val-iterations",
        type=int,
        default=defaults.val_iterations_per_epoch,
        help=f"validation iterations per epoch (default {defaults.val_iterations_per_epoch})",
    )
    parser.add_argument(
        "--num-train",
        type=int,
        default=defaults.num_train,
        help=f"training cases (default {defaults.num_train})",
    )
    parser.add_argument(
        "--num-test", type=int, default=defaults.num_test, help=f"test cases (default {defaults.num_test})"
    )
    parser.add_argument(
        "--dataset",
        choices=tuple(DATASETS),
        default=defaults.dataset,
        help=(
            "built-in synthetic dataset: binary lesions (default); an organ with lesions inside it (3-class "
            "softmax: background, organ, lesion); or the same as two nested regions (organ, lesion), as BraTS"
        ),
    )
    parser.add_argument(
        "--3d",
        dest="three_d",
        action="store_true",
        help=(
            f"3D volumes of {' x '.join(map(str, SHAPE_3D))} voxels at spacing {' x '.join(map(str, SPACING_3D))}, "
            "trained as nnU-Net's 3d_fullres configuration (default: 2D images, the 2d configuration)"
        ),
    )
    parser.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help=(
            f"image size: H W (default {' '.join(map(str, SHAPE_2D))}), or D H W with --3d "
            f"(default {' '.join(map(str, SHAPE_3D))})"
        ),
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="dataset seed (default 0)")
    parser.add_argument(
        "-device",
        "--device",
        default=None,
        choices=("cpu", "cuda", "mps"),
        help="default: cuda if available, else cpu",
    )


def run(args: argparse.Namespace) -> int:
    from nnunet_surgery.cases import InputError
    from nnunet_surgery.demo import SHAPE_2D, SHAPE_3D, DemoSettings, run_demo

    shape = tuple(args.shape) if args.shape else (SHAPE_3D if args.three_d else SHAPE_2D)
    if len(shape) != (3 if args.three_d else 2):
        expected = "three sizes D H W with --3d" if args.three_d else "two sizes H W (three with --3d)"
        raise InputError(f"--shape takes {expected}, but got {list(shape)}")

    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = DemoSettings(
        trainers=tuple(args.trainers),
        epochs=args.epochs,
        iterations_per_epoch=args.iterations,
        val_iterations_per_epoch=args.val_iterations,
        num_train=args.num_train,
        num_test=args.num_test,
        shape=shape,
        seed=args.seed,
        device=device,
        dataset=args.dataset,
    )
    report = run_demo(Path(args.output), settings, log=lambda line: print(line, flush=True))
    table = report / "calibration.md"
    if table.is_file():
        print(f"\n{table.read_text()}")
    diagrams = sorted(report.glob("reliability_*.png")) + sorted(report.glob("case_ece_*.png"))
    print(f"Report: {report}")
    for diagram in diagrams:
        print(f"Diagram: {diagram}")
    for image in sorted((report / "gallery").glob("*.png")):
        print(f"Gallery: {image}")
    print(f"Probability and entropy maps (NIfTI, open in ITK-SNAP or 3D Slicer): {report.parent / 'maps'}")
    return 0
