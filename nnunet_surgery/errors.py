"""The commands' exception type under its first module path and name: `ReportError` is
`nnunet_surgery.cases.InputError` (kept for scripts that import or catch it)."""

from __future__ import annotations

from nnunet_surgery.cases.errors import InputError

__all__ = ["ReportError"]

#: The earlier name of `InputError`, the one input error type of every command.
ReportError = InputError
