"""Benchmark: `SurgeryTrainer` against nnU-Net's `nnUNetTrainer`, one whole `train_step` on the same batch.

Generates the synthetic lesion dataset (`nnunet_surgery.synthetic.generate_dataset`) in a temporary
folder, runs nnU-Net's planning and preprocessing for one configuration (`nnUNetv2_plan_and_preprocess
-d ID -c 2d -np 2`), builds both trainers in this process on the chosen device, `initialize()`s them,
gives the surgical network the stock network's weights, takes ONE batch from the training dataloader and
times `train_step(batch)` (forward, loss with deep supervision, backward, gradient clipping, SGD step)
interleaved, alternating which trainer goes first. Before every step both networks get the same initial
weights again (outside the timed region), so each step starts from the same state.

torch.compile follows nnU-Net's own decision (`_do_i_compile`): on CUDA the network and the Dice term are
compiled, as in every nnU-Net run there, unless `--no-compile` (which sets `nnUNet_compile=f`); on CPU
nnU-Net compiles nothing. The warm-up steps absorb the compilation. `--configuration 3d_fullres` with a 3D
`--shape` (say 64 64 64) measures the 3D network; `--regions` the region-based dataset (sigmoid, bool
targets: BCE + Dice).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import format_table, machine_info, median, verdict

TARGET = 1.02
DATASET_ID = 991


def prepare(root: Path, args) -> None:
    from nnunet_surgery.synthetic import generate_dataset

    start = time.perf_counter()
    generate_dataset(
        root / "raw",
        DATASET_ID,
        num_train=args.num_train,
        num_test=1,
        shape=tuple(args.shape),
        seed=0,
        num_classes=2 if args.regions else 1,
        regions=args.regions,
        overwrite=True,
    )
    cmd = ["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", args.configuration, "-np", "2"]
    bin_dir = Path(sys.executable).parent
    exe = bin_dir / cmd[0]
    cmd[0] = str(exe) if exe.exists() else cmd[0]
    env = {k: v for k, v in os.environ.items() if k != "nnUNet_n_proc_DA"}  # planning needs it >= 1
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    print(f"dataset generated and preprocessed in {time.perf_counter() - start:.0f} s")


def _compile_note(trainer, args) -> str:
    if trainer._do_i_compile():
        return "on (nnU-Net's default on CUDA: network and Dice term)"
    return "off (--no-compile)" if args.no_compile else "off (nnU-Net disables it on CPU)"


def build_trainer(cls, args, device):
    from batchgenerators.utilities.file_and_folder_operations import join, load_json
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    folder = join(nnUNet_preprocessed, maybe_convert_to_dataset_name(DATASET_ID))
    plans = load_json(join(folder, "nnUNetPlans.json"))
    plans["continue_training"] = False  # as run_training.get_trainer_from_args sets it
    dataset_json = load_json(join(folder, "dataset.json"))
    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net's banner and log lines
        trainer = cls(
            plans=plans, configuration=args.configuration, fold=0, dataset_json=dataset_json, device=device
        )
        trainer.initialize()
    return trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--configuration", default="2d", help="nnU-Net configuration (default 2d)")
    parser.add_argument(
        "--shape", type=int, nargs="+", default=[128, 128], help="case shape (default 128 128)"
    )
    parser.add_argument("--num-train", type=int, default=40, help="training cases (default 40)")
    parser.add_argument("--reps", type=int, default=20, help="timed steps per trainer (default 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per trainer (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--workdir", default=None, help="keep the dataset here (default: a temporary folder)")
    parser.add_argument(
        "--regions", action="store_true", help="the region-based dataset (two nested regions)"
    )
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="nnUNet_compile=f (default: nnU-Net's decision, on for CUDA)",
    )
    args = parser.parse_args(argv)
    if args.configuration.startswith("3d") and len(args.shape) != 3:
        parser.error(f"--configuration {args.configuration} needs a 3D --shape (D H W), but got {args.shape}")

    with tempfile.TemporaryDirectory(prefix="bench_train_step_") as tmp:
        root = Path(args.workdir or tmp).resolve()
        for var, sub in (
            ("nnUNet_raw", "raw"),
            ("nnUNet_preprocessed", "preprocessed"),
            ("nnUNet_results", "results"),
        ):
            os.environ[var] = str(root / sub)
        os.environ.setdefault("nnUNet_def_n_proc", "2")
        os.environ["nnUNet_n_proc_DA"] = "0"  # single-threaded augmentation: one batch is all we need
        if args.no_compile:
            os.environ["nnUNet_compile"] = "f"

        import torch  # after the environment: nnunetv2.paths reads it at import

        torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        print(machine_info(str(device)))
        folder = root / "preprocessed" / f"Dataset{DATASET_ID}_SyntheticLesions"
        reusable = (folder / "nnUNetPlans.json").exists() and (
            args.configuration in (folder / "nnUNetPlans.json").read_text()
            and args.regions == ("regions_class_order" in (folder / "dataset.json").read_text())
        )
        if not reusable:  # a --workdir prepared for another configuration or dataset is prepared again
            prepare(root, args)

        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        from nnunet_surgery.trainers import SurgeryTrainer

        trainers = {"nnUNetTrainer": build_trainer(nnUNetTrainer, args, device)}
        trainers["SurgeryTrainer"] = build_trainer(SurgeryTrainer, args, device)
        stock = trainers["nnUNetTrainer"]
        initial = {k: v.clone() for k, v in stock.network.state_dict().items()}

        with contextlib.redirect_stdout(io.StringIO()):
            dl_tr, _ = stock.get_dataloaders()
            batch = next(dl_tr)
        data = batch["data"]
        target = batch["target"]
        cm = stock.configuration_manager
        print(
            f"plans: {args.configuration}, patch {cm.patch_size}, batch {data.shape[0]}, "
            f"{len(target)} deep-supervision outputs, data {tuple(data.shape)}, target dtype {target[0].dtype}, "
            f"torch.compile {_compile_note(stock, args)}"
        )

        def timed(trainer) -> float:
            trainer.network.load_state_dict(initial)
            trainer.optimizer.state.clear()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            trainer.train_step(batch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            return time.perf_counter() - start

        for _ in range(args.warmup):
            for trainer in trainers.values():
                timed(trainer)
        times: dict[str, list[float]] = {name: [] for name in trainers}
        names = list(trainers)
        for rep in range(args.reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                times[name].append(timed(trainers[name]))

    t_stock, t_surgery = median(times["nnUNetTrainer"]), median(times["SurgeryTrainer"])
    ratio = t_surgery / t_stock
    # the ratio of per-rep pairs is less sensitive to a slow phase of the machine than the ratio of medians
    pair = median([b / a for a, b in zip(times["nnUNetTrainer"], times["SurgeryTrainer"])])
    rows = [
        [
            f"{args.configuration} {tuple(args.shape)} b{data.shape[0]}{' regions' if args.regions else ''}",
            f"{1e3 * t_stock:.0f}",
            f"{1e3 * t_surgery:.0f}",
            f"{1e3 * (t_surgery - t_stock):+.0f}",
            f"{ratio:.3f} {verdict(ratio, TARGET)}",
            f"{pair:.3f} {verdict(pair, TARGET)}",
        ]
    ]
    print()
    print(
        format_table(
            [
                "config",
                "nnUNetTrainer ms",
                "SurgeryTrainer ms",
                "diff ms",
                f"ratio of medians (<= {TARGET})",
                "median of paired ratios",
            ],
            rows,
        )
    )
    print(
        f"\nmedians over {args.reps} interleaved train_step calls per trainer, same batch, same initial weights"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
