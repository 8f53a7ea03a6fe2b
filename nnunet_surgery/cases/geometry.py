"""Images written with the geometry nnU-Net's reader found in a reference file (`maps`, `conformal apply`).

nnU-Net's writers (`write_seg`) restore the geometry of the file a case was read from, but cast to
integers. These writers do the same for float32 maps and for boolean masks (written as uint8), from the
properties the same reader returns (docs/maps.md#geometry):

* SimpleITK (`sitk_stuff`): spacing, origin and direction; 2D images lose the leading axis nnU-Net added;
  a reader that reoriented the image (`original_orientation`) has it oriented back, as nnU-Net does;
* nibabel (`nibabel_stuff`): the original affine (and nnU-Net's reorientation undone), axes transposed
  back from nnU-Net's (z, y, x) order;
* readers without geometry (PNG/BMP/TIFF via NaturalImage2DIO, Tiff3DIO): NIfTI with the spacing
  nnU-Net reports (2D: 1 x 1) and identity direction.

Arrays come in the reader's axis order `(*spatial)` = `(z, y, x)` (2D: `(1, y, x)`), as the npz holds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases.errors import InputError
from nnunet_surgery.cases.label_images import read_label_image_and_properties

__all__ = ["ReferenceGeometry", "label_file_name", "read_geometry"]


def label_file_name(name: str, suffix: str) -> str:
    """`<name><suffix>` for a file of one label or region, the dataset.json name's characters unsafe in file
    names (anything but letters, digits, `.`, `_` and `-`) replaced by `_` (`maps`, `conformal apply`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + suffix


def _voxels(data: np.ndarray) -> np.ndarray:
    """`data` as written: boolean masks as uint8 (0/1), everything else as float32."""
    return np.ascontiguousarray(data, dtype=np.uint8 if data.dtype == bool else np.float32)


def _sitk_writer(stuff: dict) -> Callable[[np.ndarray, Path], None]:
    import SimpleITK as sitk

    def write(array: np.ndarray, path: Path) -> None:
        data = array[0] if len(stuff["spacing"]) == 2 else array
        image = sitk.GetImageFromArray(_voxels(data))
        image.SetSpacing(stuff["spacing"])
        image.SetOrigin(stuff["origin"])
        image.SetDirection(stuff["direction"])
        if "original_orientation" in stuff:
            image = sitk.DICOMOrient(image, stuff["original_orientation"])
        sitk.WriteImage(image, str(path), True)

    return write


def _nibabel_writer(stuff: dict) -> Callable[[np.ndarray, Path], None]:
    import nibabel
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    def write(array: np.ndarray, path: Path) -> None:
        data = _voxels(array.transpose((2, 1, 0)))
        if "reoriented_affine" in stuff:
            image = nibabel.Nifti1Image(data, affine=stuff["reoriented_affine"])
            image = image.as_reoriented(
                ornt_transform(axcodes2ornt("RAS"), io_orientation(stuff["original_affine"]))
            )
        else:
            image = nibabel.Nifti1Image(data, affine=stuff["original_affine"])
        nibabel.save(image, str(path))

    return write


def _spacing_writer(spacing: tuple[float, ...]) -> Callable[[np.ndarray, Path], None]:
    import SimpleITK as sitk

    def write(array: np.ndarray, path: Path) -> None:
        two_d = array.shape[0] == 1 and len(spacing) == 3 and spacing[0] == 999
        data = array[0] if two_d else array
        image = sitk.GetImageFromArray(_voxels(data))
        image.SetSpacing([float(s) for s in (spacing[1:] if two_d else spacing)][::-1])
        sitk.WriteImage(image, str(path), True)

    return write


@dataclass(frozen=True)
class ReferenceGeometry:
    """The reader's view of a reference file: its array shape and how to write a float map like it.

    Attributes:
        path: the reference file.
        shape: `(*spatial)` in the reader's axis order.
        write: `write(array, path)` writes a `(*spatial)` float array (as float32) or boolean mask (as
            uint8) as a compressed image with the reference's geometry (the file name decides the format:
            use `.nii.gz`).
    """

    path: Path
    shape: tuple[int, ...]
    write: Callable[[np.ndarray, Path], None]


def read_geometry(reader_class: type, path: str | Path) -> ReferenceGeometry:
    """Read a reference (segmentation or image) with nnU-Net's reader and keep its geometry.

    Raises:
        InputError: the reader fails on the file, or returns no geometry this module can write.
    """
    path = Path(path)
    array, properties = read_label_image_and_properties(reader_class, path)  # header-checked first
    shape = tuple(int(n) for n in np.shape(array)[1:])
    if "sitk_stuff" in properties:
        write = _sitk_writer(properties["sitk_stuff"])
    elif "nibabel_stuff" in properties:
        write = _nibabel_writer(properties["nibabel_stuff"])
    elif "spacing" in properties:
        write = _spacing_writer(tuple(properties["spacing"]))
    else:
        raise InputError(f"{path}: {reader_class.__name__} gives no geometry (spacing) to write maps with")
    return ReferenceGeometry(path, shape, write)
