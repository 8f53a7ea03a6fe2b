"""bench/fidelity.py's tables: one dataset variant's markdown, per label the metrics (mean ± std over the
seeds), the ratios surgical/base and the targets' verdicts."""

from __future__ import annotations

from collections.abc import Sequence

from fidelity_analysis import (
    METRICS,
    PAIRS,
    RATIO_METRICS,
    SPREAD_MIN_SEEDS,
    SeedResult,
    Verdict,
    labels_of,
    metric_stat,
    paired,
    ratio_stats,
    seeds_with,
    verdicts,
)


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
