"""The demo's built-in synthetic datasets (`nnunet_surgery.synthetic.generate_dataset`) and their default
sizes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DATASETS", "SHAPE_2D", "SHAPE_3D", "SPACING_3D", "DatasetVariant"]


@dataclass(frozen=True)
class DatasetVariant:
    """One built-in synthetic dataset (`nnunet_surgery.synthetic.generate_dataset` arguments).

    Attributes:
        dataset_id: nnU-Net dataset id of its 2D version; the 3D version adds 3.
        name: dataset name of its 2D version; the 3D version appends "3D".
        num_classes: foreground labels K.
        regions: region-based (one sigmoid channel per nested region, as BraTS).
        labelled_organ: the organ is label 1, the lesions inside it label 2.
    """

    dataset_id: int
    name: str
    num_classes: int
    regions: bool
    labelled_organ: bool


#: The demo's datasets: binary lesions (the default), an organ with lesions (3-class softmax), and the same
#: as two nested regions (organ = {1, 2}, lesion = {2}, `regions_class_order`).
DATASETS: dict[str, DatasetVariant] = {
    "lesions": DatasetVariant(991, "SyntheticLesions", 1, regions=False, labelled_organ=False),
    "organs": DatasetVariant(992, "SyntheticOrgans", 2, regions=False, labelled_organ=True),
    "regions": DatasetVariant(993, "SyntheticRegions", 2, regions=True, labelled_organ=True),
}
#: Default image size of the 2D datasets and of the 3D ones (z, y, x), and the 3D voxel spacing: thick
#: slices, as most clinical 3D scans; nnU-Net plans these as its 3d_fullres configuration.
SHAPE_2D = (96, 96)
SHAPE_3D = (16, 32, 32)
SPACING_3D = (2.5, 1.0, 1.0)
