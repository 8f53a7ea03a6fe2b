"""The one exception type of every command: input it refuses, told in one line that names the file or
argument; the check of a count argument every command shares; and the one-line summary of an error a
reading backend raised."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["InputError", "backend_message", "check_count", "first_line", "printable"]


class InputError(Exception):
    """Input a command refuses (missing or malformed files, inconsistent folders, bad options): the one
    error type of every command (`ReportError` and `DemoError` are its earlier names).

    The message is a single line that starts with the offending file, folder or argument (control
    characters in it escaped by `printable`, runs of spaces collapsed); `cli.main`
    prints it as `nnunet-surgery COMMAND: error: <message>` and exits with status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(re.sub(" {2,}", " ", printable(message)).strip())


#: control characters, line and paragraph separators: shown escaped, never as a line break
_BREAKING = ("Cc", "Zl", "Zp")


def printable(text: object) -> str:
    """`text` with every control character escaped as Python's `repr` writes it (a newline in a file name
    shown as `\\n`, a tab as `\\t`, others as `\\x..`): the one way the package shows a name that came from
    the user's files, so that a message stays one line and names exactly the file it means."""
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _BREAKING else char for char in str(text)
    )


def check_count(name: str, value: object, minimum: int, what: str) -> int:
    """`value`, if it is an integer (not a bool) >= `minimum`.

    Args:
        name: the argument as the user wrote it (`-np`, `--bootstrap`, ...).
        what: what it counts ("the number of processes").

    Raises:
        InputError: `name: what must be an integer >= minimum, but got value`.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}: {what} must be an integer >= {minimum}, but got {value!r}")
    return value


def first_line(error: BaseException) -> str:
    """The first line of `error`'s message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def backend_message(error: BaseException) -> str:
    """One line of a backend's error. SimpleITK's first line names only its own source file: its reason
    is the next line (without the object's address) and, for a chain of messages, the last one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception thrown in SimpleITK"):
        reason = re.sub(r"\(0x[0-9a-fA-F]+\)", "", lines[1])
        return reason if len(lines) == 2 else f"{reason} {lines[-1]}"
    return first_line(error)
