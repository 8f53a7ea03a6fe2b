"""`report --images --gallery K`: the cases chosen (derived from calibration.json's per-case ECEs), one
PNG per case with 1 + models panels (read back), the per-case ECE plots, and bad options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from report_cli import run_report_command


def _images(folders, rng) -> None:
    images = folders.root / "images"
    images.mkdir()
    for case, reference in folders.references.items():
        image = sitk.GetImageFromArray(rng.normal(size=reference.shape).astype(np.float32))
        sitk.WriteImage(image, str(images / f"{case}_0000.nii.gz"), True)
    return images


def _expected_cases(report: dict, k: int) -> list[str]:
    """The selection rule, re-derived from calibration.json: top-k (case, label) by ECE spread, then each
    model's worst, each case once."""
    models = list(report["models"])
    labels = list(report["models"][models[0]]["labels"])
    cases = sorted(report["roi_voxels"])
    ece = {
        (c, lab): [report["models"][m]["cases"][c][lab]["ece"] for m in models]
        for c in cases
        for lab in labels
    }
    pairs = [p for p in ece if all(np.isfinite(ece[p]))]
    chosen: list[str] = []
    for pair in sorted(pairs, key=lambda p: -(max(ece[p]) - min(ece[p])))[:k]:
        if pair[0] not in chosen:
            chosen.append(pair[0])
    for index in range(len(models)):
        worst = max(pairs, key=lambda p: ece[p][index])
        if worst[0] not in chosen:
            chosen.append(worst[0])
    return chosen


def _wide_panels(path) -> int:
    """Panels in a gallery PNG: runs of non-white columns wider than 40 px across the panels' middle row."""
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3]
    row = pixels[int(pixels.shape[0] * 0.55)]
    ink = np.any(row < 0.95, axis=-1)
    runs, length = [], 0
    for value in [*ink, False]:
        if value:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return sum(run > 40 for run in runs)


@pytest.mark.parametrize("kind", ["multiclass", "regions"])
def test_gallery_cases_and_panels(build, tmp_path, kind):
    folders = build(kind, shapes=((6, 40, 44), (5, 44, 40), (4, 40, 40)), n_models=2)
    images = _images(folders, np.random.default_rng(0))
    out = tmp_path / "report"
    code = run_report_command(
        folders, out, "--images", str(images), "--gallery", "1", "--bootstrap", "0", "-np", "1"
    )
    assert code == 0
    report = json.loads((out / "calibration.json").read_text())
    expected = _expected_cases(report, 1)
    assert sorted(p.stem for p in (out / "gallery").iterdir()) == sorted(expected)
    for case in expected:
        assert _wide_panels(out / "gallery" / f"{case}.png") == 1 + 2
    for label in report["models"]["model_0"]["labels"]:
        assert (out / f"case_ece_{label}.png").is_file()


def test_gallery_needs_images_and_a_count(build, tmp_path, capsys):
    folders = build("binary", n_models=1)
    out = tmp_path / "report"
    assert run_report_command(folders, out, "--gallery", "2") == 2
    assert "--gallery: needs --images" in capsys.readouterr().err
    assert run_report_command(folders, out, "--gallery", "-1", "--images", str(folders.gt)) == 2
    assert "--gallery" in capsys.readouterr().err
    assert run_report_command(folders, out, "--gallery", "1", "--images", str(tmp_path / "none")) == 2
    assert "none" in capsys.readouterr().err
    assert not out.exists()


def test_gallery_missing_image_writes_nothing(build, tmp_path, capsys):
    folders = build("binary", n_models=2)
    empty = tmp_path / "images"
    empty.mkdir()
    out = tmp_path / "report"
    assert run_report_command(folders, out, "--images", str(empty), "--gallery", "1", "--bootstrap", "0") == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "_0000.nii.gz" in error
    assert not out.exists()
