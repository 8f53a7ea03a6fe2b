"""ROI parsing, band = foreground dilated by Euclidean distance D (checked by brute force), ignore excluded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnunet_surgery.cases.roi import RoiSpec, band_mask, parse_roi, roi_mask


def test_parse_roi_forms_and_round_trip():
    assert parse_roi("all") == RoiSpec()
    assert parse_roi("band:3") == RoiSpec(kind="band", width=3)
    assert parse_roi("mask:/data/body") == RoiSpec(kind="mask", folder=Path("/data/body"))
    for text in ("all", "band:0", "band:5", "mask:/x/y"):
        assert str(parse_roi(text)) == text
    for bad in ("band", "band:-2", "band:x", "mask:", "foreground", "all:1"):
        with pytest.raises(ValueError, match=r"expected|band width"):
            parse_roi(bad)


@pytest.mark.parametrize("width", [0, 1, 2, 3])
def test_band_is_every_voxel_within_distance_of_the_foreground(width):
    rng = np.random.default_rng(width)
    foreground = np.zeros((6, 15, 13), dtype=bool)
    foreground[rng.integers(0, 6, 4), rng.integers(0, 15, 4), rng.integers(0, 13, 4)] = True
    foreground[0, 0, 0] = True  # touches the border
    points = np.argwhere(foreground)
    grid = np.stack(np.meshgrid(*map(np.arange, foreground.shape), indexing="ij"), axis=-1)
    distance = np.sqrt(((grid[..., None, :] - points) ** 2).sum(-1)).min(-1)
    assert np.array_equal(band_mask(foreground, width), distance <= width)


def test_band_of_empty_foreground_is_empty_and_2d_as_3d_works():
    assert not band_mask(np.zeros((1, 5, 5), dtype=bool), 2).any()
    foreground = np.zeros((1, 7, 7), dtype=bool)
    foreground[0, 3, 3] = True
    assert band_mask(foreground, 1).sum() == 5


def test_roi_mask_excludes_the_ignore_label():
    reference = np.array([[[0, 1, 2, 0, 0, 0]]])
    assert roi_mask(reference, RoiSpec(), 2).tolist() == [[[True, True, False, True, True, True]]]
    assert roi_mask(reference, RoiSpec(kind="band", width=1), 2).tolist() == [
        [[True, True, False, False, False, False]]
    ]
    mask = np.array([[[1, 1, 1, 0, 0, 1]]])
    assert roi_mask(reference, RoiSpec(kind="mask", folder=Path("m")), 2, mask).tolist() == [
        [[True, True, False, False, False, True]]
    ]
