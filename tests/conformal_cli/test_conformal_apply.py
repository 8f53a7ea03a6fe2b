"""`nnunet-surgery conformal apply`: every mask is {p >= t} of the fitted threshold, voxel for voxel, written
in the geometry of the reference (spacing, origin, direction), the folder whole, never over an existing one
without --overwrite."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conformal_folders import fit_predictor, run_conformal

from nnunet_surgery.cases import load_dataset_json


@pytest.mark.parametrize("kind", ["labels", "regions"])
@pytest.mark.parametrize("processes", ["1", "2"])
def test_masks_are_p_at_least_t_in_the_references_geometry(conformal_dataset, tmp_path, kind, processes):
    dataset = conformal_dataset(kind)
    predictor = tmp_path / "conformal.json"
    content = fit_predictor(dataset, predictor, "0.15")
    out = tmp_path / "masks"
    assert run_conformal("apply", str(predictor), str(dataset.test), "-o", str(out), "-np", processes) == 0
    layout = load_dataset_json(dataset.dataset_json).layout
    assert sorted(p.name for p in out.iterdir()) == dataset.test_cases
    for case in dataset.test_cases:
        reference = sitk.ReadImage(str(dataset.gt / f"{case}.nii.gz"))
        assert sorted(p.name for p in (out / case).iterdir()) == sorted(
            f"{name}_mask.nii.gz" for name in layout.names
        )
        for name, channel in zip(layout.names, layout.channels, strict=True):
            image = sitk.ReadImage(str(out / case / f"{name}_mask.nii.gz"))
            assert image.GetSpacing() == pytest.approx(reference.GetSpacing())
            assert image.GetOrigin() == pytest.approx(reference.GetOrigin())
            assert image.GetDirection() == pytest.approx(reference.GetDirection())
            assert image.GetPixelID() == sitk.sitkUInt8
            expected = dataset.probabilities[case][channel] >= np.float32(
                content["labels"][name]["threshold"]
            )
            np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected.astype(np.uint8))
            assert 0 < expected.sum() < expected.size  # a mask that neither is empty nor takes every voxel


def test_an_existing_output_is_kept_unless_overwrite(conformal_dataset, tmp_path, capsys):
    dataset = conformal_dataset("labels", n_test=2)
    predictor = tmp_path / "conformal.json"
    fit_predictor(dataset, predictor, "0.15")
    out = tmp_path / "masks"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_conformal("apply", str(predictor), str(dataset.test), "-o", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert run_conformal("apply", str(predictor), str(dataset.test), "-o", str(out), "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == dataset.test_cases
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
