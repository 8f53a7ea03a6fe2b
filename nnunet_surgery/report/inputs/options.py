"""The report's options, checked once where they enter (`check_options`) and passed on as one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from nnunet_surgery.calibration import check_n_bins
from nnunet_surgery.calibration.bootstrap import DEFAULT_RESAMPLES
from nnunet_surgery.cases.errors import ReportError
from nnunet_surgery.cases.roi import RoiSpec, parse_roi

__all__ = ["PRESETS", "Preset", "ReportOptions", "check_options"]

Preset = Literal["monai"]
#: `--preset` values: other tools' conventions the report computes beside its own.
PRESETS: tuple[str, ...] = get_args(Preset)


@dataclass(frozen=True)
class ReportOptions:
    """How the cases are scored; every field is valid (build it with `check_options`).

    Attributes:
        n_bins: number of equal-width confidence bins (`--bins`).
        roi: voxels scored by the calibration metrics (`--roi`).
        num_processes: worker processes (`-np`; 1 scores in this process).
        bootstrap: case-level bootstrap resamples for the 95% intervals (`--bootstrap`; 0: none).
        seed: seed of the bootstrap (`--bootstrap-seed`).
        preset: another tool's conventions to compute as well (`--preset`): "monai" adds MONAI's
            per-image `CalibrationErrorMetric` ECE (docs/calibration.md#estimator-variants).
    """

    n_bins: int = 20
    roi: RoiSpec = field(default_factory=RoiSpec)
    num_processes: int = 1
    bootstrap: int = DEFAULT_RESAMPLES
    seed: int = 0
    preset: Preset | None = None


def _check_count(name: str, value: object, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ReportError(f"{name}: {what} must be an integer >= {minimum}, but got {value!r}")
    return value


def check_options(
    n_bins: int,
    roi: RoiSpec | str,
    num_processes: int,
    bootstrap: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    preset: str | None = None,
) -> ReportOptions:
    """Check the options as given on the command line or to `generate_report`.

    Raises:
        ReportError: naming the option (`--bins`, `--roi`, `-np`, `--bootstrap`, `--bootstrap-seed`,
            `--preset`) and what was expected.
    """
    try:
        n_bins = check_n_bins(n_bins)
    except ValueError as error:
        raise ReportError(f"--bins: {error}") from None
    _check_count("-np", num_processes, 1, "the number of processes")
    _check_count("--bootstrap", bootstrap, 0, "the number of resamples")
    _check_count("--bootstrap-seed", seed, 0, "the seed")
    if isinstance(roi, str):
        try:
            roi = parse_roi(roi)
        except ValueError as error:
            raise ReportError(f"--roi: {error}") from None
    if not isinstance(roi, RoiSpec):
        raise ReportError(f"--roi: expected all, band:D, mask:FOLDER or a RoiSpec, but got {roi!r}")
    if preset is not None and preset not in PRESETS:
        raise ReportError(f"--preset: expected one of {', '.join(PRESETS)}, but got {preset!r}")
    return ReportOptions(
        n_bins=n_bins, roi=roi, num_processes=num_processes, bootstrap=bootstrap, seed=seed, preset=preset
    )
