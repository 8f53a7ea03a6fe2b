"""Synthetic lesion dataset with known voxel-wise label probabilities, written as an nnU-Net raw dataset.

Calibration can only be judged exactly where the true probabilities are known: the labels of these
cases are sampled from a closed-form probability map p*, which is saved beside the test cases in the
layout nnU-Net's `--save_probabilities` uses.
"""

from __future__ import annotations

from nnunet_surgery.synthetic.dataset import generate_dataset
from nnunet_surgery.synthetic.preview import render_preview

__all__ = ["generate_dataset", "render_preview"]
