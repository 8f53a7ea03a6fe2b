"""Post-hoc recalibration: temperature or vector scaling fitted on nnU-Net's cross-validation outputs.

`fit` (inputs -> exact Newton passes -> `Calibrator`), `apply` (a folder of probability maps through a
`Calibrator`), with the math in `logits` (logits recovered from saved probabilities), `objective` (NLL,
gradient and Hessian) and `newton` (the optimiser). See docs/recalibration.md.
"""

from __future__ import annotations

from nnunet_surgery.recalibration.calibrator import Calibrator, FitSummary, read_calibrator
from nnunet_surgery.recalibration.objective import METHODS, NewtonStats, Parameters, newton_stats

__all__ = [
    "METHODS",
    "Calibrator",
    "FitSummary",
    "NewtonStats",
    "Parameters",
    "newton_stats",
    "read_calibrator",
]
