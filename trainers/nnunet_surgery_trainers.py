"""nnunet-surgery's trainers, exposed to nnU-Net's trainer lookup (`nnUNet_extTrainer`).

nnU-Net imports this module and takes `getattr(module, trainer_name)`, so its public names are exactly
the registered trainers (`nnunet_surgery.trainers.TRAINERS`) and nothing else: no
`from __future__ import annotations`, which would add the name `annotations`.
"""

from nnunet_surgery.trainers import TRAINERS as _TRAINERS

__all__ = [cls.__name__ for cls in _TRAINERS]
globals().update(zip(__all__, _TRAINERS))
del _TRAINERS
