"""Training-schedule overrides as class attributes, for nnU-Net trainers."""

from __future__ import annotations

import torch

__all__ = ["SCHEDULE_ATTRIBUTES", "ScheduleMixin"]

#: nnU-Net instance attributes that a subclass may set as class attributes.
SCHEDULE_ATTRIBUTES = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch", "initial_lr")


class ScheduleMixin:
    """Let class attributes override nnU-Net's schedule, which `nnUNetTrainer.__init__` sets per instance.

    nnU-Net stores a trainer's `__init__` signature in its checkpoints, so hyperparameters are class
    attributes. Mix this in before an nnU-Net trainer and set any of `SCHEDULE_ATTRIBUTES`::

        class nnUNetTrainer_short(ScheduleMixin, nnUNetTrainer):
            num_epochs = 10
            num_iterations_per_epoch = 50
    """

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 (nnU-Net's own signature)
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        for name in SCHEDULE_ATTRIBUTES:
            value = getattr(type(self), name, None)
            if value is not None:
                setattr(self, name, value)
