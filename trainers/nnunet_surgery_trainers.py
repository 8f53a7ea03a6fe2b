"""nnunet-surgery's trainers, exposed to nnU-Net's trainer lookup (`nnUNet_extTrainer`)."""

from nnunet_surgery.trainers import (  # noqa: F401
    BaselineTrainerCE,
    BaselineTrainerDice,
    BaselineTrainerDiceML1ACE,
    BaselineTrainerDicePlusPlus,
    BaselineTrainerTversky,
    SurgeryTrainer,
    SurgeryTrainerDice,
    SurgeryTrainerTversky,
)
