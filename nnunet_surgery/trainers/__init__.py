"""nnU-Net trainers: surgical variants and the paper's baselines (definitions: docs/losses.md).

Use them from nnU-Net's commands with `export nnUNet_extTrainer=$(nnunet-surgery trainers-dir)`, or
subclass them (hyperparameters are class attributes)::

    from nnunet_surgery.trainers import SurgeryTrainer

    class SurgeryTrainer_n5_250epochs(SurgeryTrainer):
        surgery_exponent = 5
        num_epochs = 250

Each released trainer is registered on its class statement (`registry.register`); `TRAINERS`, this
module's names and `__all__`, the `nnUNet_extTrainer` shim and the demo's choices derive from the registry.
"""

from __future__ import annotations

# imported for their registrations (TRAINERS' order is the registry's, whatever the import order)
from nnunet_surgery.trainers import baselines, surgical  # noqa: F401
from nnunet_surgery.trainers.base import LossRecipeTrainer
from nnunet_surgery.trainers.registry import FAMILIES, REGISTRY
from nnunet_surgery.trainers.schedule import ScheduleMixin

#: The released trainer classes, surgical first, then the baselines, each family in definition order
#: (`FAMILIES`). Their names are public API: nnU-Net's results folders and checkpoints carry them.
TRAINERS: tuple[type[LossRecipeTrainer], ...] = REGISTRY.classes()

globals().update({cls.__name__: cls for cls in TRAINERS})

__all__ = ["FAMILIES", "REGISTRY", "TRAINERS", "LossRecipeTrainer", "ScheduleMixin", *REGISTRY.names()]
