"""Analysis: do trained Dice- and Tversky-surgery models sit at the Section 3.1 fixed point? (docs/fidelity.md)

For runs of `bench/fidelity.py` or `nnunet-surgery demo` (folders holding `demo.json`, the synthetic
dataset with its true probabilities p* in `truthTs/`, and `predictions/MODEL/`), this compares, per
foreground label or region and per bin of p*, three numbers on the test voxels:

    mean p*        what a calibrated model predicts (the label frequency of voxels that look alike)
    mean p         what the model predicts
    mean p_fp      the fixed point of the surgical field for a pure Dice or Tversky loss, given the
                   model's own overlap

The fixed point treats voxels of equal p* as one set of indistinguishable voxels whose label mix r is p*
(docs/surgery.md, "Fixed points of indistinguishable voxels"). With the share q_c = G_bg,c / (G_fg,c +
G_bg,c) of channel c's global terms, which is alpha TI_c for the Tversky index TI_c (alpha the weight of
false positives; alpha = 0.5 is Dice, q_c = DSC_c / 2):

    regions (one sigmoid per region c):  odds(p_fp,c) = odds(p*_c) (1 / q_c - 1)
    softmax (K channels, the loss over channels 1..K-1, decline exponent n):
        p*_y s(p_fp,y) / q_y equal for all y,   q_0 = 1 - sum_c q_c
        s(p) = 0.25 (1 - (1 - p)^n)(1 - p^n) / p     (n = None: 0.25 / max(p, 0.01))

TI_c = sum(p_c y_c) / (sum(p_c y_c) + alpha sum(p_c (1 - y_c)) + (1 - alpha) sum((1 - p_c) y_c)) is the
model's soft index on the test set, standing in for the batch index of training; alpha is the trainer's
(`tversky_alpha` of the Tversky trainers, 0.5 for every other model). The formulas hold for a pure Dice
or Tversky loss with surgery (SurgeryTrainerDice, SurgeryTrainerTversky); for CE + Dice (SurgeryTrainer)
the fixed point lies between p* and p_fp, and a plain region loss has none inside (0, 1). The summary,
over the mixed voxels (0.02 < p* < 0.98), is the mean |p - p*| and the mean |p - p_fp|: a model nearer
its p_fp than p* is limited by the loss's fixed point, not by training.

    python bench/fixed_point.py RUN [RUN ...] [--models M ...] [--bins 10] [--plot FILE.png] [--fixed-point-for M ...]

RUN is a demo folder, e.g. `OUT/organs/seed_0/SurgeryTrainerDice` of bench/fidelity.py. Exit status 0, or 2
for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from _common import add_run_arguments, check_run_folders, demo_dataset_folder, overlap_share, run_models

from nnunet_surgery.cases import (
    InputError,
    LabelLayout,
    case_files,
    load_dataset_json,
    load_probabilities,
    read_label_image,
    reader_for,
)
from nnunet_surgery.surgery import softmax_rescale
from nnunet_surgery.trainers import BaselineTrainerTversky, SurgeryTrainerTversky

#: p* strictly between these is a mixed voxel (labels drawn with both outcomes likely enough to matter).
MIXED = (0.02, 0.98)

#: The Tversky alpha (weight of false positives) of each model's region loss; 0.5 (Dice) for the rest.
ALPHA = {cls.__name__: cls.tversky_alpha for cls in (SurgeryTrainerTversky, BaselineTrainerTversky)}


def _rescale(p: np.ndarray, exponent: float | None) -> np.ndarray:
    """s(p_y) of the multi-class rescale, the clamp for n = None included: the package's own
    `softmax_rescale` (docs/surgery.md, "Multi-class rescale"), on float64 arrays of any shape."""
    return softmax_rescale(torch.from_numpy(np.asarray(p, dtype=np.float64)), exponent).numpy()


def _inverse_rescale(target: np.ndarray, exponent: float | None, steps: int = 60) -> np.ndarray:
    """The p in [0, 1] with s(p) = target (s decreases on (0, 1]); 0 where target >= s(0+), by bisection."""
    low, high = np.zeros_like(target), np.ones_like(target)
    for _ in range(steps):
        mid = (low + high) / 2
        above = _rescale(mid, exponent) > target  # s(mid) too large: p must grow
        low = np.where(above, mid, low)
        high = np.where(above, high, mid)
    return (low + high) / 2


def softmax_fixed_point(truth: np.ndarray, share: np.ndarray, exponent: float | None) -> np.ndarray:
    """The surgical Dice (or Tversky) fixed point of sets with label mix `truth`.

    Args:
        truth: `(K, N)` label mixes r (columns sum to 1).
        share: `(K - 1,)` q_c = alpha TI_c of channels 1..K-1 (`overlap_share`; DSC_c / 2 for Dice).
        exponent: the decline exponent n, or None.

    Returns:
        `(K, N)` p on the simplex with r_y s(p_y) / q_y equal to one number lambda for every y with p_y > 0,
        and r_y s(0+) / q_y <= lambda where p_y = 0 (a class too rare in the set for s, which is bounded
        for finite n or with the clamp, to balance: a fixed point on the simplex's face);
        q = (1 - sum share, share). NaN where q_0 <= 0 (no interior fixed point). Two channels are
        Listing 1 (no rescale, no clamp): the odds formula of `region_fixed_point`, for any n.
    """
    if truth.shape[0] == 2:
        foreground = region_fixed_point(truth[1], float(share[0]))
        return np.stack([1 - foreground, foreground])
    q = np.concatenate([[1 - share.sum()], share])
    if q[0] <= 0:
        return np.full(truth.shape, np.nan)
    weight = truth / q[:, None]  # r_y / q_y; s(p_y) = lambda / weight_y
    log_low, log_high = np.full(truth.shape[1], -40.0), np.full(truth.shape[1], 40.0)
    for _ in range(60):  # bisection on log lambda: the sum of p_y(lambda) decreases in lambda
        lam = np.exp((log_low + log_high) / 2)
        with np.errstate(divide="ignore"):
            target = np.where(weight > 0, lam / weight, np.inf)
        total = _inverse_rescale(target, exponent).sum(axis=0)
        log_low = np.where(total > 1, (log_low + log_high) / 2, log_low)
        log_high = np.where(total > 1, log_high, (log_low + log_high) / 2)
    with np.errstate(divide="ignore"):
        target = np.where(weight > 0, np.exp((log_low + log_high) / 2) / weight, np.inf)
    p = _inverse_rescale(target, exponent)
    return p / p.sum(axis=0, keepdims=True)


def region_fixed_point(truth: np.ndarray, share: float) -> np.ndarray:
    """odds(p) = odds(p*) (1 / q - 1), the binary surgical fixed point of one region (any n), for the share
    q = alpha TI (`overlap_share`): odds(p*) (2 / DSC - 1) for Dice."""
    odds = truth / np.maximum(1 - truth, 1e-300) * (1 / share - 1)
    return np.where(truth >= 1, 1.0, odds / (1 + odds))


@dataclass
class LabelCurve:
    """One label's comparison, pooled over the runs given."""

    name: str
    dice: list[float] = field(default_factory=list)
    share: list[float] = field(default_factory=list)
    truth: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    fixed_point: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.concatenate(values) for values in (self.truth, self.predicted, self.fixed_point))


def _targets(layout: LabelLayout, labels: np.ndarray) -> np.ndarray:
    """`(len(names), N)` 0/1 targets of each foreground label or region."""
    return np.stack([layout.member_mask(i, labels).reshape(-1) for i in range(len(layout.names))]).astype(
        float
    )


def analyse_run(run: Path, model: str, exponent: float | None, curves: dict[str, LabelCurve]) -> None:
    """Add one run's mixed voxels of `model` to `curves` (one per label name)."""
    dataset_folder = demo_dataset_folder(run)
    dataset = load_dataset_json(dataset_folder / "dataset.json")
    layout = dataset.layout
    predictions = case_files(run / "predictions" / model, ".npz", "prediction")
    truths = case_files(dataset_folder / "truthTs", ".npz", "truth")
    labels = case_files(dataset_folder / "labelsTs", dataset.file_ending, "reference")
    reader = reader_for(dataset, next(iter(labels.values())))
    cases = sorted(predictions)
    p = np.concatenate([load_probabilities(predictions[c]).reshape(layout.n_channels, -1) for c in cases], 1)
    t = np.concatenate([load_probabilities(truths[c]).reshape(layout.n_channels, -1) for c in cases], 1)
    y = np.concatenate([_targets(layout, read_label_image(reader, labels[c])) for c in cases], 1)
    p, t = p.astype(np.float64), t.astype(np.float64)
    alpha = ALPHA.get(model, 0.5)
    share = np.array([overlap_share(p[ch], y[i], alpha) for i, ch in enumerate(layout.channels)])
    dice = np.array([overlap_share(p[ch], y[i], 0.5) * 2 for i, ch in enumerate(layout.channels)])
    if layout.region_based:
        fixed = np.stack([region_fixed_point(t[ch], q) for ch, q in zip(layout.channels, share, strict=True)])
    else:
        mixed_any = ((t > MIXED[0]) & (t < MIXED[1])).any(axis=0)
        fixed = np.full_like(t, np.nan)
        fixed[:, mixed_any] = softmax_fixed_point(t[:, mixed_any], share, exponent)
    for i, (name, ch) in enumerate(zip(layout.names, layout.channels, strict=True)):
        keep = (t[ch] > MIXED[0]) & (t[ch] < MIXED[1])
        curve = curves.setdefault(name, LabelCurve(name))
        curve.dice.append(float(dice[i]))
        curve.share.append(float(share[i]))
        curve.truth.append(t[ch, keep])
        curve.predicted.append(p[ch, keep])
        curve.fixed_point.append(fixed[ch, keep])


def print_curves(model: str, curves: dict[str, LabelCurve], n_bins: int) -> None:
    for curve in curves.values():
        truth, predicted, fixed = curve.arrays()
        dice = ", ".join(f"{d:.3f}" for d in curve.dice)
        share = ", ".join(f"{q:.3f}" for q in curve.share)
        print(
            f"\n{model}, {curve.name}: soft Dice {dice}; share q = alpha TI {share} (alpha "
            f"{ALPHA.get(model, 0.5)}); {truth.size} mixed voxels ({MIXED[0]} < p* < {MIXED[1]})"
        )
        print("| p* bin | voxels | mean p* | mean p | mean p_fp |\n|---|---:|---:|---:|---:|")
        edges = np.linspace(0, 1, n_bins + 1)
        which = np.clip(np.digitize(truth, edges) - 1, 0, n_bins - 1)
        for b in range(n_bins):
            sel = which == b
            if sel.any():
                print(
                    f"| {edges[b]:.1f}-{edges[b + 1]:.1f} | {sel.sum()} | {truth[sel].mean():.3f} | "
                    f"{predicted[sel].mean():.3f} | {np.nanmean(fixed[sel]):.3f} |"
                )
        print(
            f"mean |p - p*| = {np.abs(predicted - truth).mean():.4f}, mean |p - p_fp| = "
            f"{np.nanmean(np.abs(predicted - fixed)):.4f}, mean (p - p*) = {(predicted - truth).mean():+.4f}, "
            f"mean (p_fp - p*) = {np.nanmean(fixed - truth):+.4f}"
        )


def plot_curves(
    path: Path, results: dict[str, dict[str, LabelCurve]], n_bins: int, fixed_point_for: Sequence[str]
) -> None:
    """Mean p against mean p* per bin, one panel per label; the fixed point (dashed) for `fixed_point_for`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(results.values())))
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), squeeze=False)
    edges = np.linspace(0, 1, n_bins + 1)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="calibrated (p = p*)")
        for index, (model, curves) in enumerate(results.items()):
            truth, predicted, fixed = curves[name].arrays()
            which = np.clip(np.digitize(truth, edges) - 1, 0, n_bins - 1)
            bins = [b for b in range(n_bins) if (which == b).any()]
            x = [truth[which == b].mean() for b in bins]
            colour = f"C{index}"
            ax.plot(
                x, [predicted[which == b].mean() for b in bins], "o-", color=colour, label=f"{model}: mean p"
            )
            if model in fixed_point_for and not np.isnan(fixed).all():
                y = [np.nanmean(fixed[which == b]) for b in bins]
                ax.plot(x, y, "--", color=colour, label=f"{model}: fixed point")
        ax.set(title=name, xlabel="true probability p* (bin mean)", ylabel="predicted p (bin mean)")
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal")
        ax.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser)
    parser.add_argument(
        "--exponent", type=float, default=20.0, help="decline exponent n (default 20; 0: None)"
    )
    parser.add_argument("--bins", type=int, default=10, help="bins of p* (default 10)")
    parser.add_argument("--plot", type=Path, default=None, help="write the curves to this PNG")
    parser.add_argument(
        "--fixed-point-for",
        nargs="+",
        default=["SurgeryTrainerDice", "SurgeryTrainerTversky"],
        help="models whose fixed point the plot draws (default: SurgeryTrainerDice and SurgeryTrainerTversky, "
        "the pure region losses with surgery)",
    )
    args = parser.parse_args(argv)
    if args.bins < 1:
        parser.error(f"--bins must be >= 1, but got {args.bins}")
    check_run_folders(parser, args.runs)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exponent = None if args.exponent == 0 else args.exponent
    results: dict[str, dict[str, LabelCurve]] = {}
    try:
        for run in args.runs:
            for model in run_models(run, args.models):
                analyse_run(run, model, exponent, results.setdefault(model, {}))
    except InputError as error:
        print(f"fixed_point.py: error: {error}", file=sys.stderr)
        return 2
    for model, curves in results.items():
        print_curves(model, curves, args.bins)
    if args.plot is not None:
        plot_curves(args.plot, results, args.bins, args.fixed_point_for)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
