"""The commands' exception type under its first module path (defined in `nnunet_surgery.cases.errors`)."""

from __future__ import annotations

from nnunet_surgery.cases.errors import ReportError

__all__ = ["ReportError"]
