"""bench/fidelity.py's grid: one demo run per (dataset, seed, trainer) in its own folder, run by the demo's
own steps (`nnunet_surgery.demo.demo_steps`, the one resume rule), and the per-seed results and tables
written from the runs' reports."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from _common import machine_info
from fidelity_analysis import PAIRS, SeedResult, Verdict, labels_of, load_calibration, merge_seed, verdicts
from fidelity_tables import render_markdown

from nnunet_surgery.demo import (
    SHAPE_3D,
    STOCK_TRAINER,
    DemoRun,
    DemoSettings,
    Step,
    demo_steps,
    recalibrated_name,
    report_holds,
    run_steps,
)

#: The run's own record in its demo folder: training wall time and the machine it trained on.
RUN_RECORD = "bench_fidelity.json"
#: Prefix of a seed's folder OUT/DATASET[-3d]/seed_S/ and of its RESULTS/DATASET[-3d]/seed_S.json.
SEED_PREFIX = "seed_"


def paper_order(trainers: Sequence[str]) -> list[str]:
    """`trainers` in the paper's order: each target pair's base then its surgical trainer, then the rest."""
    first = [name for pair in PAIRS if pair.target for name in (pair.base, pair.surgical) if name in trainers]
    return list(dict.fromkeys([*first, *trainers]))


def models_of(trainer: str) -> tuple[str, ...]:
    """Models one trainer's run reports: the stock trainer also after temperature scaling."""
    return (trainer, recalibrated_name(trainer)) if trainer == STOCK_TRAINER else (trainer,)


def grid_models(trainers: Sequence[str]) -> list[str]:
    return [model for trainer in trainers for model in models_of(trainer)]


def variant_name(dataset: str, three_d: bool) -> str:
    return f"{dataset}-3d" if three_d else dataset


@dataclass(frozen=True)
class RunSpec:
    """One (dataset, seed, trainer) demo run."""

    variant: str
    seed: int
    trainer: str
    folder: Path
    settings: DemoSettings

    @property
    def label(self) -> str:
        return f"{self.variant} seed {self.seed} {self.trainer}"

    def status(self) -> str:
        """ "done", "new", "partial" (resumable) or "other settings (...)"."""
        state = self.folder / "demo.json"
        if not state.is_file():
            return "new"
        try:
            previous = json.loads(state.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return "other settings (unreadable demo.json)"
        if not isinstance(previous, dict):
            return "other settings (not a demo run's demo.json)"
        changed = self.settings.changed_from(previous)
        if changed:
            return f"other settings ({', '.join(changed)})"
        return "done" if self.report_complete() else "partial"

    def report_complete(self) -> bool:
        """Whether the run's report holds its models (the demo's own test of its report step)."""
        return report_holds(self.folder / "report", models_of(self.trainer))


def plan(args: argparse.Namespace) -> list[RunSpec]:
    """The grid's runs, seed outermost (every dataset's first seed comes first)."""
    defaults = DemoSettings()
    runs = []
    for seed in args.seeds:
        for dataset in args.datasets:
            variant = variant_name(dataset, args.three_d)
            for trainer in args.trainers:
                settings = DemoSettings(
                    trainers=(trainer,),
                    epochs=args.epochs,
                    iterations_per_epoch=args.iterations,
                    shape=SHAPE_3D if args.three_d else defaults.shape,
                    seed=seed,
                    device=args.device,
                    dataset=dataset,
                )
                folder = args.out / variant / f"{SEED_PREFIX}{seed}" / trainer
                runs.append(RunSpec(variant, seed, trainer, folder, settings))
    return runs


def whole_grid(args: argparse.Namespace, registered: Sequence[str]) -> argparse.Namespace:
    """`args` widened to every trainer of `registered` and every seed_S folder under OUT/DATASET[-3d]/, so
    that the results written after a run of a few `--trainers` or `--seeds` still hold every finished run
    of the grid (the per-seed JSON and DATASET.md are rewritten whole)."""
    seeds = set(args.seeds)
    for dataset in args.datasets:
        for folder in (args.out / variant_name(dataset, args.three_d)).glob(f"{SEED_PREFIX}*"):
            number = folder.name.removeprefix(SEED_PREFIX)
            if folder.is_dir() and number.isdigit():
                seeds.add(int(number))
    return argparse.Namespace(**{**vars(args), "trainers": paper_order(registered), "seeds": sorted(seeds)})


def execute(spec: RunSpec, log: Callable[[str], None]) -> None:
    """Run (or resume) one demo run with the demo's own steps: train, predict, for nnUNetTrainer also
    recalibrate, then the report (no maps, no gallery, no conformal masks). The training's wall time goes to RUN_RECORD when it
    trained (a resumed training adds the time of this session to the one before)."""
    run = DemoRun(spec.folder, spec.settings, log)
    run.claim_output_dir()
    recalibrate = (STOCK_TRAINER,) if spec.trainer == STOCK_TRAINER else ()
    steps = demo_steps(run, recalibrate=recalibrate, maps=False, gallery=False, conformal=False)
    train = next(step.name for step in steps if step.name.startswith("train "))
    record_path = run.out / RUN_RECORD

    def record(step: Step, seconds: float) -> None:
        # train_s: wall time of the nnUNetv2_train command (training, then validation with --npz)
        if step.name == train:
            previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
            previous["train_s"] = previous.get("train_s", 0.0) + seconds
            previous["machine"] = machine_info(spec.settings.device)
            record_path.write_text(json.dumps(previous, indent=2))

    run_steps(steps, log, on_finished=record)


def run_record(spec: RunSpec) -> dict:
    try:
        return json.loads((spec.folder / RUN_RECORD).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}


def summarise(args: argparse.Namespace, runs: Sequence[RunSpec], failures: Mapping[RunSpec, str]) -> int:
    """Read every run's calibration.json, write the per-seed JSON and the per-dataset markdown, print them;
    returns the number of missing runs."""
    machine = machine_info(args.device)
    models = grid_models(args.trainers)
    missing: list[str] = []
    all_verdicts: list[Verdict] = []
    written = 0
    for dataset in args.datasets:
        variant = variant_name(dataset, args.three_d)
        seeds: list[SeedResult] = []
        for seed in args.seeds:
            parts, statuses = [], {}
            for spec in (r for r in runs if r.variant == variant and r.seed == seed):
                record = run_record(spec)
                status = failures.get(spec) or spec.status()
                if status == "done":
                    try:
                        parts.append(load_calibration(spec.folder / "report" / "calibration.json"))
                    except ValueError as error:
                        status = f"unreadable report ({error})"
                if status != "done":
                    missing.append(f"{spec.label}: {status}")
                statuses[spec.trainer] = {
                    "folder": str(spec.folder),
                    "status": "ok" if status == "done" else status,
                    "train_s": record.get("train_s"),
                    "trained_on": record.get("machine"),
                }
            if not parts:
                continue
            result = merge_seed(variant, seed, parts)
            seeds.append(result)
            settings = {**spec.settings.as_json(), "trainers": list(args.trainers)}
            document = {
                "variant": variant,
                "seed": seed,
                "settings": settings,
                "machine": machine,
                "runs": statuses,
                "models": {
                    model: {label: asdict(metrics) for label, metrics in labels.items()}
                    for model, labels in result.models.items()
                },
            }
            target = args.results / variant / f"{SEED_PREFIX}{seed}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=2) + "\n")
            written += 1
        if not seeds:
            print(f"\n{variant}: no finished run")
            continue
        three_d = " (3D)" if args.three_d else " (2D)"
        notes = [
            f"Schedule: {args.epochs} epochs x {args.iterations} iterations per training, device {args.device}; "
            f"runs in {args.out / variant}; summarised on:"
        ]
        text = render_markdown(f"Fidelity: {variant}{three_d}", seeds, models, notes, machine)
        (args.results / f"{variant}.md").write_text(text)
        print(f"\n{text}")
        all_verdicts += [v for label in labels_of(seeds) for v in verdicts(seeds, label)]
    counts = {
        outcome: sum(v.outcome.startswith(outcome) for v in all_verdicts)
        for outcome in ("met", "MISSED", "n/a")
    }
    print(f"Targets: {counts['met']} met, {counts['MISSED']} MISSED, {counts['n/a']} n/a")
    print(f"Missing runs: {len(missing)} of {len(runs)}")
    for line in missing:
        print(f"  {line}")
    print(f"Results: {args.results}" if written else "Results: none written (no finished run)")
    return len(missing)
