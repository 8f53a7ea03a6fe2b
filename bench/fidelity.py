"""Benchmark: calibration fidelity of the paper's trainer grid, across datasets and seeds (resumable).

For every built-in synthetic dataset in `--datasets` (2D, or 3D with `--3d`), every seed S in `--seeds` and
every trainer in `--trainers` (default: the whole grid, nnU-Net's nnUNetTrainer and every registered trainer)
this runs the demo's pipeline (`nnunet_surgery.demo.DemoRun`, nnU-Net's own commands) in its own folder

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

Resume: every DemoRun step is skipped when its output exists (training continues from
checkpoint_latest.pth), and the report when report/calibration.json holds the run's models, so rerunning
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
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from _common import machine_info

from nnunet_surgery.demo import (
    DATASETS,
    SHAPE_3D,
    STOCK_TRAINER,
    DemoRun,
    DemoSettings,
    recalibrated_name,
)

#: The run's own record in its demo folder: training wall time and the machine it trained on.
RUN_RECORD = "bench_fidelity.json"
#: Prefix of a seed's folder OUT/DATASET[-3d]/seed_S/ and of its RESULTS/DATASET[-3d]/seed_S.json.
SEED_PREFIX = "seed_"
#: Seeds a "lower by more than the spread" verdict needs (the std of fewer differences means little).
SPREAD_MIN_SEEDS = 3
#: Largest |mean DSC difference| (points) of a surgical trainer against its base loss.
DSC_TOLERANCE = 1.5
#: Smallest NLL ratio base/surgical of the Dice pair.
NLL_RATIO_TARGET = 3.0


# parsed results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelMetrics:
    """One model's pooled metrics on one label of one run (calibration.json; NaN where undefined)."""

    nll: float
    ece: float
    mce: float
    brier: float
    dice: float
    ece_truth: float  # ECE against p*: truth.pooled.ece
    mae_truth: float  # MAE to p*: truth.pooled.mae


#: (field of LabelMetrics, column header), in table order.
METRICS: tuple[tuple[str, str], ...] = (
    ("nll", "NLL"),
    ("ece", "ECE"),
    ("mce", "MCE"),
    ("brier", "Brier"),
    ("dice", "DSC"),
    ("ece_truth", "ECE vs p*"),
    ("mae_truth", "MAE vs p*"),
)
assert [name for name, _ in METRICS] == [f.name for f in fields(LabelMetrics)]
#: Metrics of the ratio table (surgical / base); DSC gets a difference in points instead.
RATIO_METRICS = ("nll", "ece", "ece_truth", "mae_truth")


@dataclass(frozen=True)
class SeedResult:
    """Every model's metrics of one dataset variant and seed: models[model][label]."""

    variant: str
    seed: int
    models: Mapping[str, Mapping[str, LabelMetrics]]

    def metric(self, model: str, label: str, name: str) -> float | None:
        """The value, or None when the model or label is absent from this seed."""
        labels = self.models.get(model)
        if labels is None or label not in labels:
            return None
        return getattr(labels[label], name)


def _number(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def parse_calibration(data: Mapping) -> dict[str, dict[str, LabelMetrics]]:
    """models -> label -> LabelMetrics of a calibration.json document (truth metrics NaN without truth).

    Raises:
        ValueError: the document lacks the models/labels/pooled structure.
    """
    try:
        result: dict[str, dict[str, LabelMetrics]] = {}
        order = list(data.get("label_names") or ())  # the report's label order (its JSON keys are sorted)
        for model, entry in data["models"].items():
            labels: dict[str, LabelMetrics] = {}
            names = sorted(entry["labels"], key=lambda n: order.index(n) if n in order else len(order))
            for label in names:
                scores = entry["labels"][label]
                pooled = scores["pooled"]
                truth = (scores.get("truth") or {}).get("pooled") or {}
                labels[label] = LabelMetrics(
                    nll=_number(pooled["nll"]),
                    ece=_number(pooled["ece"]),
                    mce=_number(pooled["mce"]),
                    brier=_number(pooled["brier"]),
                    dice=_number(pooled["dice"]),
                    ece_truth=_number(truth.get("ece")),
                    mae_truth=_number(truth.get("mae")),
                )
            result[model] = labels
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ValueError(
            f"expected calibration.json's models.MODEL.labels.LABEL.pooled, but got {error!r}"
        ) from None
    return result


def load_calibration(path: Path) -> dict[str, dict[str, LabelMetrics]]:
    """`parse_calibration` of a file (ValueError also for unreadable JSON)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    return parse_calibration(data)


def merge_seed(
    variant: str, seed: int, parts: Sequence[Mapping[str, Mapping[str, LabelMetrics]]]
) -> SeedResult:
    """One seed's result from the calibration.json of each of its runs (a model in two runs: the last)."""
    models: dict[str, Mapping[str, LabelMetrics]] = {}
    for part in parts:
        models.update(part)
    return SeedResult(variant, seed, models)


# aggregation ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    """Mean and sample std (ddof=1; NaN for n < 2) of n finite values; mean NaN for n = 0."""

    mean: float
    std: float
    n: int

    def format(self, spec: str = ".4f", *, sign: bool = False) -> str:
        if self.n == 0:
            return "—"
        mean = format(self.mean, ("+" if sign else "") + spec)
        return mean if self.n == 1 else f"{mean} ± {format(self.std, spec)}"


def mean_std(values: Sequence[float]) -> Stat:
    """`Stat` of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return Stat(math.nan, math.nan, 0)
    std = statistics.stdev(finite) if len(finite) > 1 else math.nan
    return Stat(statistics.fmean(finite), std, len(finite))


def labels_of(seeds: Sequence[SeedResult]) -> list[str]:
    """Labels of all seeds and models, in order of first appearance."""
    seen: dict[str, None] = {}
    for seed in seeds:
        for labels in seed.models.values():
            seen.update(dict.fromkeys(labels))
    return list(seen)


def seeds_with(seeds: Sequence[SeedResult], model: str, label: str) -> int:
    return sum(seed.metric(model, label, "nll") is not None for seed in seeds)


def metric_stat(seeds: Sequence[SeedResult], model: str, label: str, name: str) -> Stat:
    """Mean ± std of one metric of one model and label over the seeds."""
    return mean_std([v for seed in seeds if (v := seed.metric(model, label, name)) is not None])


@dataclass(frozen=True)
class Pair:
    """A surgical model and the base it is compared with; `target`: the issue's targets apply."""

    surgical: str
    base: str
    target: bool

    @property
    def name(self) -> str:
        return f"{self.surgical} vs {self.base}"


#: The comparisons (names checked against the trainer registry when the bench runs).
PAIRS = (
    Pair("SurgeryTrainer", STOCK_TRAINER, target=True),
    Pair("SurgeryTrainerDice", "BaselineTrainerDice", target=True),
    Pair("SurgeryTrainerTversky", "BaselineTrainerTversky", target=True),
    Pair("SurgeryTrainer", recalibrated_name(STOCK_TRAINER), target=False),
    # the paper's other calibration baselines (Tables 1-2), each against the surgery of its own family
    Pair("SurgeryTrainerDice", "BaselineTrainerDicePlusPlus", target=False),
    Pair("SurgeryTrainerDice", "BaselineTrainerDiceML1ACE", target=False),
    Pair("SurgeryTrainer", "BaselineTrainerCE", target=False),
)
#: The pair whose NLL must drop by a factor NLL_RATIO_TARGET.
NLL_RATIO_PAIR = PAIRS[1]


def paired(seeds: Sequence[SeedResult], pair: Pair, label: str, name: str) -> list[tuple[float, float]]:
    """(surgical, base) values of the seeds where both are present and finite."""
    out = []
    for seed in seeds:
        s, b = seed.metric(pair.surgical, label, name), seed.metric(pair.base, label, name)
        if s is not None and b is not None and math.isfinite(s) and math.isfinite(b):
            out.append((s, b))
    return out


def ratio_stats(seeds: Sequence[SeedResult], pair: Pair, label: str) -> dict[str, Stat]:
    """Per-seed ratio surgical/base of RATIO_METRICS, and `dice`: difference surgical - base in points."""
    stats = {
        name: mean_std([s / b for s, b in paired(seeds, pair, label, name) if b != 0])
        for name in RATIO_METRICS
    }
    stats["dice"] = mean_std([100 * (s - b) for s, b in paired(seeds, pair, label, "dice")])
    return stats


@dataclass(frozen=True)
class Verdict:
    """One target on one label: what was measured (`value`), over how many paired seeds, and the outcome."""

    pair: Pair
    target: str
    value: str
    seeds: int
    outcome: str  # "met", "MISSED" or "n/a (k seeds)"


def _not_enough(k: int) -> str:
    return f"n/a ({k} seed{'' if k == 1 else 's'})"


def lower_by_spread(values: Sequence[tuple[float, float]]) -> tuple[str, str]:
    """(value, outcome) of "surgical lower than base by more than the seeds' spread": the mean paired
    difference base - surgical above the std (ddof=1) of those differences, over >= SPREAD_MIN_SEEDS seeds."""
    differences = [b - s for s, b in values]
    k = len(differences)
    if k == 0:
        return "—", _not_enough(0)
    gain = statistics.fmean(differences)
    if k < SPREAD_MIN_SEEDS:
        return f"{gain:+.4f}", _not_enough(k)
    spread = statistics.stdev(differences)
    return f"{gain:+.4f} (spread {spread:.4f})", "met" if gain > spread else "MISSED"


def dice_within(values: Sequence[tuple[float, float]]) -> tuple[str, str]:
    """(value, outcome) of |mean DSC difference| <= DSC_TOLERANCE points, over >= 1 seed."""
    if not values:
        return "—", _not_enough(0)
    difference = statistics.fmean(100 * (s - b) for s, b in values)
    return f"{difference:+.2f} points", "met" if abs(difference) <= DSC_TOLERANCE else "MISSED"


def nll_ratio(values: Sequence[tuple[float, float]]) -> tuple[str, str]:
    """(value, outcome) of mean(NLL_base) / mean(NLL_surgical) >= NLL_RATIO_TARGET, over >= 1 seed."""
    if not values:
        return "—", _not_enough(0)
    surgical = statistics.fmean(s for s, _ in values)
    base = statistics.fmean(b for _, b in values)
    ratio = base / surgical if surgical > 0 else math.inf
    return f"{ratio:.2f}", "met" if ratio >= NLL_RATIO_TARGET else "MISSED"


def verdicts(seeds: Sequence[SeedResult], label: str) -> list[Verdict]:
    """Every target of the issue on one label (see the module docstring), pairs in PAIRS order."""
    out = []
    for pair in PAIRS:
        if not pair.target:
            continue
        checks: list[tuple[str, str, Callable]] = [
            ("ECE vs p* lower by more than the spread", "ece_truth", lower_by_spread),
            ("NLL lower by more than the spread", "nll", lower_by_spread),
            (f"DSC within {DSC_TOLERANCE:g} points", "dice", dice_within),
        ]
        if pair == NLL_RATIO_PAIR:
            checks.append((f"NLL ratio base/surgical >= {NLL_RATIO_TARGET:g}", "nll", nll_ratio))
        for target, name, rule in checks:
            values = paired(seeds, pair, label, name)
            value, outcome = rule(values)
            out.append(Verdict(pair, target, value, len(values), outcome))
    return out


# rendering --------------------------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    """A GitHub markdown table: the first `left` columns left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(":---" if i < left else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_table(seeds: Sequence[SeedResult], models: Sequence[str], label: str) -> str:
    rows = [
        [
            model,
            *(metric_stat(seeds, model, label, name).format() for name, _ in METRICS),
            seeds_with(seeds, model, label),
        ]
        for model in models
    ]
    return markdown_table(["model", *(header for _, header in METRICS), "seeds"], rows)


def ratio_table(seeds: Sequence[SeedResult], models: Sequence[str], label: str) -> str | None:
    """Ratios of the PAIRS whose both models are in `models`; None if there is none."""
    headers = dict(METRICS)
    rows = []
    for pair in PAIRS:
        if pair.surgical not in models or pair.base not in models:
            continue
        stats = ratio_stats(seeds, pair, label)
        rows.append(
            [
                pair.name,
                *(stats[name].format(".3f") for name in RATIO_METRICS),
                stats["dice"].format(".2f", sign=True),
                len(paired(seeds, pair, label, "nll")),
            ]
        )
    if not rows:
        return None
    return markdown_table(
        ["surgical vs base", *(f"{headers[name]} ratio" for name in RATIO_METRICS), "ΔDSC (points)", "seeds"],
        rows,
    )


def verdict_table(label_verdicts: Sequence[Verdict]) -> str:
    rows = [[v.pair.name, v.target, v.value, v.seeds, v.outcome] for v in label_verdicts]
    return markdown_table(["surgical vs base", "target", "value", "seeds", "verdict"], rows, left=2)


def render_markdown(
    title: str,
    seeds: Sequence[SeedResult],
    models: Sequence[str],
    notes: Sequence[str] = (),
    machine: str | None = None,
) -> str:
    """The whole markdown of one dataset variant: per label the metrics, the ratios and the targets."""
    parts = [f"# {title}", ""]
    parts += [f"{note}  " for note in notes]
    if machine:
        parts += ["", "```", machine, "```"]
    parts += [
        "",
        f"Seeds present: {', '.join(str(s.seed) for s in seeds) or 'none'}. Cells: mean ± std over the seeds "
        "(ddof=1; the mean alone from one seed). Ratios: surgical/base per seed, then mean ± std; ΔDSC: "
        f"100 (surgical - base). Targets: 'lower by more than the spread' is mean(base) - mean(surgical) > "
        f"std of the per-seed differences, over >= {SPREAD_MIN_SEEDS} paired seeds.",
    ]
    for label in labels_of(seeds):
        parts += ["", f"## {label}", "", metric_table(seeds, models, label)]
        ratios = ratio_table(seeds, models, label)
        if ratios is not None:
            parts += ["", "Ratios surgical/base:", "", ratios]
        parts += ["", "Targets:", "", verdict_table(verdicts(seeds, label))]
    return "\n".join(parts) + "\n"


# the runs ---------------------------------------------------------------------------------------------------
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
        try:
            order = json.loads((self.folder / "report" / "calibration.json").read_text())["model_order"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            return False
        return order == list(models_of(self.trainer))


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
    """Run (or resume) one demo run; its training wall time goes to RUN_RECORD when it trained."""
    trainer = spec.trainer
    run = DemoRun(spec.folder, spec.settings, log)
    run.claim_output_dir()
    run.make_dataset()
    run.preprocess()
    run.write_trainers()
    # train_s: wall time of the nnUNetv2_train command (training, then validation with --npz)
    record_path = run.out / RUN_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    trained = (run.results_folder(trainer) / "checkpoint_final.pth").is_file()
    started = time.monotonic()
    run.train(trainer, 1)
    if not trained:  # a resumed training adds the time of this session to the one before
        record["train_s"] = record.get("train_s", 0.0) + time.monotonic() - started
        record["machine"] = machine_info(spec.settings.device)
        record_path.write_text(json.dumps(record, indent=2))
    predictions = run.predict(trainer)
    folders, names = [predictions], [trainer]
    if trainer == STOCK_TRAINER:
        folders.append(run.recalibrate(trainer, run.calibrate(trainer), predictions))
        names.append(recalibrated_name(trainer))
    if spec.report_complete():
        log("[report] report/calibration.json holds this run's models, kept")
    else:
        run.report(folders, names, gallery=False)


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


# command line -----------------------------------------------------------------------------------------------
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
