"""Analysis: the pull a Dice-only loss exerts on each group of voxels at a trained softmax model's prediction.

For runs of `bench/fidelity.py` or `nnunet-surgery demo` on a label (softmax) dataset (folders holding
`demo.json`, the synthetic dataset with its test references in `labelsTs/`, and `predictions/MODEL/`),
this evaluates the soft Dice loss that `SurgeryTrainerDice` and `BaselineTrainerDice` train with (nnU-Net's
`MemoryEfficientSoftDiceLoss`: background excluded, smooth 1e-5), pooled over the test cases as batch Dice,
at the model's saved probabilities (logits z = log p, which softmax maps back to p). Per voxel it takes the
logit gradient g = dL/dz twice, through the plain softmax and through the surgical one (Eq. 9-10 with the
multi-class rescale, docs/surgery.md), and reports per group of voxels (true label t x predicted label k):

    pull = mean over the group of g_k' - g_t,     k' = k, or the runner-up class where k = t

how fast a gradient-descent step moves the voxel's logits from its competitor k' (the class it is
labelled, or its second most likely one where the label is right) towards its true class t: positive
pulls towards t. The loss's own dL/dp is the same for both; the surgery only rescales the softmax's part,
by s(p_t) per voxel.

What it is for (docs/fidelity.md, "In 3D"): a Dice-only model that labels the background as a small
class sits where dL/dp itself nearly vanishes (a false positive of class c gets dL/dp_c = DSC_c / S_c with
S_c = sum(p_c) + sum(y_c)); no rescale of the softmax's part lifts a pull that the loss does not exert.
With `--with-background` the same loss also scores the background channel (nnU-Net's `do_bg=True`, the
mean over all c channels): the pull that design change would add, measured at the same predictions.

    python bench/dice_pull.py RUN [RUN ...] [--models M ...] [--with-background]

RUN is a demo folder, e.g. `OUT/organs-3d/seed_1/SurgeryTrainerDice` of bench/fidelity.py. Exit status 0,
or 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _common import add_run_arguments, check_run_folders, demo_dataset_folder, overlap_share, run_models
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_surgery.cases import (
    InputError,
    case_files,
    load_dataset_json,
    load_probabilities,
    read_label_image,
    reader_for,
)
from nnunet_surgery.losses import SoftTverskyLoss

#: smallest probability whose log stands in for a logit (softmax(log p) = p up to this floor)
P_FLOOR = 1e-7


@dataclass(frozen=True)
class Group:
    """Voxels of one true label predicted as one label, and the mean pull from the competitor to the true label."""

    true: str
    predicted: str
    voxels: int
    mean_p_true: float
    pull_plain: float
    pull_surgical: float


@dataclass(frozen=True)
class RunPull:
    """One model's groups on one run, with the soft Dice of each foreground label on the test cases."""

    run: Path
    model: str
    background: bool
    soft_dice: dict[str, float]
    groups: list[Group]


def logit_gradient(
    probabilities: torch.Tensor, labels: torch.Tensor, surgery: bool, background: bool = False
) -> torch.Tensor:
    """dL/dz of the batch soft Dice loss at logits `log p`.

    Args:
        probabilities: `(b, c, *spatial)` softmax probabilities, float64.
        labels: `(b, 1, *spatial)` label map (values 0..c-1).
        surgery: through the surgical softmax (Eq. 9-10) instead of the plain one.
        background: the loss also scores channel 0 (`do_bg=True`); by default it is excluded, as the
            trainers have it.

    Returns:
        `(b, c, *spatial)` gradient of the loss with respect to the logits.
    """
    logits = probabilities.clamp_min(P_FLOOR).log().requires_grad_(True)
    loss = SoftTverskyLoss(
        apply_nonlin=softmax_helper_dim1,
        batch_dice=True,
        do_bg=background,
        smooth=1e-5,
        ddp=False,
        alpha=0.5,
        surgery=surgery,
    )
    loss(logits, labels).backward()
    return logits.grad


def group_pulls(
    probabilities: np.ndarray, labels: np.ndarray, names: Sequence[str], background: bool = False
) -> tuple[dict[str, float], list[Group]]:
    """Soft Dice per foreground label and the mean pull per (true, predicted) group.

    Args:
        probabilities: `(b, c, *spatial)` softmax probabilities.
        labels: `(b, *spatial)` integer label map.
        names: the `c` label names, background first.
        background: the pulls of the loss that also scores background (`logit_gradient`).

    Returns:
        soft Dice `2 sum(p y) / (sum(p) + sum(y))` (twice `overlap_share` at alpha 0.5) of channels
        1..c-1, and the non-empty groups in order (true, predicted), each with the mean of
        `dL/dz_k' - dL/dz_t` (module docstring).
    """
    p = torch.from_numpy(np.ascontiguousarray(probabilities, dtype=np.float64))
    y = torch.from_numpy(np.ascontiguousarray(labels, dtype=np.float64))[:, None]
    order = np.argsort(-probabilities, axis=1, kind="stable")
    predicted = order[:, 0]
    competitor = np.where(predicted == labels, order[:, 1], predicted)[:, None]
    true = labels[:, None].astype(np.int64)
    pull = {}
    for surgery in (False, True):
        g = logit_gradient(p, y, surgery, background).numpy()
        pull[surgery] = (np.take_along_axis(g, competitor, 1) - np.take_along_axis(g, true, 1))[:, 0]
    soft_dice = {
        name: 2 * overlap_share(probabilities[:, c], (labels == c).astype(np.float64), 0.5)
        for c, name in enumerate(names[1:], start=1)
    }
    groups = []
    for t, true_name in enumerate(names):
        for k, predicted_name in enumerate(names):
            where = (labels == t) & (predicted == k)
            if where.any():
                groups.append(
                    Group(
                        true=true_name,
                        predicted=predicted_name,
                        voxels=int(where.sum()),
                        mean_p_true=float(probabilities[:, t][where].mean()),
                        pull_plain=float(pull[False][where].mean()),
                        pull_surgical=float(pull[True][where].mean()),
                    )
                )
    return soft_dice, groups


def analyse_run(run: Path, model: str, background: bool = False) -> RunPull:
    """The groups of `model`'s test predictions in one run folder."""
    dataset_folder = demo_dataset_folder(run)
    dataset = load_dataset_json(dataset_folder / "dataset.json")
    layout = dataset.layout
    if layout.region_based:
        raise InputError(f"{run}: region-based dataset; this analysis is for softmax (label) datasets")
    predictions = case_files(run / "predictions" / model, ".npz", "prediction")
    references = case_files(dataset_folder / "labelsTs", dataset.file_ending, "reference")
    reader = reader_for(dataset, next(iter(references.values())))
    cases = sorted(predictions)
    probabilities = np.stack([load_probabilities(predictions[c]) for c in cases])
    labels = np.stack(
        [read_label_image(reader, references[c]).reshape(probabilities.shape[2:]) for c in cases]
    )
    names = ("background", *layout.names)
    soft_dice, groups = group_pulls(probabilities, labels, names, background)
    return RunPull(run, model, background, soft_dice, groups)


def print_run(result: RunPull) -> None:
    dice = ", ".join(f"{name} {value:.3f}" for name, value in result.soft_dice.items())
    loss = "Dice loss with background (do_bg=True)" if result.background else "Dice loss over the foreground"
    print(f"\n{result.run} {result.model}: soft Dice {dice}; {loss}")
    print("| true | predicted | voxels | mean p(true) | pull, plain softmax | pull, surgery |")
    print("|---|---|---:|---:|---:|---:|")
    for g in result.groups:
        print(
            f"| {g.true} | {g.predicted} | {g.voxels} | {g.mean_p_true:.3f} | {g.pull_plain:+.2e} | "
            f"{g.pull_surgical:+.2e} |"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument(
        "--with-background",
        action="store_true",
        help="the pulls of the Dice loss that also scores background (do_bg=True) instead of the trainers' one",
    )
    args = parser.parse_args(argv)
    check_run_folders(parser, args.runs)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        for run in args.runs:
            for model in run_models(run, args.models):
                print_run(analyse_run(run, model, args.with_background))
    except InputError as error:
        print(f"dice_pull.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
