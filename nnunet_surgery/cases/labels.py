"""Labels and regions of a dataset.json, as the channels of nnU-Net's probability maps.

`label_layout` asks nnU-Net's own `LabelManager` which channels the network has and what each one
means; the result is a small picklable `LabelLayout` that worker processes use without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnunet_surgery.cases.errors import InputError

__all__ = ["LabelLayout", "label_layout"]


@dataclass(frozen=True)
class LabelLayout:
    """What the channels of a prediction mean.

    Attributes:
        names: name (dataset.json key) of each foreground label or region, in channel order.
        channels: probability channel of each entry of `names`.
        members: label values of each entry: one value for a label, several for a region.
        n_channels: channels nnU-Net writes: all labels incl. background (softmax), or one per region.
        region_based: sigmoid region channels (no background channel, no sum to 1).
        regions_class_order: nnU-Net's `regions_class_order` (region datasets only).
        ignore_label: label whose voxels are excluded from everything, or None.
        valid_values: label values a reference may hold (all labels, plus the ignore label).
    """

    names: tuple[str, ...]
    channels: tuple[int, ...]
    members: tuple[tuple[int, ...], ...]
    n_channels: int
    region_based: bool
    regions_class_order: tuple[int, ...] | None
    ignore_label: int | None
    valid_values: tuple[int, ...]

    @property
    def softmax(self) -> bool:
        """Whether the channels form a softmax (label datasets)."""
        return not self.region_based

    def segmentation(self, probabilities: np.ndarray) -> np.ndarray:
        """Hard segmentation as nnU-Net's `LabelManager.convert_probabilities_to_segmentation` makes it.

        Label datasets: argmax over channels (labels are the consecutive channel indices). Region datasets:
        start from 0, then for i, c in enumerate(regions_class_order) set c where channel i > 0.5.

        Args:
            probabilities: (C, ...) probabilities.
        """
        if not self.region_based:
            return probabilities.argmax(axis=0)
        segmentation = np.zeros(probabilities.shape[1:], dtype=np.uint16)
        for channel, value in enumerate(self.regions_class_order):
            segmentation[probabilities[channel] > 0.5] = value
        return segmentation

    def member_mask(self, index: int, segmentation: np.ndarray) -> np.ndarray:
        """Boolean mask of entry `index` (a label or region) in a label map."""
        members = self.members[index]
        if len(members) == 1:
            return segmentation == members[0]
        return np.isin(segmentation, members)


def _as_members(value: object) -> tuple[int, ...]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return tuple(int(v) for v in values)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_label_value(value: object) -> bool:
    """An int label, or a region: a non-empty list of ints (what nnU-Net's dataset.json holds)."""
    if isinstance(value, list):
        return bool(value) and all(_is_int(v) for v in value)
    return _is_int(value)


def label_layout(
    labels: dict, regions_class_order: list[int] | None, source: str = "dataset.json"
) -> LabelLayout:
    """Build the layout of a dataset.json `labels` dict with nnU-Net's `LabelManager`.

    Args:
        labels: dataset.json `labels` (name -> int, or name -> list of ints for a region).
        regions_class_order: dataset.json `regions_class_order` (required for region datasets).
        source: file named in error messages.

    Raises:
        InputError: labels nnU-Net would refuse, or labels that are not the consecutive 0..K-1 nnU-Net's
            argmax assumes.
    """
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    if not isinstance(labels, dict) or not labels:
        raise InputError(f"{source}: 'labels' must be a non-empty dict of name -> label value(s)")
    for name, value in labels.items():
        if not _is_label_value(value):
            raise InputError(
                f"{source}: label {name!r} must be an integer or a list of integers (a region), but is {value!r}"
            )
    if regions_class_order is not None and not (
        isinstance(regions_class_order, list) and all(_is_int(v) for v in regions_class_order)
    ):
        raise InputError(
            f"{source}: 'regions_class_order' must be a list of integers, but is {regions_class_order!r}"
        )
    try:
        manager = LabelManager(labels, regions_class_order)
        ignore_label = manager.ignore_label
        all_labels = [int(v) for v in manager.all_labels]
        if manager.has_regions:
            entries = [_as_members(r) for r in manager.foreground_regions]
        else:
            entries = [(int(v),) for v in manager.foreground_labels]
        n_channels = int(manager.num_segmentation_heads)
    except (AssertionError, RuntimeError, TypeError, ValueError) as error:
        raise InputError(f"{source}: nnU-Net refuses these labels ({error})") from None

    named = [
        (str(name), _as_members(value))
        for name, value in labels.items()
        if name != "ignore" and set(_as_members(value)) != {0}
    ]
    names = []
    for members in entries:
        matches = [name for name, value in named if set(value) == set(members)]
        if not matches:
            raise InputError(f"{source}: no label name for label value(s) {members}")
        names.append(matches[0])
    if len(set(names)) != len(names):
        raise InputError(f"{source}: label names must be unique, but got {names}")

    if manager.has_regions:
        channels = tuple(range(len(entries)))
        order = tuple(int(c) for c in regions_class_order)
    else:
        if all_labels != list(range(len(all_labels))):
            raise InputError(
                f"{source}: labels must be consecutive integers 0..K-1 (as nnU-Net requires), got {all_labels}"
            )
        channels = tuple(members[0] for members in entries)
        order = None
    valid = sorted(set(all_labels) | ({int(ignore_label)} if ignore_label is not None else set()))
    return LabelLayout(
        names=tuple(names),
        channels=channels,
        members=tuple(entries),
        n_channels=n_channels,
        region_based=bool(manager.has_regions),
        regions_class_order=order,
        ignore_label=None if ignore_label is None else int(ignore_label),
        valid_values=tuple(valid),
    )
