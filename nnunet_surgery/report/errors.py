"""The report's exception type under its first module path: `ReportError` is
`nnunet_surgery.cases.InputError`, the one input error type of every command."""

from __future__ import annotations

from nnunet_surgery.cases.errors import InputError

__all__ = ["ReportError"]

#: The earlier name of `InputError` (kept for scripts that import or catch it).
ReportError = InputError
