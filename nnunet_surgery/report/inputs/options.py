"""The report's options, checked once where they enter (`check_options`) and passed on as one object."""

from __future__ import annotations

from dataclasses import dataclass, field

from nnunet_surgery.calibration import check_n_bins
from nnunet_surgery.report.errors import ReportError
from nnunet_surgery.report.inputs.roi import RoiSpec, parse_roi

__all__ = ["ReportOptions", "check_options"]


@dataclass(frozen=True)
class ReportOptions:
    """How the cases are scored; every field is valid (build it with `check_options`).

    Attributes:
        n_bins: number of equal-width confidence bins (`--bins`).
        roi: voxels scored by the calibration metrics (`--roi`).
        num_processes: worker processes (`-np`; 1 scores in this process).
    """

    n_bins: int = 20
    roi: RoiSpec = field(default_factory=RoiSpec)
    num_processes: int = 1


def check_options(n_bins: int, roi: RoiSpec | str, num_processes: int) -> ReportOptions:
    """Check the options as given on the command line or to `generate_report`.

    Raises:
        ReportError: naming the option (`--bins`, `--roi`, `-np`) and what was expected.
    """
    try:
        n_bins = check_n_bins(n_bins)
    except ValueError as error:
        raise ReportError(f"--bins: {error}") from None
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ReportError(f"-np: the number of processes must be an integer >= 1, but got {num_processes!r}")
    if isinstance(roi, str):
        try:
            roi = parse_roi(roi)
        except ValueError as error:
            raise ReportError(f"--roi: {error}") from None
    if not isinstance(roi, RoiSpec):
        raise ReportError(f"--roi: expected all, band:D, mask:FOLDER or a RoiSpec, but got {roi!r}")
    return ReportOptions(n_bins=n_bins, roi=roi, num_processes=num_processes)
