"""Write the synthetic lesion dataset as an nnU-Net v2 raw dataset, with the test cases' true p*.

Layout of `raw_root/DatasetXXX_Name`:

    dataset.json               nnU-Net's, plus a "synthetic" key (seed, version, model, truth layout)
    imagesTr/train_000_0000.nii.gz, labelsTr/train_000.nii.gz, ...
    imagesTs/test_000_0000.nii.gz,  labelsTs/test_000.nii.gz,  truthTs/test_000.npz, ...

`truthTs/CASE.npz` holds `probabilities` (float32) in the layout `nnUNetv2_predict --save_probabilities`
writes for that case: (C, *spatial) with spatial the shape nnU-Net's SimpleITKIO reads for the label
file without its channel axis, i.e. (C, 1, H, W) for 2D cases, which are stored as a single slice
with spacing (999, 1, 1) (z, y, x) like nnU-Net's own 2D conversions. For a label dataset C = K + 1,
background first, P(label = k) (channels sum to 1); for a region dataset one channel per region in
the order of dataset.json's labels, region k = {label >= k}, with probability q_k = P(label >= k).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

from nnunet_surgery.cases.staging import staging_folder
from nnunet_surgery.synthetic.cases import generate_case
from nnunet_surgery.synthetic.probability import class_probabilities

__all__ = [
    "CHANNEL_NAME",
    "GENERATOR_VERSION",
    "TWO_D_SLICE_SPACING",
    "class_names",
    "generate_dataset",
    "truth_channel_names",
]

GENERATOR_VERSION = "1.0"
CHANNEL_NAME = "synthetic MR"
# Spacing of the single slice axis of 2D cases (nnU-Net's convention for 2D data).
TWO_D_SLICE_SPACING = 999.0
_FILE_ENDING = ".nii.gz"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

_DESCRIPTION = (
    "Synthetic lesions with known voxel-wise label probabilities p*. Each case is an organ (soft ellipse/"
    "ellipsoid) with 1-6 lesions (soft ellipsoids, 0.3-3 % of the image each, logistic borders of "
    "0.4-1 voxel, 30 % of them faint with interior probability 0.3-0.7); level k >= 2 labels are nested "
    "cores inside their lesion. With a labelled organ the organ (border 1-2.5 voxels) is label 1 and the "
    "lesions, inside it, label 2. Labels are sampled so that P(label >= k) = q_k exactly, by thresholding a "
    "spatially smooth uniform noise field; images are bias * (tissue + contrast * q) + Gaussian noise "
    "from an independent stream, so they carry p* but not the sampled label."
)


def class_names(num_classes: int, labelled_organ: bool = False) -> list[str]:
    """Names of the nested foreground levels 1..K: lesion, core, core3, core4, ... (organ first if labelled)."""
    organ = ["organ"] if labelled_organ else []
    levels = num_classes - len(organ)
    return [*organ, *(["lesion", "core"][k] if k < 2 else f"core{k + 1}" for k in range(levels))]


def truth_channel_names(num_classes: int, regions: bool, labelled_organ: bool = False) -> list[str]:
    """Names of the channels of `truthTs/CASE.npz` (background first unless region-based)."""
    names = class_names(num_classes, labelled_organ)
    return names if regions else ["background", *names]


def _labels_json(
    num_classes: int, regions: bool, labelled_organ: bool
) -> tuple[dict[str, int | tuple[int, ...]], list[int] | None]:
    names = class_names(num_classes, labelled_organ)
    labels: dict[str, int | tuple[int, ...]] = {"background": 0}
    if not regions:
        labels.update({name: k + 1 for k, name in enumerate(names)})
        return labels, None
    for k, name in enumerate(names):
        members = tuple(range(k + 1, num_classes + 1))
        labels[name] = members if len(members) > 1 else members[0]
    return labels, list(range(1, num_classes + 1))


@dataclass(frozen=True)
class _Spec:
    """What determines a generated dataset's cases (see `generate_dataset` for each field)."""

    num_train: int
    num_test: int
    shape: tuple[int, ...]
    seed: int
    num_classes: int
    regions: bool
    labelled_organ: bool
    spacing: tuple[float, ...] | None


def _validate(dataset_id: int, name: str, spec: _Spec) -> _Spec:
    """`spec` with its shape as a tuple of ints, or ValueError naming the argument out of range."""
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise ValueError(f"dataset_id must be an integer in 1..999, but got {dataset_id!r}")
    if not isinstance(name, str) or _NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"name must be letters, digits, '_' or '-' (not starting with '_'/'-'), but got {name!r}"
        )
    if spec.num_train < 1:
        raise ValueError(f"num_train must be >= 1, but got {spec.num_train}")
    if spec.num_test < 0:
        raise ValueError(f"num_test must be >= 0, but got {spec.num_test}")
    shape = tuple(spec.shape)
    if len(shape) not in (2, 3) or not all(isinstance(n, (int, np.integer)) and n >= 16 for n in shape):
        raise ValueError(f"shape must be 2 or 3 integers >= 16, but got {shape!r}")
    if spec.seed < 0:
        raise ValueError(f"seed must be >= 0, but got {spec.seed}")
    if spec.num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, but got {spec.num_classes}")
    if spec.regions and spec.num_classes < 2:
        raise ValueError(
            f"regions=True needs num_classes >= 2 (nested regions), but got num_classes={spec.num_classes}"
        )
    if spec.labelled_organ and spec.num_classes < 2:
        raise ValueError(
            f"labelled_organ=True needs num_classes >= 2 (the organ and a lesion), but got {spec.num_classes}"
        )
    spacing = spec.spacing
    if spacing is not None:
        spacing = tuple(spacing)
        if len(spacing) != len(shape) or not all(
            isinstance(v, (int, float, np.number)) and math.isfinite(v) and v > 0 for v in spacing
        ):
            raise ValueError(
                f"spacing must be {len(shape)} positive numbers (one per axis), but got {spacing!r}"
            )
        spacing = tuple(float(v) for v in spacing)
    return replace(spec, shape=tuple(int(n) for n in shape), spacing=spacing)


def _geometry(
    shape: tuple[int, ...], spacing: tuple[float, ...] | None
) -> tuple[tuple[int, ...], dict[str, tuple[float, ...]]]:
    """Stored array shape (z, y, x) and SimpleITK geometry (x, y, z order) of a case."""
    stored = (1, *shape) if len(shape) == 2 else shape
    step = (1.0,) * len(shape) if spacing is None else spacing
    spacing = (*step[::-1], TWO_D_SLICE_SPACING) if len(shape) == 2 else tuple(step[::-1])
    direction = tuple(float(v) for v in np.eye(3).ravel())
    return stored, {"spacing": spacing, "origin": (0.0, 0.0, 0.0), "direction": direction}


def _write_image(image: np.ndarray, path: Path, geometry: dict[str, tuple[float, ...]]) -> None:
    # SimpleITKIO only writes segmentations (cast to uint8); images get the same geometry here.
    itk_image = sitk.GetImageFromArray(image.astype(np.float32, copy=False))
    itk_image.SetSpacing(geometry["spacing"])
    itk_image.SetOrigin(geometry["origin"])
    itk_image.SetDirection(geometry["direction"])
    sitk.WriteImage(itk_image, str(path), True)


def _write_case(
    folder: Path,
    split: Literal["train", "test"],
    index: int,
    *,
    seed: int,
    shape: tuple[int, ...],
    num_classes: int,
    regions: bool,
    labelled_organ: bool,
    spacing: tuple[float, ...] | None,
) -> str:
    case = generate_case(
        seed, split, index, shape, num_classes, spacing=spacing, labelled_organ=labelled_organ
    )
    identifier = f"{split}_{index:03d}"
    suffix = "Tr" if split == "train" else "Ts"
    stored, geometry = _geometry(shape, spacing)
    _write_image(
        case.image.reshape(stored), folder / f"images{suffix}" / f"{identifier}_0000{_FILE_ENDING}", geometry
    )
    SimpleITKIO().write_seg(
        case.labels.reshape(stored),
        str(folder / f"labels{suffix}" / f"{identifier}{_FILE_ENDING}"),
        {"sitk_stuff": geometry},
    )
    if split == "test":
        truth = case.cumulative if regions else class_probabilities(case.cumulative)
        truth = truth.astype(np.float32).reshape((truth.shape[0], *stored))
        np.savez_compressed(folder / "truthTs" / f"{identifier}.npz", probabilities=truth)
    return identifier


def _build(folder: Path, *, dataset_name: str, spec: _Spec) -> None:
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "truthTs"):
        (folder / sub).mkdir()
    options = {
        "seed": spec.seed,
        "shape": spec.shape,
        "num_classes": spec.num_classes,
        "regions": spec.regions,
        "labelled_organ": spec.labelled_organ,
        "spacing": spec.spacing,
    }
    train_ids = [_write_case(folder, "train", i, **options) for i in range(spec.num_train)]
    test_ids = [_write_case(folder, "test", i, **options) for i in range(spec.num_test)]
    labels, regions_class_order = _labels_json(spec.num_classes, spec.regions, spec.labelled_organ)
    generate_dataset_json(
        str(folder),
        channel_names={0: CHANNEL_NAME},
        labels=labels,
        num_training_cases=spec.num_train,
        file_ending=_FILE_ENDING,
        regions_class_order=regions_class_order,
        dataset_name=dataset_name,
        description=_DESCRIPTION,
        license="CC0-1.0 (synthetic data)",
        converted_by="nnunet_surgery.synthetic",
        synthetic={
            "generator": "nnunet_surgery.synthetic",
            "version": GENERATOR_VERSION,
            "seed": spec.seed,
            "shape": list(spec.shape),
            "num_classes": spec.num_classes,
            "regions": spec.regions,
            "labelled_organ": spec.labelled_organ,
            "spacing": list(spec.spacing or (1.0,) * len(spec.shape)),
            "training_cases": train_ids,
            "test_cases": test_ids,
            "truth": {
                "folder": "truthTs",
                "key": "probabilities",
                "dtype": "float32",
                "layout": "(C, *spatial) as nnUNetv2_predict --save_probabilities writes it",
                "channels": truth_channel_names(spec.num_classes, spec.regions, spec.labelled_organ),
                "meaning": "P(region) per region" if spec.regions else "P(label = k), background first",
            },
            "description": _DESCRIPTION,
        },
    )


def generate_dataset(
    raw_root: Path,
    dataset_id: int = 991,
    name: str = "SyntheticLesions",
    *,
    num_train: int = 40,
    num_test: int = 10,
    shape: tuple[int, ...] = (128, 128),
    seed: int = 0,
    num_classes: int = 1,
    regions: bool = False,
    labelled_organ: bool = False,
    spacing: tuple[float, ...] | None = None,
    overwrite: bool = False,
) -> Path:
    """Generate the synthetic lesion dataset as an nnU-Net raw dataset (see the module docstring).

    Deterministic given the arguments. The dataset is built in a hidden folder beside the target and
    renamed into place, so an error leaves no half-written dataset.

    Args:
        raw_root: nnU-Net raw folder (`nnUNet_raw`); created if missing.
        dataset_id: nnU-Net dataset id, 1..999.
        name: dataset name; the folder is `DatasetXXX_name`.
        num_train: number of training cases (imagesTr/labelsTr).
        num_test: number of test cases (imagesTs/labelsTs/truthTs).
        shape: spatial shape, (H, W) for 2D or (D, H, W) for 3D, each >= 16.
        seed: dataset seed (>= 0).
        num_classes: number K of nested foreground labels (1 = binary lesion; 2 = lesion + core; ...).
        regions: write a region-based dataset (regions {1..K} ⊃ {2..K} ⊃ ...); needs K >= 2.
        labelled_organ: the organ is label 1 and the (nested) lesion levels are labels 2..K (K >= 2).
        spacing: voxel spacing in array axis order (None: 1 along every axis); the geometry is
            physical, so an anisotropic spacing keeps lesions round in millimetres.
        overwrite: replace an existing dataset folder of the same id and name.

    Returns:
        The dataset folder `raw_root/DatasetXXX_name`.

    Raises:
        ValueError: an argument is out of range, or another dataset uses `dataset_id`.
        FileExistsError: the dataset folder exists and `overwrite` is False.
    """
    spec = _validate(
        dataset_id,
        name,
        _Spec(num_train, num_test, shape, seed, num_classes, regions, labelled_organ, spacing),
    )
    raw_root = Path(raw_root)
    raw_root.mkdir(parents=True, exist_ok=True)
    folder = raw_root / f"Dataset{dataset_id:03d}_{name}"
    others = sorted(p.name for p in raw_root.glob(f"Dataset{dataset_id:03d}_*") if p != folder)
    if others:
        raise ValueError(
            f"dataset_id {dataset_id} is already used by {raw_root / others[0]}; expected a free id"
        )
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True to replace it")

    with staging_folder(folder) as staging:
        _build(staging, dataset_name=folder.name, spec=spec)
    return folder
