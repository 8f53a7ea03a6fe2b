"""Region of interest: which voxels the calibration metrics score.

Pooled ECE over a volume that is 99% certain background flatters every model, so the voxels can be
restricted: `all` (default), `band:D` (the reference foreground and every voxel within Euclidean
distance D, in voxels, of it), or `mask:FOLDER` (voxels > 0 in FOLDER/CASE{file_ending}, e.g. body or
brain masks). Voxels of the ignore label are always excluded. Dice never uses the ROI: it is computed on
all non-ignored voxels, as nnU-Net's evaluation does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from nnunet_surgery.cases.errors import InputError

__all__ = ["RoiSpec", "band_mask", "check_roi", "parse_roi", "roi_mask"]


@dataclass(frozen=True)
class RoiSpec:
    """A parsed `--roi` value.

    Attributes:
        kind: "all", "band" or "mask".
        width: band half-width D in voxels (kind "band").
        folder: folder of mask files (kind "mask").
    """

    kind: Literal["all", "band", "mask"] = "all"
    width: int = 0
    folder: Path | None = None

    def __str__(self) -> str:
        if self.kind == "band":
            return f"band:{self.width}"
        if self.kind == "mask":
            return f"mask:{self.folder}"
        return "all"


def parse_roi(text: str) -> RoiSpec:
    """Parse `all`, `band:D` (D an integer >= 0) or `mask:FOLDER`.

    Raises:
        ValueError: anything else, with the expected forms.
    """
    kind, _, value = text.partition(":")
    if kind == "all" and not value:
        return RoiSpec()
    if kind == "band":
        try:
            width = int(value)
        except ValueError:
            width = -1
        if width < 0:
            raise ValueError(f"band width must be an integer >= 0 voxels, as in band:3, but got {text!r}")
        return RoiSpec(kind="band", width=width)
    if kind == "mask" and value:
        return RoiSpec(kind="mask", folder=Path(value))
    raise ValueError(f"expected all, band:D or mask:FOLDER, but got {text!r}")


def check_roi(roi: RoiSpec | str) -> RoiSpec:
    """`--roi` as a RoiSpec: a RoiSpec as it is, a string parsed (`parse_roi`).

    Raises:
        InputError: naming `--roi` and the expected forms.
    """
    if isinstance(roi, str):
        try:
            roi = parse_roi(roi)
        except ValueError as error:
            raise InputError(f"--roi: {error}") from None
    if not isinstance(roi, RoiSpec):
        raise InputError(f"--roi: expected all, band:D, mask:FOLDER or a RoiSpec, but got {roi!r}")
    return roi


def band_mask(foreground: np.ndarray, width: int) -> np.ndarray:
    """Foreground plus every voxel within Euclidean distance `width` (in voxels) of it.

    The distance transform runs only on the foreground's bounding box grown by `width`, since no voxel
    outside it can be that close.
    """
    from scipy.ndimage import distance_transform_edt

    foreground = np.asarray(foreground, dtype=bool)
    band = np.zeros(foreground.shape, dtype=bool)
    if not foreground.any():
        return band
    box = []
    for axis in range(foreground.ndim):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        box.append(
            slice(max(int(present[0]) - width, 0), min(int(present[-1]) + width + 1, foreground.shape[axis]))
        )
    box = tuple(box)
    distance = distance_transform_edt(~foreground[box])
    band[box] = distance <= width
    return band


def roi_mask(
    reference: np.ndarray, spec: RoiSpec, ignore_label: int | None, mask: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the voxels to score, same shape as `reference`.

    Args:
        reference: reference label map (ignore label included).
        spec: the ROI.
        ignore_label: label whose voxels are excluded, or None.
        mask: the user's mask for this case (kind "mask"), same shape as `reference`.
    """
    valid = np.ones(reference.shape, dtype=bool) if ignore_label is None else reference != ignore_label
    if spec.kind == "band":
        return band_mask((reference != 0) & valid, spec.width) & valid
    if spec.kind == "mask":
        if mask is None or mask.shape != reference.shape:
            raise ValueError("roi kind 'mask' needs a mask of the reference's shape")
        return (mask > 0) & valid
    return valid
