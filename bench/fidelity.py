"""Benchmark: calibration fidelity of the paper's trainer grid, across datasets and seeds (resumable).

For every built-in synthetic dataset in `--datasets` (2D, or 3D with `--3d`), every seed S in `--seeds` and
every trainer in `--trainers` (default: the whole grid, nnU-Net's nnUNetTrainer and every registered trainer)
this runs the demo's steps (`nnunet_surgery.demo.demo_steps`, nnU-Net's own commands) in its own folder

    OUT/DATASET[-3d]/seed_S/TRAINER/     a demo folder: demo.json, nnUNet_raw/, ..., report/calibration.json

generate the dataset with seed S, plan and preprocess, train fold 0 (`--npz`), predict the test set with
`--save_probabilities`; for nnUNetTrainer also fit temperature scaling on its validation fold and apply it to
its test predictions (model nnUNetTrainer+temperature, exactly as the demo); then `nnunet-surgery report`
against labelsTs and the true probabilities truthTs (no gallery, no maps).

Seeds: S seeds the synthetic dataset only. nnU-Net's training is itself unseeded (initialisation,
augmentation, patch sampling), so each seed is a new draw of the data and of the training, and the spread
over seeds covers both.

One folder per (dataset, seed, trainer), sharing nothing: a demo folder stores its settings (demo.json, the
trainers included) and refuses other ones, so one folder per (dataset, seed) would be refused as soon as the
grid grew. With one folder per trainer, adding a trainer or a seed and rerunning trains only the new runs,
and one trainer's failure touches no other. The price: dataset generation and preprocessing are repeated
per trainer (20 s to a minute each on 2 CPU cores); the dataset is the same (deterministic in S) and so
is fold 0's split (nnU-Net's seeded k-fold). A changed schedule (`--epochs`, `--iterations`, `--device`, `--3d`)
changes every folder's settings: use a new `--out` (the bench never overwrites; it lists such folders as
"other settings").

Resume: the demo's one rule: every step is kept when its result exists (training continues from
checkpoint_latest.pth; the report is kept when report/calibration.json holds the run's models), so rerunning
the same command after an interruption picks up where it stopped. A failed run is logged and skipped; the
summary lists it, and every other missing run, under "missing". After running, the summary covers the whole
grid in OUT (every registered trainer, every seed folder there), so a run of a few `--trainers` or `--seeds`
rewrites the results without dropping the others. `--summarise-only` runs nothing and aggregates the runs
of `--trainers` and `--seeds` that exist with the grid's settings.

Metrics, from report/calibration.json (pooled over all test voxels, one-vs-rest per label): NLL, ECE, MCE,
Brier, DSC (`dice`), ECE against the true probabilities p* (`truth.pooled.ece`: per bin of p,
|mean p - mean p*|) and MAE to p* (`truth.pooled.mae`). Per dataset and label: every metric as mean ± std
over the seeds present (std with ddof=1; the mean alone from one seed; non-finite values left out); the
ratio surgical/base of NLL, ECE, ECE vs p* and MAE vs p* per seed, mean ± std over the seeds where both
models are present, and the DSC difference surgical - base in points (100 x). Ratios come for every pair of
PAIRS: the three below with targets, and without targets SurgeryTrainer vs nnUNetTrainer+temperature,
SurgeryTrainerDice vs Dice++ and vs Dice + mL1-ACE, and SurgeryTrainer vs CE (the paper's other baselines).

Targets, for every dataset and label, each surgical trainer against its base loss (SurgeryTrainer vs
nnUNetTrainer, SurgeryTrainerDice vs BaselineTrainerDice, SurgeryTrainerTversky vs BaselineTrainerTversky),
over the k seeds where both are present (paired):

    ECE vs p* lower by more than the spread:  mean(base) - mean(surgical) > std(base_s - surgical_s), the
                                              std (ddof=1) of the per-seed paired differences; k >= 3
    NLL lower by more than the spread:        the same rule on NLL
    DSC within 1.5 points:                    |mean(100 (DSC_surgical - DSC_base))| <= 1.5; k >= 1
    NLL ratio >= 3 (Dice pair only):          mean(NLL_base) / mean(NLL_surgical) >= 3; k >= 1

each "met", "MISSED", or "n/a (k seeds)" with too few seeds. Writes RESULTS/DATASET[-3d]/seed_S.json (the
metrics per model and label, the settings, the machine, each training's wall time) and RESULTS/DATASET[-3d].md
(the tables, also printed). Exit status: 0, or 1 when a run failed, 2 for bad arguments.

The code: `fidelity_analysis.py` (reports -> per-seed metrics, statistics, ratios, verdicts),
`fidelity_tables.py` (the markdown), `fidelity_grid.py` (the runs and the results written), this file (the
command line).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from _common import machine_info
from fidelity_analysis import PAIRS
from fidelity_grid import RunSpec, execute, grid_models, paper_order, plan, summarise, whole_grid

from nnunet_surgery.demo import DATASETS, DemoSettings


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = DemoSettings()
    parser = _Parser(
        prog="fidelity.py",
        description=__doc__.split("\n\n")[0],
        epilog="Method, folders, targets: see the module docstring of bench/fidelity.py.",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        metavar="DATASET",
        help=f"built-in synthetic datasets, of {', '.join(DATASETS)} (default: all)",
    )
    parser.add_argument(
        "--3d", dest="three_d", action="store_true", help="their 3D versions (3d_fullres; default 2D)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="dataset seeds (default 0 1 2)"
    )
    parser.add_argument(
        "--trainers",
        nargs="+",
        default=None,
        metavar="TRAINER",
        help="trainers (default: the whole grid, nnUNetTrainer and every registered trainer); nnUNetTrainer "
        "also yields nnUNetTrainer+temperature",
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help=f"epochs per training (default {defaults.epochs})"
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=defaults.iterations_per_epoch,
        help=f"training iterations per epoch (default {defaults.iterations_per_epoch})",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"), help="default cpu")
    parser.add_argument(
        "--out", type=Path, required=True, help="runs folder: new, or the one of an earlier run to resume"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "fidelity",
        help="where the per-seed JSON and the tables go (default bench/results/fidelity)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    mode.add_argument(
        "--summarise-only", action="store_true", help="run nothing; aggregate the runs that exist"
    )
    args = parser.parse_args(argv)

    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"--datasets must be of {', '.join(DATASETS)}, but got {' '.join(unknown)}")
    if len(set(args.datasets)) != len(args.datasets) or len(set(args.seeds)) != len(args.seeds):
        parser.error("--datasets and --seeds must be distinct")
    if min(args.seeds) < 0:
        parser.error(f"--seeds must be >= 0, but got {min(args.seeds)}")
    for name in ("epochs", "iterations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, but got {getattr(args, name)}")

    from nnunet_surgery.demo import demo_trainers  # imports torch and nnU-Net

    valid = demo_trainers()
    for pair in PAIRS:  # the pairs are written by name here: fail loudly if the registry renames one
        for model in (pair.surgical, pair.base):
            assert model.split("+")[0] in valid, f"PAIRS names {model}, not a registered trainer"
    args.registered = valid  # for `whole_grid` after running
    args.trainers = list(paper_order(valid) if args.trainers is None else args.trainers)
    unknown = [t for t in args.trainers if t not in valid]
    if unknown or len(set(args.trainers)) != len(args.trainers):
        parser.error(
            f"--trainers must be distinct names of {', '.join(valid)}, but got {' '.join(args.trainers)}"
        )
    args.out = args.out.resolve()
    args.results = args.results.resolve()
    return args


def print_plan(args: argparse.Namespace, runs: Sequence[RunSpec]) -> None:
    s = runs[0].settings
    statuses = {spec: spec.status() for spec in runs}
    todo = [spec for spec, status in statuses.items() if status in ("new", "partial")]
    blocked = [spec for spec, status in statuses.items() if status.startswith("other settings")]
    per_run = s.epochs * s.iterations_per_epoch
    print(
        f"Grid: {len(args.datasets)} dataset(s) {' '.join(args.datasets)} ({'3D' if args.three_d else '2D'}, "
        f"shape {'x'.join(map(str, s.shape))}) x {len(args.seeds)} seed(s) {' '.join(map(str, args.seeds))} x "
        f"{len(args.trainers)} trainer(s) = {len(runs)} runs in {args.out}"
    )
    print(f"Trainers: {' '.join(args.trainers)}")
    print(f"Models reported: {' '.join(grid_models(args.trainers))}")
    print(
        f"Schedule per run: {s.epochs} epochs x {s.iterations_per_epoch} iterations = {per_run} training "
        f"iterations (+ {s.epochs * s.val_iterations_per_epoch} validation), on {s.device}"
    )
    width, status_width = max(len(spec.label) for spec in runs), max(map(len, statuses.values()))
    for spec, status in statuses.items():
        print(f"  {spec.label:{width}s}  {status:{status_width}s}  {spec.folder}")
    print(
        f"To run: {len(todo)} of {len(runs)} runs (new or partial), at most {len(todo) * per_run} training "
        f"iterations (resumed runs need fewer)"
    )
    if blocked:
        print(f"Blocked: {len(blocked)} folder(s) hold other settings and would fail; use a new --out")
    print(f"Results: {args.results}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = plan(args)
    if args.dry_run:
        print_plan(args, runs)
        return 0
    failures: dict[RunSpec, str] = {}
    if not args.summarise_only:
        print(machine_info(args.device))
        for index, spec in enumerate(runs, start=1):
            status = spec.status()
            print(f"\n== run {index}/{len(runs)}: {spec.label} ({status}) in {spec.folder}", flush=True)
            if status == "done":
                print("   finished before, kept")
                continue
            try:
                execute(spec, log=lambda line: print(f"   {line}", flush=True))
            except Exception as error:  # a failed run must not stop the others
                message = " ".join(str(error).split()) or type(error).__name__
                failures[spec] = f"failed: {message}"
                print(f"   FAILED: {message}", flush=True)
        args = whole_grid(args, args.registered)  # the results cover the grid, not just this invocation
        runs = plan(args)
    summarise(args, runs, failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
