"""The report's exception type (defined in `nnunet_surgery.errors`, shared with every command)."""

from __future__ import annotations

from nnunet_surgery.errors import ReportError

__all__ = ["ReportError"]
