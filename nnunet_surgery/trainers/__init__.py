"""nnU-Net trainers: surgical variants and the paper's baselines.

Use them from nnU-Net's commands with `export nnUNet_extTrainer=$(nnunet-surgery trainers-dir)`, or
subclass them (hyperparameters are class attributes)::

    from nnunet_surgery.trainers import SurgeryTrainer

    class SurgeryTrainer_n5_250epochs(SurgeryTrainer):
        surgery_exponent = 5
        num_epochs = 250
"""

from nnunet_surgery.trainers.base import LossRecipeTrainer
from nnunet_surgery.trainers.baselines import (
    BaselineTrainerCE,
    BaselineTrainerDice,
    BaselineTrainerDiceML1ACE,
    BaselineTrainerDicePlusPlus,
    BaselineTrainerTversky,
)
from nnunet_surgery.trainers.schedule import ScheduleMixin
from nnunet_surgery.trainers.surgical import SurgeryTrainer, SurgeryTrainerDice, SurgeryTrainerTversky

__all__ = [
    "TRAINERS",
    "BaselineTrainerCE",
    "BaselineTrainerDice",
    "BaselineTrainerDiceML1ACE",
    "BaselineTrainerDicePlusPlus",
    "BaselineTrainerTversky",
    "LossRecipeTrainer",
    "ScheduleMixin",
    "SurgeryTrainer",
    "SurgeryTrainerDice",
    "SurgeryTrainerTversky",
]

#: The released trainer classes (their names are public API: results folders and checkpoints use them).
TRAINERS = (
    SurgeryTrainer,
    SurgeryTrainerDice,
    SurgeryTrainerTversky,
    BaselineTrainerDice,
    BaselineTrainerTversky,
    BaselineTrainerDicePlusPlus,
    BaselineTrainerDiceML1ACE,
    BaselineTrainerCE,
)
