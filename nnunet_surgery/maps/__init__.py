"""Probability and uncertainty maps people can open: NIfTI files in the reference's geometry.

`uncertainty` (ensemble mean, std, entropy, mutual information: the math), `geometry` (float images
written as nnU-Net's reader found the reference), `export` (folders -> `OUT_DIR/CASE/*.nii.gz`).
See docs/maps.md.
"""

from __future__ import annotations

from nnunet_surgery.maps.uncertainty import EnsembleMaps, EnsembleSums, entropy

__all__ = ["EnsembleMaps", "EnsembleSums", "entropy"]
