"""Label layout from dataset.json via nnU-Net's LabelManager; hard segmentation identical to nnU-Net's."""

from __future__ import annotations

import numpy as np
import pytest

from nnunet_surgery.cases import label_layout
from nnunet_surgery.report import ReportError


def test_label_dataset_layout_follows_label_values_not_dict_order():
    layout = label_layout({"background": 0, "lesion": 2, "liver": 1}, None)
    assert layout.names == ("liver", "lesion") and layout.channels == (1, 2)
    assert layout.n_channels == 3 and layout.softmax and layout.ignore_label is None


def test_region_dataset_layout_and_ignore_label():
    layout = label_layout({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}, [1, 2, 3])
    assert layout.names == ("whole", "core", "enhancing") and layout.channels == (0, 1, 2)
    assert layout.members == ((1, 2, 3), (2, 3), (3,)) and layout.n_channels == 3 and layout.region_based
    ignore = label_layout({"background": 0, "organ": 1, "ignore": 2}, None)
    assert ignore.names == ("organ",) and ignore.ignore_label == 2 and ignore.valid_values == (0, 1, 2)


@pytest.mark.parametrize(
    ("labels", "order"),
    [
        ({"background": 0, "a": 1, "b": 2}, None),
        ({"background": 0, "whole": [1, 2], "core": 2, "x": [2, 3]}, [1, 2, 3]),
    ],
)
def test_segmentation_is_nnunets(labels, order):
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    layout = label_layout(labels, order)
    rng = np.random.default_rng(0)
    p = rng.random((layout.n_channels, 3, 7, 5)).astype(np.float32)
    if layout.softmax:
        p /= p.sum(axis=0)
    expected = np.asarray(LabelManager(labels, order).convert_probabilities_to_segmentation(p))
    assert np.array_equal(layout.segmentation(p), expected)


@pytest.mark.parametrize(
    ("labels", "order", "needle"),
    [
        ({"background": 0, "a": 1, "b": 3}, None, "consecutive"),
        ({"a": 1}, None, "refuses"),
        ({"background": 0, "whole": [1, 2], "core": 2}, None, "refuses"),
        ({}, None, "non-empty"),
    ],
)
def test_labels_nnunet_cannot_use_are_refused(labels, order, needle):
    with pytest.raises(ReportError, match=needle):
        label_layout(labels, order, source="ds.json")


@pytest.mark.parametrize("value", [1.5, "1", True, None, [], [1.0], [[1]], {"a": 1}])
def test_label_values_must_be_integers_or_lists_of_integers(value):
    """nnU-Net's dataset.json holds ints (labels) or lists of ints (regions); anything else is refused by
    name instead of being silently converted (1.5 -> 1, True -> 1)."""
    from nnunet_surgery.cases import InputError, label_layout

    with pytest.raises(
        InputError, match=r"^dataset.json: label 'a' must be an integer or a list of integers"
    ):
        label_layout({"background": 0, "a": value}, None)


def test_regions_class_order_must_be_integers():
    from nnunet_surgery.cases import InputError, label_layout

    with pytest.raises(InputError, match="'regions_class_order' must be a list of integers"):
        label_layout({"background": 0, "a": [1, 2], "b": 2}, [1.5, 2])
