"""The report's exception type under its first module path (`ReportError`, an alias of
`nnunet_surgery.cases.InputError`, shared with every command)."""

from __future__ import annotations

from nnunet_surgery.errors import ReportError

__all__ = ["ReportError"]
