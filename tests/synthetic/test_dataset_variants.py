"""The organ and region variants and anisotropic 3D: p* of a labelled organ, label frequencies against p*,
and the truth layout against nnU-Net's own label handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from nnunet_surgery.synthetic import generate_dataset
from nnunet_surgery.synthetic.cases import generate_case
from nnunet_surgery.synthetic.probability import (
    ORGAN_BORDER,
    class_probabilities,
    voxel_coordinates,
)
from nnunet_surgery.synthetic.sampling import variance_inflation

SPACING_3D = (2.5, 1.0, 1.0)


def test_labelled_organ_is_label_one_and_lesions_lie_inside_it() -> None:
    case = generate_case(3, "train", 0, (96, 96), 2, labelled_organ=True)
    organ = case.params.organ.evaluate(voxel_coordinates((96, 96)))
    # q_1 is the organ's soft indicator itself, q_2 = O * (union of lesions) <= q_1 exactly
    assert np.array_equal(case.cumulative[0], organ)
    assert np.all(case.cumulative[1] <= case.cumulative[0])
    assert ORGAN_BORDER[0] <= case.params.organ.border <= ORGAN_BORDER[1]
    # the same case without a labelled organ has the same lesions: q_2 / q_1 is its lesion map
    plain = generate_case(3, "train", 0, (96, 96), 1)
    assert plain.params.lesions == case.params.lesions
    inside = organ > 1e-3
    np.testing.assert_allclose(
        case.cumulative[1][inside] / organ[inside], plain.cumulative[0][inside], rtol=1e-12
    )
    # the organ is a large class with a soft border, the lesions a few percent of the image
    assert 0.3 < case.cumulative[0].mean() < 0.8
    assert 0.05 < np.mean((organ > 0.05) & (organ < 0.95)) < 0.3
    assert 0.002 < case.cumulative[1].mean() < 0.15
    assert set(np.unique(case.labels)) == {0, 1, 2}


def test_anisotropic_spacing_keeps_lesions_round_in_physical_units() -> None:
    case = generate_case(1, "test", 2, (24, 64, 64), 2, spacing=SPACING_3D, labelled_organ=True)
    assert case.params.spacing == SPACING_3D
    coords = voxel_coordinates((24, 64, 64), SPACING_3D)
    assert coords[0].ravel()[1] == 2.5 and coords[2].ravel()[1] == 1.0
    # the organ fills most of the physical extent along every axis (it would fill 1/2.5 of z otherwise)
    extent = np.array([24 * 2.5, 64.0, 64.0])
    assert np.all(np.asarray(case.params.organ.radii) > 0.7 * extent / 2)
    # with unit spacing the coordinates are voxel indices, as before the spacing option
    assert np.array_equal(voxel_coordinates((3, 4))[1].ravel(), np.arange(4.0))


@pytest.mark.parametrize(
    ("shape", "spacing"), [((96, 96), None), ((16, 48, 48), SPACING_3D)], ids=["2d", "3d-anisotropic"]
)
def test_label_frequencies_match_the_class_probabilities_within_binomial_bounds(
    shape: tuple[int, ...], spacing: tuple[float, ...] | None
) -> None:
    # For each class k of the 3-class organ dataset, pooled over the voxels of a bin of p*_k, the count S
    # of label == k has mean E = sum p*_k and, by Gebelein's theorem (see `sampling`), variance at most
    # D * sum p*_k (1 - p*_k), D = variance_inflation; cases are independent. |S - E| <= 4 sd per bin.
    inflation = variance_inflation(shape)
    edges = np.linspace(0.0, 1.0, 11)
    sums = np.zeros((4, 3, 10))  # hits, expected, variance, voxels per (class, bin)
    for index in range(256 if len(shape) == 2 else 96):
        case = generate_case(11, "train", index, shape, 2, spacing=spacing, labelled_organ=True)
        probabilities = class_probabilities(case.cumulative)
        for k in range(3):
            p = probabilities[k].ravel()
            y = (case.labels.ravel() == k).astype(np.float64)
            bins = np.clip(np.digitize(p, edges) - 1, 0, 9)
            for row, weights in enumerate((y, p, p * (1.0 - p), None)):
                sums[row, k] += np.bincount(bins, weights=weights, minlength=10)
    hits, expected, variance, voxels = sums
    populated = voxels > 50
    assert populated[:, [0, 9]].all() and populated[:, 1:9].sum() >= 20, "p* spans (0, 1) for every class"
    bound = 4.0 * np.sqrt(inflation * variance) + 1e-9
    assert np.all(np.abs(hits - expected) <= bound)
    # informative: pooled over the uncertain bins (0.1 <= p* < 0.9) of each class, the same bound pins the
    # frequency to within 0.05 of the mean p*
    middle = slice(1, 9)
    pooled_bound = 4.0 * np.sqrt(inflation * variance[:, middle].sum(axis=1))
    pooled_error = np.abs(hits[:, middle].sum(axis=1) - expected[:, middle].sum(axis=1))
    assert np.all(pooled_error <= pooled_bound)
    assert np.all(pooled_bound / voxels[:, middle].sum(axis=1) < 0.05)


@pytest.mark.parametrize("regions", [False, True], ids=["softmax", "regions"])
@pytest.mark.parametrize(
    ("shape", "spacing"), [((64, 64), None), ((16, 32, 40), SPACING_3D)], ids=["2d", "3d-anisotropic"]
)
def test_truth_has_the_layout_of_nnunet_predictions(
    tmp_path: Path, regions: bool, shape: tuple[int, ...], spacing: tuple[float, ...] | None
) -> None:
    folder = generate_dataset(
        tmp_path,
        992,
        "Organs",
        num_train=1,
        num_test=2,
        shape=shape,
        num_classes=2,
        regions=regions,
        labelled_organ=True,
        spacing=spacing,
    )
    meta = json.loads((folder / "dataset.json").read_text())
    if regions:
        assert meta["labels"] == {"background": 0, "organ": [1, 2], "lesion": 2}
        assert meta["regions_class_order"] == [1, 2]
    else:
        assert meta["labels"] == {"background": 0, "organ": 1, "lesion": 2}
    manager = LabelManager(meta["labels"], meta.get("regions_class_order"))
    assert meta["synthetic"]["truth"]["channels"] == (
        ["organ", "lesion"] if regions else ["background", "organ", "lesion"]
    )
    for case in ("test_000", "test_001"):
        seg, props = SimpleITKIO().read_seg(str(folder / "labelsTs" / f"{case}.nii.gz"))
        with np.load(folder / "truthTs" / f"{case}.npz") as npz:
            truth = npz["probabilities"]
        # nnU-Net's --save_probabilities layout: (channels of its label manager, *spatial as read)
        channels = len(manager.foreground_regions) if regions else manager.num_segmentation_heads
        assert truth.shape == (channels, *seg.shape[1:])
        if spacing is not None:
            assert props["spacing"] == list(spacing)
        # nnU-Net's own conversion of these probabilities to labels (argmax, or regions thresholded at 0.5
        # in regions_class_order) gives the label whose p* is largest, resp. #{k : P(label >= k) > 0.5}
        segmentation = manager.convert_probabilities_to_segmentation(truth)
        index = int(case[-1])
        generated = generate_case(0, "test", index, shape, 2, spacing=spacing, labelled_organ=True)
        cumulative = generated.cumulative.astype(np.float32).reshape(
            truth.shape[0] - (0 if regions else 1), *seg.shape[1:]
        )
        if regions:
            expected = np.sum(cumulative > 0.5, axis=0)
        else:
            expected = np.argmax(class_probabilities(cumulative), axis=0)
        assert np.array_equal(np.asarray(segmentation), expected)
        assert np.array_equal(seg[0], generated.labels.reshape(seg.shape[1:]))
