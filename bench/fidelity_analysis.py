"""bench/fidelity.py's analysis: each run's report read into pooled metrics per model and label, merged per
seed, then mean ± std over the seeds, the ratios of each surgical trainer to its base, and the targets'
verdicts (the rules: bench/fidelity.py's module docstring)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from nnunet_surgery.cases import InputError
from nnunet_surgery.demo import STOCK_TRAINER, recalibrated_name
from nnunet_surgery.report.outputs import read_report_json

#: Seeds a "lower by more than the spread" verdict needs (the std of fewer differences means little).
SPREAD_MIN_SEEDS = 3
#: Largest |mean DSC difference| (points) of a surgical trainer against its base loss.
DSC_TOLERANCE = 1.5
#: Smallest NLL ratio base/surgical of the Dice pair.
NLL_RATIO_TARGET = 3.0


# parsed results ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PooledMetrics:
    """One model's pooled metrics on one label of one run (calibration.json; NaN where undefined)."""

    nll: float
    ece: float
    mce: float
    brier: float
    dice: float
    ece_truth: float  # ECE against p*: truth.pooled.ece
    mae_truth: float  # MAE to p*: truth.pooled.mae


#: (field of PooledMetrics, column header), in table order.
METRICS: tuple[tuple[str, str], ...] = (
    ("nll", "NLL"),
    ("ece", "ECE"),
    ("mce", "MCE"),
    ("brier", "Brier"),
    ("dice", "DSC"),
    ("ece_truth", "ECE vs p*"),
    ("mae_truth", "MAE vs p*"),
)
assert [name for name, _ in METRICS] == [f.name for f in fields(PooledMetrics)]
#: Metrics of the ratio table (surgical / base); DSC gets a difference in points instead.
RATIO_METRICS = ("nll", "ece", "ece_truth", "mae_truth")


@dataclass(frozen=True)
class SeedResult:
    """Every model's metrics of one dataset variant and seed: models[model][label]."""

    variant: str
    seed: int
    models: Mapping[str, Mapping[str, PooledMetrics]]

    def metric(self, model: str, label: str, name: str) -> float | None:
        """The value, or None when the model or label is absent from this seed."""
        labels = self.models.get(model)
        if labels is None or label not in labels:
            return None
        return getattr(labels[label], name)


def _number(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def parse_calibration(data: Mapping) -> dict[str, dict[str, PooledMetrics]]:
    """models -> label -> PooledMetrics of a calibration.json document (truth metrics NaN without truth).

    Raises:
        ValueError: the document lacks the models/labels/pooled structure.
    """
    try:
        result: dict[str, dict[str, PooledMetrics]] = {}
        order = list(data.get("label_names") or ())  # the report's label order (its JSON keys are sorted)
        for model, entry in data["models"].items():
            labels: dict[str, PooledMetrics] = {}
            names = sorted(entry["labels"], key=lambda n: order.index(n) if n in order else len(order))
            for label in names:
                scores = entry["labels"][label]
                pooled = scores["pooled"]
                truth = (scores.get("truth") or {}).get("pooled") or {}
                labels[label] = PooledMetrics(
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


def load_calibration(path: Path) -> dict[str, dict[str, PooledMetrics]]:
    """`parse_calibration` of a report's calibration.json, read by the report's own reader
    (`read_report_json`; ValueError also for a file it refuses)."""
    try:
        data = read_report_json(path)
    except InputError as error:
        raise ValueError(f"cannot read {error}") from None
    return parse_calibration(data)


def merge_seed(
    variant: str, seed: int, parts: Sequence[Mapping[str, Mapping[str, PooledMetrics]]]
) -> SeedResult:
    """One seed's result from the calibration.json of each of its runs (a model in two runs: the last)."""
    models: dict[str, Mapping[str, PooledMetrics]] = {}
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
