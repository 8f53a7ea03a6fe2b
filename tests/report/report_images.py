"""Writing label images for the report's tests (a module of its own: test modules import it by name,
which `conftest` cannot be, as every test folder has one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_image(path: Path, array_zyx: np.ndarray, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> None:
    """Write a (z, y, x) array as NIfTI; SimpleITKIO reads it back as (1, z, y, x)."""
    image = sitk.GetImageFromArray(np.asarray(array_zyx))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), True)
