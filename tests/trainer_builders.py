"""Building a trainer in this process, as nnU-Net's `nnUNetv2_train` would, on one of the conftest datasets,
and the deep-supervision inputs its loss receives."""

from __future__ import annotations

import pytest
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from batchgeneratorsv2.transforms.utils.seg_to_regions import ConvertSegmentationToRegionsTransform
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


def make_trainer(
    cls: type,
    dataset,
    monkeypatch: pytest.MonkeyPatch,
    dataset_json: dict | None = None,
    device: torch.device | None = None,
) -> nnUNetTrainer:
    """`cls` on `dataset` (a conftest `NnUNetDataset`), configuration `2d`, fold 0, on `device` (the CPU).

    Args:
        dataset_json: in place of the dataset's own (say, with an ignore label added).
    """
    for key, value in dataset.env().items():
        monkeypatch.setenv(key, value)
    dataset_json = dataset.dataset_json() if dataset_json is None else dataset_json
    return cls(dataset.plans(), "2d", 0, dataset_json, device or torch.device("cpu"))


def with_ignore_label(dataset_json: dict, ignore: bool) -> dict:
    """`dataset_json` with an ignore label added (`ignore`) or as it is."""
    labels = dict(dataset_json["labels"])
    if ignore:  # nnU-Net: the ignore label is an int, the highest label + 1
        plain = [v for k, v in labels.items() if k != "background"]
        flat = [x for v in plain for x in (v if isinstance(v, list) else [v])]
        labels["ignore"] = max(flat) + 1
    return {**dataset_json, "labels": labels}


def nnunet_targets(
    trainer: nnUNetTrainer, label_map: torch.Tensor, map_dtype: torch.dtype
) -> list[torch.Tensor]:
    """The deep-supervision targets nnU-Net's training transforms make of a batch of label maps `(b, 1, *s)`:
    regions (bool, ignore channel last) for region-based datasets, else label maps of `map_dtype`."""
    manager = trainer.label_manager
    transforms = []
    if manager.has_regions:
        regions = list(manager.foreground_regions)
        if manager.ignore_label is not None:
            regions.append(manager.ignore_label)
        transforms.append(ConvertSegmentationToRegionsTransform(regions=regions, channel_in_seg=0))
    transforms.append(DownsampleSegForDSTransform(ds_scales=trainer._get_deep_supervision_scales()))
    per_case = []
    for seg in label_map.to(map_dtype):
        for transform in transforms:
            seg = transform(segmentation=seg)["segmentation"]
        per_case.append(seg)
    return [torch.stack(level) for level in zip(*per_case)]


def deep_supervision_inputs(
    trainer: nnUNetTrainer,
    map_dtype: torch.dtype,
    logits_dtype: torch.dtype,
    device: torch.device | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Random logits `(2, heads, 32, 32)` (and downsampled) of `logits_dtype` for every deep-supervision output,
    leaves that require grad, and the targets nnU-Net's pipeline makes of random label maps (`nnunet_targets`),
    ignore label included where the dataset has one; on `device` (default: the CPU)."""
    device = device or torch.device("cpu")
    manager = trainer.label_manager
    gen = torch.Generator().manual_seed(0)
    n_labels = len(manager.all_labels) + (manager.ignore_label is not None)
    label_map = torch.randint(0, n_labels, (2, 1, 32, 32), generator=gen)
    targets = [t.to(device) for t in nnunet_targets(trainer, label_map, map_dtype)]
    channels = manager.num_segmentation_heads
    logits = [
        (2 * torch.randn(2, channels, *t.shape[2:], generator=gen)).to(device, logits_dtype).requires_grad_()
        for t in targets
    ]
    return logits, targets
