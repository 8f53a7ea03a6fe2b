"""The PNG preview renders image, true p* and sampled label of a generated dataset."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

from nnunet_surgery.synthetic import generate_dataset, render_preview


@pytest.mark.parametrize(("shape", "num_classes", "regions"), [((64, 64), 1, False), ((20, 32, 32), 2, True)])
def test_preview_writes_a_png_with_one_row_per_case(
    tmp_path: Path, shape: tuple[int, ...], num_classes: int, regions: bool
) -> None:
    folder = generate_dataset(
        tmp_path, num_train=1, num_test=3, shape=shape, num_classes=num_classes, regions=regions
    )
    png = render_preview(folder, tmp_path / "out" / "preview.png", num_cases=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    columns = 3 if num_classes == 1 else 4
    assert (height, width) == (2 * 300, columns * 320)


def test_preview_needs_test_cases(tmp_path: Path) -> None:
    folder = generate_dataset(tmp_path, num_train=1, num_test=0, shape=(32, 32))
    with pytest.raises(FileNotFoundError, match=r"truthTs holds no \.npz"):
        render_preview(folder, tmp_path / "preview.png")
