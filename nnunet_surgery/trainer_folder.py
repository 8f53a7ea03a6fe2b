"""Where this installation keeps the folder nnU-Net's `nnUNet_extTrainer` must point to (`trainers_dir`).

The registered trainers themselves are in `nnunet_surgery.trainers`; this module stays outside that
package because importing it loads torch and nnU-Net's trainer machinery (about 20 s on a cold start),
while `nnunet-surgery trainers-dir`, the demo and the tests only need the path.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["trainers_dir"]


def trainers_dir() -> Path:
    """The absolute path of the installed `trainers/` folder (editable and regular installs alike)."""
    import nnunet_surgery._ext_trainers as ext

    return Path(ext.__file__).resolve().parent
