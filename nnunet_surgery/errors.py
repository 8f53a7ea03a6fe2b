"""The one exception type of the commands (report, recalibrate, maps): bad input, told in one line that
names the file or argument. Below every package, so that shared helpers (`files`) can raise it."""

from __future__ import annotations

__all__ = ["ReportError"]


class ReportError(Exception):
    """Input the report refuses (missing or malformed files, inconsistent folders, bad options).

    The message is a single line that starts with the offending file, folder or argument; the command
    prints it as `nnunet-surgery report: error: <message>` and exits with status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
