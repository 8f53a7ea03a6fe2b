"""nnunet-surgery: calibrated nnU-Net v2 training with gradient vector field surgery."""

__version__ = "0.1.0"
