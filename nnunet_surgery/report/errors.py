"""The report's exception type (defined in `nnunet_surgery.cases.errors`, shared with every command)."""

from __future__ import annotations

from nnunet_surgery.cases.errors import ReportError

__all__ = ["ReportError"]
