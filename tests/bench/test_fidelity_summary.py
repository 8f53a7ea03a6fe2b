"""bench/fidelity.py's aggregation on fake calibration.json files: extraction, mean ± std, ratios, verdicts,
markdown. No training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

# per model, label and metric: the values of seeds 0, 1, 2. "organ" meets every target, "lesion" misses every
# one (the Dice pair's spread rule excepted: its differences are all 0.3, spread 0).
SEEDS = (0, 1, 2)
VALUES = {
    "nnUNetTrainer": {
        "organ": {"nll": [0.30, 0.34, 0.32], "ece_truth": [0.05, 0.06, 0.07], "dice": [0.90, 0.91, 0.92]},
        "lesion": {"nll": [0.30, 0.34, 0.32], "ece_truth": [0.05, 0.06, 0.07], "dice": [0.80, 0.80, 0.80]},
    },
    "nnUNetTrainer+temperature": {
        "organ": {"nll": [0.20, 0.22, 0.24], "ece_truth": [0.03, 0.03, 0.03], "dice": [0.90, 0.91, 0.92]},
        "lesion": {"nll": [0.20, 0.22, 0.24], "ece_truth": [0.03, 0.03, 0.03], "dice": [0.80, 0.80, 0.80]},
    },
    "SurgeryTrainer": {
        "organ": {"nll": [0.10, 0.12, 0.11], "ece_truth": [0.01, 0.015, 0.02], "dice": [0.895, 0.905, 0.915]},
        "lesion": {"nll": [0.20, 0.40, 0.25], "ece_truth": [0.06, 0.05, 0.09], "dice": [0.77, 0.77, 0.77]},
    },
    "BaselineTrainerDice": {
        "organ": {"nll": [0.9, 1.0, 1.1], "ece_truth": [0.2, 0.2, 0.2], "dice": [0.9, 0.9, 0.9]},
        "lesion": {"nll": [0.6, 0.6, 0.6], "ece_truth": [0.2, 0.2, 0.2], "dice": [0.9, 0.9, 0.9]},
    },
    "SurgeryTrainerDice": {
        "organ": {"nll": [0.2, 0.25, 0.3], "ece_truth": [0.05, 0.06, 0.04], "dice": [0.9, 0.9, 0.9]},
        "lesion": {"nll": [0.3, 0.3, 0.3], "ece_truth": [0.05, 0.06, 0.04], "dice": [0.9, 0.9, 0.9]},
    },
}
# the other metrics: distinct known numbers derived from the seed
OTHER = {"ece": 0.011, "mce": 0.12, "brier": 0.021, "mae_truth": 0.031}
# one run per trainer, as the bench has them: nnUNetTrainer's report also holds nnUNetTrainer+temperature
RUNS = {
    "nnUNetTrainer": ("nnUNetTrainer", "nnUNetTrainer+temperature"),
    "SurgeryTrainer": ("SurgeryTrainer",),
    "BaselineTrainerDice": ("BaselineTrainerDice",),
    "SurgeryTrainerDice": ("SurgeryTrainerDice",),
}
MODELS = [model for models in RUNS.values() for model in models]


def value(model: str, label: str, metric: str, seed: int) -> float:
    given = VALUES[model][label]
    return given[metric][seed] if metric in given else OTHER[metric] * (seed + 1)


def calibration_json(models: tuple[str, ...], seed: int) -> dict:
    """The parts of a report's calibration.json the bench reads (plus some it ignores)."""
    return {
        "model_order": list(models),
        "label_names": ["organ", "lesion"],
        "models": {
            model: {
                "folder": f"/predictions/{model}",
                "labels": {
                    label: {
                        "pooled": {
                            **{
                                m: value(model, label, m, seed)
                                for m in ("nll", "ece", "mce", "brier", "dice")
                            },
                            "ace": 0.5,
                            "n_voxels": 1000,
                            "tp": 1,
                            "fp": 2,
                            "fn": 3,
                        },
                        "case_mean": {"nll": 9.0},
                        "truth": {
                            "pooled": {
                                "ece": value(model, label, "ece_truth", seed),
                                "mae": value(model, label, "mae_truth", seed),
                                "ece_truth_self": 0.1,
                            }
                        },
                    }
                    for label in ("organ", "lesion")
                },
            }
            for model in models
        },
    }


@pytest.fixture(scope="module")
def seeds(fidelity_analysis, tmp_path_factory):
    """SeedResults of the three seeds, each read from one calibration.json per run."""
    root = tmp_path_factory.mktemp("fidelity")
    results = []
    for seed in SEEDS:
        parts = []
        for trainer, models in RUNS.items():
            path = root / f"seed_{seed}" / trainer / "report" / "calibration.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps(calibration_json(models, seed)))
            parts.append(fidelity_analysis.load_calibration(path))
        results.append(fidelity_analysis.merge_seed("organs", seed, parts))
    return results


def test_extracts_every_metric_of_every_model_and_label(fidelity_analysis, seeds) -> None:
    for result in seeds:
        assert set(result.models) == set(MODELS)
        for model in MODELS:
            for label in ("organ", "lesion"):
                got = result.models[model][label]
                for metric in ("nll", "ece", "mce", "brier", "dice", "ece_truth", "mae_truth"):
                    assert getattr(got, metric) == value(model, label, metric, result.seed)


def test_missing_truth_is_nan_and_malformed_json_is_a_value_error(fidelity_analysis, tmp_path) -> None:
    data = calibration_json(("SurgeryTrainer",), 0)
    del data["models"]["SurgeryTrainer"]["labels"]["organ"]["truth"]
    organ = fidelity_analysis.parse_calibration(data)["SurgeryTrainer"]["organ"]
    assert math.isnan(organ.ece_truth) and math.isnan(organ.mae_truth) and organ.nll == 0.10
    data["label_names"] = ["organ", "lesion"]  # the report writes its JSON with sorted keys
    data["models"]["SurgeryTrainer"]["labels"] = dict(
        sorted(data["models"]["SurgeryTrainer"]["labels"].items())
    )
    assert list(fidelity_analysis.parse_calibration(data)["SurgeryTrainer"]) == ["organ", "lesion"]
    with pytest.raises(ValueError, match="pooled"):
        fidelity_analysis.parse_calibration({"models": {"m": {"labels": {"organ": {}}}}})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read"):
        fidelity_analysis.load_calibration(tmp_path / "bad.json")


def test_mean_std_matches_numpy_with_ddof_1(fidelity_analysis, seeds) -> None:
    for model in MODELS:
        for metric, _ in fidelity_analysis.METRICS:
            values = [value(model, "organ", metric, s) for s in SEEDS]
            stat = fidelity_analysis.metric_stat(seeds, model, "organ", metric)
            assert stat.n == 3
            assert stat.mean == pytest.approx(np.mean(values), abs=1e-12)
            assert stat.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    one = fidelity_analysis.metric_stat(seeds[:1], "SurgeryTrainer", "organ", "nll")
    assert (one.n, one.mean, math.isnan(one.std), one.format()) == (1, 0.10, True, "0.1000")
    assert fidelity_analysis.mean_std([1.0, math.nan, 3.0]).n == 2
    assert fidelity_analysis.mean_std([]).format() == "—"


def test_ratio_spread_is_over_the_per_seed_ratios(fidelity_analysis, seeds) -> None:
    pair = fidelity_analysis.PAIRS[0]
    assert (pair.surgical, pair.base) == ("SurgeryTrainer", "nnUNetTrainer")
    stats = fidelity_analysis.ratio_stats(seeds, pair, "organ")
    for metric in fidelity_analysis.RATIO_METRICS:
        ratios = [
            value("SurgeryTrainer", "organ", metric, s) / value("nnUNetTrainer", "organ", metric, s)
            for s in SEEDS
        ]
        assert stats[metric].mean == pytest.approx(np.mean(ratios))
        assert stats[metric].std == pytest.approx(np.std(ratios, ddof=1))
    points = [
        100 * (value("SurgeryTrainer", "organ", "dice", s) - value("nnUNetTrainer", "organ", "dice", s))
        for s in SEEDS
    ]
    assert stats["dice"].mean == pytest.approx(np.mean(points)) == pytest.approx(-0.5)
    assert stats["dice"].std == pytest.approx(np.std(points, ddof=1), abs=1e-9)
    temperature = fidelity_analysis.ratio_stats(seeds, fidelity_analysis.PAIRS[3], "organ")["nll"]
    assert temperature.mean == pytest.approx(np.mean([0.10 / 0.20, 0.12 / 0.22, 0.11 / 0.24]))


def outcomes(fidelity_analysis, seeds, label: str) -> dict[tuple[str, str], str]:
    return {(v.pair.surgical, v.target): v.outcome for v in fidelity_analysis.verdicts(seeds, label)}


def test_verdicts_met_on_organ(fidelity_analysis, seeds) -> None:
    got = outcomes(fidelity_analysis, seeds, "organ")
    for surgical in ("SurgeryTrainer", "SurgeryTrainerDice"):
        assert got[surgical, "ECE vs p* lower by more than the spread"] == "met"
        assert got[surgical, "NLL lower by more than the spread"] == "met"
        assert got[surgical, "DSC within 1.5 points"] == "met"
    # mean(base NLL) / mean(surgical NLL) = 1.0 / 0.25
    assert got["SurgeryTrainerDice", "NLL ratio base/surgical >= 3"] == "met"
    assert ("SurgeryTrainer", "NLL ratio base/surgical >= 3") not in got  # the Dice pair's target only


def test_verdicts_missed_on_lesion(fidelity_analysis, seeds) -> None:
    got = outcomes(fidelity_analysis, seeds, "lesion")
    # NLL differences base - surgical 0.10, -0.06, 0.07: mean 0.037 < their std 0.085
    diffs = np.array([0.30, 0.34, 0.32]) - np.array([0.20, 0.40, 0.25])
    assert diffs.mean() < diffs.std(ddof=1)
    assert got["SurgeryTrainer", "NLL lower by more than the spread"] == "MISSED"
    assert got["SurgeryTrainer", "ECE vs p* lower by more than the spread"] == "MISSED"  # surgical is higher
    assert got["SurgeryTrainer", "DSC within 1.5 points"] == "MISSED"  # -3 points
    assert got["SurgeryTrainerDice", "DSC within 1.5 points"] == "met"
    assert got["SurgeryTrainerDice", "NLL ratio base/surgical >= 3"] == "MISSED"  # 0.6 / 0.3 = 2
    # differences all 0.3: the spread is 0, so the gain exceeds it
    assert got["SurgeryTrainerDice", "NLL lower by more than the spread"] == "met"


def test_spread_verdicts_need_three_seeds_and_absent_pairs_are_na(fidelity_analysis, seeds) -> None:
    got = outcomes(fidelity_analysis, seeds[:2], "organ")
    assert got["SurgeryTrainer", "NLL lower by more than the spread"] == "n/a (2 seeds)"
    assert got["SurgeryTrainer", "ECE vs p* lower by more than the spread"] == "n/a (2 seeds)"
    assert got["SurgeryTrainer", "DSC within 1.5 points"] == "met"  # the mean needs one seed
    assert outcomes(fidelity_analysis, seeds[:1], "organ")[
        "SurgeryTrainer", "NLL lower by more than the spread"
    ] == ("n/a (1 seed)")
    full = outcomes(fidelity_analysis, seeds, "organ")
    for target in (
        "ECE vs p* lower by more than the spread",
        "NLL lower by more than the spread",
        "DSC within 1.5 points",
    ):
        assert full["SurgeryTrainerTversky", target] == "n/a (0 seeds)"  # not in the fake grid


def test_markdown_has_the_formatted_cells(fidelity_tables, seeds) -> None:
    text = fidelity_tables.render_markdown("Fidelity: organs (2D)", seeds, MODELS, ["Schedule: test"])
    assert text.startswith("# Fidelity: organs (2D)\n")
    assert "## organ" in text and "## lesion" in text
    organ = text.split("## organ")[1].split("## lesion")[0]
    # nnUNetTrainer's organ row: NLL 0.32 ± 0.02, ECE 0.022 ± 0.011, MCE 0.24 ± 0.12, DSC 0.91 ± 0.01
    nll, ece = np.array([0.30, 0.34, 0.32]), np.array([0.011, 0.022, 0.033])
    cells = [f"{nll.mean():.4f} ± {nll.std(ddof=1):.4f}", f"{ece.mean():.4f} ± {ece.std(ddof=1):.4f}"]
    assert cells == ["0.3200 ± 0.0200", "0.0220 ± 0.0110"]
    row = next(line for line in organ.splitlines() if line.startswith("| nnUNetTrainer |"))
    assert row.startswith(f"| nnUNetTrainer | {cells[0]} | {cells[1]} | 0.2400 ± 0.1200 |")
    assert row.endswith("| 0.9100 ± 0.0100 | 0.0600 ± 0.0100 | 0.0620 ± 0.0310 | 3 |")
    assert "| model | NLL | ECE | MCE | Brier | DSC | ECE vs p* | MAE vs p* | seeds |" in organ
    # ratio table: SurgeryTrainer vs nnUNetTrainer, DSC difference -0.50 ± 0.00 points
    ratio_row = next(
        line for line in organ.splitlines() if line.startswith("| SurgeryTrainer vs nnUNetTrainer |")
    )
    ratios = np.array([0.10 / 0.30, 0.12 / 0.34, 0.11 / 0.32])
    assert f"| {ratios.mean():.3f} ± {ratios.std(ddof=1):.3f} |" in ratio_row
    assert ratio_row.endswith("| -0.50 ± 0.00 | 3 |")
    assert "| SurgeryTrainer vs nnUNetTrainer+temperature |" in organ
    assert "SurgeryTrainerTversky vs BaselineTrainerTversky |" not in organ.split("Targets:")[0]
    assert (
        "| SurgeryTrainerDice vs BaselineTrainerDice | NLL ratio base/surgical >= 3 | 4.00 | 3 | met |"
        in organ
    )
    assert "| SurgeryTrainer vs nnUNetTrainer | DSC within 1.5 points | -0.50 points | 3 | met |" in organ
    lesion = text.split("## lesion")[1]
    assert "| SurgeryTrainer vs nnUNetTrainer | DSC within 1.5 points | -3.00 points | 3 | MISSED |" in lesion
    one = fidelity_tables.render_markdown("t", seeds[:1], MODELS)
    assert "| nnUNetTrainer | 0.3000 | 0.0110 |" in one  # one seed: the mean alone


def test_paper_order_interleaves_the_pairs(fidelity_grid) -> None:
    registry = (
        "nnUNetTrainer", "SurgeryTrainer", "SurgeryTrainerDice", "SurgeryTrainerTversky", "BaselineTrainerDice",
        "BaselineTrainerTversky", "BaselineTrainerDicePlusPlus", "BaselineTrainerDiceML1ACE", "BaselineTrainerCE",
    )  # fmt: skip
    assert fidelity_grid.paper_order(registry) == [
        "nnUNetTrainer", "SurgeryTrainer", "BaselineTrainerDice", "SurgeryTrainerDice", "BaselineTrainerTversky",
        "SurgeryTrainerTversky", "BaselineTrainerDicePlusPlus", "BaselineTrainerDiceML1ACE", "BaselineTrainerCE",
    ]  # fmt: skip
    assert fidelity_grid.grid_models(["SurgeryTrainer", "nnUNetTrainer"]) == [
        "SurgeryTrainer", "nnUNetTrainer", "nnUNetTrainer+temperature",
    ]  # fmt: skip


def test_pairs_name_registered_trainers_and_targets_only_the_three_base_losses(fidelity_analysis) -> None:
    from nnunet_surgery.demo import demo_trainers

    registered = set(demo_trainers())
    for pair in fidelity_analysis.PAIRS:
        assert pair.surgical in registered, pair.name
        assert pair.base.split("+")[0] in registered, pair.name
    assert [pair.name for pair in fidelity_analysis.PAIRS if pair.target] == [
        "SurgeryTrainer vs nnUNetTrainer",
        "SurgeryTrainerDice vs BaselineTrainerDice",
        "SurgeryTrainerTversky vs BaselineTrainerTversky",
    ]
    # every baseline of the grid is compared with a surgical trainer
    compared = {pair.base.split("+")[0] for pair in fidelity_analysis.PAIRS}
    assert registered - compared == {name for name in registered if name.startswith("Surgery")}


def test_results_after_a_partial_run_cover_every_trainer_and_seed_folder(fidelity_grid, tmp_path) -> None:
    import argparse

    for seed in (0, 3):
        (tmp_path / "organs" / f"seed_{seed}").mkdir(parents=True)
    (tmp_path / "organs" / "seed_x").mkdir()  # not a seed folder
    (tmp_path / "regions-3d" / "seed_5").mkdir(parents=True)  # another variant: not this grid's
    args = argparse.Namespace(
        out=tmp_path, datasets=["organs"], three_d=False, seeds=[1], trainers=["SurgeryTrainer"], epochs=2
    )
    registered = ["SurgeryTrainer", "nnUNetTrainer", "BaselineTrainerCE"]
    wide = fidelity_grid.whole_grid(args, registered)
    assert wide.seeds == [0, 1, 3]
    assert wide.trainers == ["nnUNetTrainer", "SurgeryTrainer", "BaselineTrainerCE"]
    assert (wide.out, wide.datasets, wide.epochs) == (tmp_path, ["organs"], 2)
    assert args.seeds == [1] and args.trainers == ["SurgeryTrainer"]  # the caller's args untouched
    assert fidelity_grid.whole_grid(
        argparse.Namespace(**{**vars(args), "three_d": True, "datasets": ["regions"]}), registered
    ).seeds == [1, 5]


def test_the_command_line_refuses_an_unknown_dataset_in_one_line(fidelity, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        fidelity.parse_args(["--out", "runs", "--datasets", "organs", "brains"])
    error = capsys.readouterr().err
    assert (
        exit_info.value.code == 2 and error.count("\n") == 1 and "--datasets" in error and "brains" in error
    )
