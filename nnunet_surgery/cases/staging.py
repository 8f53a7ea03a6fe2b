"""Output files and folders written so that nothing is ever half-written, shared by every command.

A command first checks that its output can be created (`check_writable`), before any work; it then writes
into a staging file or folder beside the output and renames it into place only once everything succeeded
(`write_text_atomic`, `staged_folder`). A failure leaves the previous output, or nothing, behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_surgery.cases.errors import InputError

__all__ = [
    "check_writable",
    "default_dir_mode",
    "move_folder_into_place",
    "staged_folder",
    "staging_folder",
    "write_text_atomic",
]


def check_writable(path: str | Path, what: str = "OUT_DIR") -> None:
    """Refuse an output path that cannot be created or written: a parent that is a file, a read-only folder.

    Probes by creating (and removing) a temporary folder in the nearest existing ancestor, where a
    staging folder or file would go; nothing stays behind.

    Args:
        path: the output folder or file.
        what: how the error names it ("OUT_DIR", "-o CALIBRATOR.json", ...).

    Raises:
        InputError: naming the path and the problem.
    """
    path = Path(path)
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{path}: {what} cannot be created: {ancestor} is a file, not a folder")
    try:
        Path(tempfile.mkdtemp(prefix=".nnunet-surgery-probe.", dir=ancestor)).rmdir()
    except OSError as error:
        raise InputError(
            f"{path}: {what} cannot be written ({error.strerror or error} in {ancestor})"
        ) from None


def default_dir_mode() -> int:
    """Permissions a folder made with `mkdir` would get under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def write_text_atomic(path: str | Path, text: str, what: str = "the output") -> None:
    """Write `text` to a hidden file beside `path`, then rename it to `path`.

    Raises:
        InputError: the file cannot be written (full disk, read-only folder), naming it.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write {what} ({error.strerror or error})") from None


def move_folder_into_place(staging: Path, target: Path) -> None:
    """Rename the finished folder `staging` to `target` (a sibling), replacing an existing `target`: that
    one is first moved aside into a hidden folder, then removed.

    Raises:
        OSError: a rename fails (`target` is then untouched, or back where it was not yet replaced).
    """
    staging.chmod(default_dir_mode())
    if not target.exists():
        os.rename(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staging_folder(
    target: str | Path, place: Callable[[Path, Path], None] = move_folder_into_place
) -> Iterator[Path]:
    """The one way a folder is written whole: a hidden staging folder beside `target` (its parent must
    exist), put in place by `place(staging, target)` when the `with` block succeeds (by default renamed
    to `target`, replacing it: `move_folder_into_place`), removed on any error, `target` then untouched.

    Raises:
        OSError: the staging folder cannot be created, or `place` fails.
    """
    target = Path(target).absolute()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield staging
        place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def staged_folder(out_dir: str | Path, *, overwrite: bool, what: str = "the output folder") -> Iterator[Path]:
    """`staging_folder` for a command's output folder: refused where it exists unless `overwrite`, and any
    failure to write it a one-line error naming it (`what`).

    Raises:
        InputError: `out_dir` exists and `overwrite` is False, or the folder cannot be created or written.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: {what} exists; pass --overwrite to replace it")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with staging_folder(out_dir) as staging:
            yield staging
    except OSError as error:
        raise InputError(f"{out_dir}: cannot write {what} ({error.strerror or error})") from None
