"""One synthetic case in memory: parameters -> p* -> image and sampled label, from independent streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from nnunet_surgery.synthetic.images import render_image
from nnunet_surgery.synthetic.probability import (
    CaseParameters,
    cumulative_probabilities,
    sample_case_parameters,
    voxel_coordinates,
)
from nnunet_surgery.synthetic.sampling import coherent_uniform, sample_labels

__all__ = ["SPLITS", "SyntheticCase", "generate_case"]

# Stream keys of the splits: a test case does not depend on how many training cases there are.
SPLITS: dict[str, int] = {"train": 0, "test": 1}


@dataclass(frozen=True)
class SyntheticCase:
    """A generated case.

    Attributes:
        params: the random parameters that define p* and the image.
        cumulative: q_k = P(label >= k), float64 (K, *shape).
        image: float32 image of `shape`.
        labels: uint8 label map of `shape`, sampled from p*.
    """

    params: CaseParameters
    cumulative: np.ndarray
    image: np.ndarray
    labels: np.ndarray


def generate_case(
    seed: int,
    split: Literal["train", "test"],
    index: int,
    shape: tuple[int, ...],
    num_classes: int = 1,
    *,
    spacing: tuple[float, ...] | None = None,
    labelled_organ: bool = False,
) -> SyntheticCase:
    """Generate case `index` of `split`, deterministically from (seed, split, index).

    Parameters, image noise and label noise come from three independent child streams of
    `numpy.random.SeedSequence([seed, split key, index])`.

    Args:
        seed: dataset seed (>= 0).
        split: "train" or "test".
        index: case index within the split (>= 0).
        shape: spatial shape, 2 or 3 axes.
        num_classes: number K of nested foreground labels (>= 1; >= 2 with a labelled organ).
        spacing: voxel spacing in array axis order (None: 1 along every axis).
        labelled_organ: the organ is label 1 and the lesions are labels 2..K (`sample_case_parameters`).

    Returns:
        The case.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, but got {split!r}")
    params_seq, image_seq, label_seq = np.random.SeedSequence([seed, SPLITS[split], index]).spawn(3)
    shape = tuple(int(n) for n in shape)
    params = sample_case_parameters(
        np.random.default_rng(params_seq), shape, num_classes, spacing=spacing, labelled_organ=labelled_organ
    )
    coords = voxel_coordinates(shape, params.spacing)
    cumulative = cumulative_probabilities(params, coords)
    # the lesion levels carry the image's contrast; a labelled organ shows as tissue (`render_image`)
    lesions = cumulative[1:] if labelled_organ else cumulative
    image = render_image(params, lesions, np.random.default_rng(image_seq), coords)
    labels = sample_labels(cumulative, coherent_uniform(np.random.default_rng(label_seq), shape))
    return SyntheticCase(params=params, cumulative=cumulative, image=image, labels=labels)
