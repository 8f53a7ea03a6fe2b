"""What the report reads, checked before anything is scored (`read_inputs`): its options, dataset.json, its
models (prediction folders and ensembles, each named once) and every case's files paired across them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunet_surgery.calibration.bootstrap import DEFAULT_RESAMPLES
from nnunet_surgery.cases import (
    CaseTask,
    DatasetInfo,
    InputError,
    RoiSpec,
    collect_cases,
    load_dataset_json,
    model_names,
    reader_for,
)
from nnunet_surgery.report.inputs.options import ReportOptions, check_options

__all__ = ["Ensembles", "ReportInputs", "Sources", "read_inputs"]

#: `--ensemble NAME=DIR1,DIR2,...` as given: name -> member folders, or (name, members) pairs in order.
Ensembles = Mapping[str, Sequence[str | Path]] | Sequence[tuple[str, Sequence[str | Path]]]


@dataclass(frozen=True)
class Sources:
    """Input paths recorded in the report."""

    dataset_json: Path
    gt_folder: Path
    truth_folder: Path | None


@dataclass(frozen=True)
class ReportInputs:
    """Every input of a report, checked: what scoring reads.

    Attributes:
        options: the checked options.
        dataset: dataset.json (file ending, label layout).
        models: (name, prediction folders) per model, in model order: one folder, or an ensemble's members.
        cases: one reading task per case, in case order, predictions in model order.
        sources: the input paths recorded in the report.
    """

    options: ReportOptions
    dataset: DatasetInfo
    models: tuple[tuple[str, tuple[Path, ...]], ...]
    cases: tuple[CaseTask, ...]
    sources: Sources

    @property
    def folders(self) -> tuple[Path, ...]:
        """The reference folder and every model's prediction folders."""
        return (self.sources.gt_folder, *(folder for _, folders in self.models for folder in folders))


def _models(
    pred_folders: Sequence[str | Path], names: list[str] | None, ensembles: Ensembles | None
) -> tuple[tuple[str, tuple[Path, ...]], ...]:
    """(name, folders) of every model: the folders' ones, then the ensembles; every name given once."""
    pairs = list(ensembles.items()) if isinstance(ensembles, Mapping) else list(ensembles or ())
    if not pred_folders and not pairs:
        raise InputError("PRED_FOLDER: give at least one prediction folder (or --ensemble)")
    models = (
        *((name, (Path(folder),)) for name, folder in zip(model_names(pred_folders, names), pred_folders)),
        *((name, tuple(Path(folder) for folder in folders)) for name, folders in pairs),
    )
    taken = [name for name, _ in models]
    if len(set(taken)) != len(taken):
        twice = sorted({name for name in taken if taken.count(name) > 1})
        raise InputError(f"--ensemble: the name {twice[0]!r} is given to two models")
    return models


def read_inputs(
    gt_folder: str | Path,
    pred_folders: Sequence[str | Path],
    dataset_json: str | Path,
    *,
    names: list[str] | None = None,
    n_bins: int = 20,
    roi: RoiSpec | str = "all",
    truth_folder: str | Path | None = None,
    num_processes: int = 1,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    preset: str | None = None,
    ensembles: Ensembles | None = None,
    interval: str = "bca",
) -> ReportInputs:
    """Check the options, dataset.json and the pairing of every case's files; nothing is scored or written.

    Args:
        gt_folder: reference segmentations `CASE{file_ending}`.
        pred_folders: one folder of `CASE.npz` (key `probabilities`) per model.
        dataset_json: the dataset's dataset.json (labels / regions, file_ending, reader).
        names: model names (default: the folders' names).
        n_bins: number of equal-width confidence bins.
        roi: `all`, `band:D`, `mask:FOLDER` or a RoiSpec (see `nnunet_surgery.cases.roi`).
        truth_folder: optional folder of true probability maps `CASE.npz`, laid out as the predictions.
        num_processes: worker processes (1: in this process).
        bootstrap: case-level bootstrap resamples for 95% intervals and paired comparisons (0: none).
        seed: the bootstrap's seed.
        preset: also compute another tool's conventions: "monai" (MONAI's per-image ECE), or None.
        ensembles: models after the folders' ones: name -> member folders (e.g. the 5 folds' predictions of
            the same cases), probabilities averaged case by case as `nnUNetv2_ensemble` does.
        interval: "bca" (default) or "percentile" (docs/calibration.md#bca).

    Raises:
        InputError: any bad input, with a one-line message naming the file or argument.
    """
    options = check_options(n_bins, roi, num_processes, bootstrap, seed, preset, interval)
    models = _models(pred_folders, names, ensembles)
    dataset = load_dataset_json(dataset_json)
    roi = options.roi
    cases = collect_cases(
        gt_folder,
        [folders for _, folders in models],
        dataset.file_ending,
        truth_folder=truth_folder,
        mask_folder=roi.folder if roi.kind == "mask" else None,
    )
    reader_class = reader_for(dataset, cases[0].reference)
    sources = Sources(
        dataset_json=dataset.path,
        gt_folder=Path(gt_folder),
        truth_folder=None if truth_folder is None else Path(truth_folder),
    )
    tasks = tuple(CaseTask(files, reader_class, dataset.layout, roi) for files in cases)
    return ReportInputs(options, dataset, models, tasks, sources)
