"""The room of `nnunet-surgery conformal` (floor 3, on `cases/` and `conformal/` only; docs/conformal.md).

document  CONFORMAL.json read through the case layer's JSON reader, checked by `conformal.document`
fit       `fit_conformal`: the two streamed passes of conformal risk control over nnU-Net's validation cases
apply     `apply_conformal`: each case's masks {p >= t} as images in nnU-Net's geometry, the folder written whole
"""

from __future__ import annotations

from nnunet_surgery.risk_control.apply import apply_conformal
from nnunet_surgery.risk_control.document import read_conformal
from nnunet_surgery.risk_control.fit import fit_conformal

__all__ = ["apply_conformal", "fit_conformal", "read_conformal"]
