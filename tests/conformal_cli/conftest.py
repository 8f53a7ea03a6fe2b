"""The fixture of the conformal command tests (built by `conformal_folders`)."""

from __future__ import annotations

from conformal_folders import conformal_dataset

__all__ = ["conformal_dataset"]
