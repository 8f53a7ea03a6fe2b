"""One 2D slice of a case for the gallery: the image, the reference of one label, and each model's
probability of that label, through the largest connected component of the reference.

The slice is taken along the first spatial axis of the reader's order (z for 3D; 2D cases have one).
It is the slice with the most voxels of the reference's largest 3D connected component of the label;
without any reference voxel of the label, the slice with the largest summed probability of the first
model. Everything is read through the case layer's readers (npz never unpickled, shapes checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_surgery.cases.errors import InputError
from nnunet_surgery.cases.label_images import read_image, read_label_image
from nnunet_surgery.cases.labels import LabelLayout
from nnunet_surgery.cases.npz import check_probability_shape, load_probabilities

__all__ = ["CaseSlice", "read_case_slice", "slice_index"]


@dataclass(frozen=True)
class CaseSlice:
    """The 2D arrays one gallery figure shows.

    Attributes:
        index: slice along the first spatial axis.
        image: `(H, W)` float image (first channel).
        reference: `(H, W)` boolean reference of the label.
        probabilities: `(H, W)` probability of the label, one per model (an ensemble's mean).
    """

    index: int
    image: np.ndarray
    reference: np.ndarray
    probabilities: tuple[np.ndarray, ...]


def slice_index(reference: np.ndarray, fallback: np.ndarray) -> int:
    """Slice (first axis) with the most voxels of the largest connected component of `reference`
    `(Z, H, W)`; without foreground, the slice where `fallback` `(Z, H, W)` sums highest."""
    from scipy.ndimage import label

    components, count = label(reference)
    if count == 0:
        return int(np.argmax(fallback.reshape(fallback.shape[0], -1).sum(axis=1)))
    sizes = np.bincount(components.ravel())[1:]
    largest = components == (int(np.argmax(sizes)) + 1)
    return int(np.argmax(largest.reshape(largest.shape[0], -1).sum(axis=1)))


def read_case_slice(
    image: Path,
    reference: Path,
    predictions: tuple[tuple[Path, ...], ...],
    reader_class: type,
    layout: LabelLayout,
    label_index: int,
) -> CaseSlice:
    """Read one case and cut the slice of label `layout.names[label_index]`.

    Raises:
        InputError: unreadable files, or an image whose shape differs from the reference's.
    """
    labels = read_label_image(reader_class, reference)[0]
    picture = read_image(reader_class, image, shape=labels.shape)
    if picture.shape != labels.shape:
        raise InputError(
            f"{image}: image shape {picture.shape} does not match the reference's {labels.shape}"
        )
    mask = layout.member_mask(label_index, labels)
    channel = layout.channels[label_index]
    expected = (layout.n_channels, *labels.shape)

    def member(path: Path) -> np.ndarray:
        def check_shape(declared: tuple[int, ...]) -> None:
            check_probability_shape(path, declared, expected, layout)

        return load_probabilities(path, check_shape=check_shape)[channel]

    maps = [np.mean([member(path) for path in members], axis=0) for members in predictions]
    index = slice_index(mask, maps[0])
    return CaseSlice(
        index, picture[index], mask[index], tuple(np.asarray(m[index], dtype=np.float32) for m in maps)
    )
