"""Building a trainer in this process, as nnU-Net's `nnUNetv2_train` would, on one of the conftest datasets."""

from __future__ import annotations

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


def make_trainer(
    cls: type, dataset, monkeypatch: pytest.MonkeyPatch, dataset_json: dict | None = None
) -> nnUNetTrainer:
    """`cls` on `dataset` (a conftest `NnUNetDataset`), configuration `2d`, fold 0, on the CPU.

    Args:
        dataset_json: in place of the dataset's own (say, with an ignore label added).
    """
    for key, value in dataset.env().items():
        monkeypatch.setenv(key, value)
    dataset_json = dataset.dataset_json() if dataset_json is None else dataset_json
    return cls(dataset.plans(), "2d", 0, dataset_json, torch.device("cpu"))
