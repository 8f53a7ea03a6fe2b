"""The report's options, checked once where they enter (`check_options`), and kept apart by who needs them:
the ROI goes with each case's reading (`cases.CaseTask`), the scoring options with each case's scoring,
the run's options stay with the aggregator and the pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from nnunet_surgery.calibration import check_n_bins
from nnunet_surgery.calibration.bootstrap import DEFAULT_METHOD, DEFAULT_RESAMPLES, METHODS, Method
from nnunet_surgery.calibration.resampling import DEFAULT_MEMORY_BUDGET
from nnunet_surgery.cases import InputError, RoiSpec, check_count, check_processes, check_roi

__all__ = [
    "PRESETS",
    "Preset",
    "ReportOptions",
    "RunOptions",
    "ScoringOptions",
    "check_gallery",
    "check_options",
]

Preset = Literal["monai"]
#: `--preset` values: other tools' conventions the report computes beside its own.
PRESETS: tuple[str, ...] = get_args(Preset)


@dataclass(frozen=True)
class ScoringOptions:
    """How each case is scored: sent with every case to the worker that scores it.

    Attributes:
        n_bins: number of equal-width confidence bins (`--bins`).
        preset: another tool's conventions to compute as well (`--preset`): "monai" adds MONAI's
            per-image `CalibrationErrorMetric` ECE (docs/calibration.md#estimator-variants).
    """

    n_bins: int = 20
    preset: Preset | None = None


@dataclass(frozen=True)
class RunOptions:
    """How the run goes: read by the pool and the aggregator, never sent to a worker.

    Attributes:
        num_processes: worker processes (`-np`; 1 scores in this process).
        bootstrap: case-level bootstrap resamples for the 95% intervals (`--bootstrap`; 0: none).
        seed: seed of the bootstrap (`--bootstrap-seed`).
        interval: how the intervals are read from the resamples (`--interval`): "bca" (bias-corrected
            and accelerated) or "percentile" (the report's interval before BCa).
        memory_budget: bytes one block of bootstrap resamples may use (docs/calibration.md#bounded-resampling).
    """

    num_processes: int = 1
    bootstrap: int = DEFAULT_RESAMPLES
    seed: int = 0
    interval: Method = DEFAULT_METHOD
    memory_budget: int = DEFAULT_MEMORY_BUDGET


@dataclass(frozen=True)
class ReportOptions:
    """Every option of a report, valid (build it with `check_options`).

    Attributes:
        roi: voxels scored by the calibration metrics (`--roi`): read with each case.
        scoring: how each case is scored.
        run: how the run goes.
    """

    roi: RoiSpec = field(default_factory=RoiSpec)
    scoring: ScoringOptions = field(default_factory=ScoringOptions)
    run: RunOptions = field(default_factory=RunOptions)


def check_options(
    n_bins: int,
    roi: RoiSpec | str,
    num_processes: int,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    preset: str | None = None,
    interval: str = DEFAULT_METHOD,
) -> ReportOptions:
    """Check the options as given on the command line or to `generate_report`.

    Raises:
        InputError: naming the option (`--bins`, `--roi`, `-np`, `--bootstrap`, `--bootstrap-seed`,
            `--preset`, `--interval`) and what was expected.
    """
    try:
        n_bins = check_n_bins(n_bins)
    except ValueError as error:
        raise InputError(f"--bins: {error}") from None
    check_processes(num_processes)
    check_count("--bootstrap", bootstrap, 0, "the number of resamples")
    check_count("--bootstrap-seed", seed, 0, "the seed")
    roi = check_roi(roi)
    if preset is not None and preset not in PRESETS:
        raise InputError(f"--preset: expected one of {', '.join(PRESETS)}, but got {preset!r}")
    if interval not in METHODS:
        raise InputError(f"--interval: expected one of {', '.join(METHODS)}, but got {interval!r}")
    return ReportOptions(
        roi=roi,
        scoring=ScoringOptions(n_bins, preset),
        run=RunOptions(num_processes, bootstrap, seed, interval),
    )


def check_gallery(images_folder: str | Path | None, gallery: int) -> None:
    """Check `--gallery K` and `--images IMAGES_FOLDER` together.

    Raises:
        InputError: K not an integer >= 0, K > 0 without images, or an images folder that is not one.
    """
    check_count("--gallery", gallery, 0, "the number of cases")
    if gallery and images_folder is None:
        raise InputError("--gallery: needs --images IMAGES_FOLDER (the images CASE_0000{file_ending} shown)")
    if images_folder is not None and not Path(images_folder).is_dir():
        raise InputError(f"{images_folder}: --images folder does not exist or is not a folder")
