"""Output files and folders written so that nothing is ever half-written, shared by every command.

A command first checks that its output can be created (`check_writable`), before any work; it then writes
into a staging file or folder beside the output and renames it into place only once everything succeeded
(`write_text_atomic`, `staged_folder`). A failure leaves the previous output, or nothing, behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from nnunet_surgery.cases.errors import InputError

__all__ = [
    "check_output_apart",
    "check_writable",
    "default_dir_mode",
    "made_parents",
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


def check_output_apart(
    output: str | Path, inputs: Iterable[str | Path | None], what: str = "OUT_DIR"
) -> None:
    """Refuse an output that is one of the command's inputs, holds one (replacing the output folder with
    --overwrite would delete it) or lies inside one (writing it would change the input), with or without
    --overwrite: the one check of every command, before anything is written. Paths are compared resolved
    (symbolic links followed), so that another spelling of the same folder is caught.

    Args:
        output: the output file or folder.
        inputs: every file and folder the command reads (None entries are ignored).
        what: how the error names the output ("OUT_DIR", "-o CALIBRATOR.json").

    Raises:
        InputError: `OUTPUT: WHAT must not be, hold or lie inside an input (INPUT)`.
    """
    out = Path(os.path.realpath(output))
    for given in inputs:
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        if out == source:
            relation = "is the input"
        elif out in source.parents:
            relation = "holds the input"
        elif source in out.parents:
            relation = "lies inside the input"
        else:
            continue
        raise InputError(
            f"{output}: {what} {relation} {given} (an output must not be, hold or lie inside an input)"
        )


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
def staged_folder(
    out_dir: str | Path,
    *,
    overwrite: bool,
    what: str = "the output folder",
    place: Callable[[Path, Path], None] = move_folder_into_place,
) -> Iterator[Path]:
    """`staging_folder` for a command's output folder: refused where it exists unless `overwrite`, and any
    failure to write it a one-line error naming it (`what`). Parent folders it had to create are removed
    again when the block fails (`made_parents`).

    Args:
        place: how the finished staging folder is put in place (as `staging_folder`).

    Raises:
        InputError: `out_dir` exists and `overwrite` is False, or the folder cannot be created or written.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not overwrite:
        raise InputError(f"{out_dir}: {what} exists; pass --overwrite to replace it")
    with made_parents(out_dir):
        try:
            with staging_folder(out_dir, place) as staging:
                yield staging
        except OSError as error:
            raise InputError(f"{out_dir}: cannot write {what} ({error.strerror or error})") from None


@contextmanager
def made_parents(path: str | Path) -> Iterator[None]:
    """The missing parent folders of `path` created for the `with` block, and removed again (those still
    empty) when it fails: a failed command leaves no folder behind.

    Raises:
        InputError: a parent cannot be created.
    """
    path = Path(path).absolute()
    missing = [parent for parent in path.parents if not parent.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"{path}: cannot create its folder ({error.strerror or error})") from None
    try:
        yield
    except BaseException:
        for parent in missing:  # deepest first
            try:
                parent.rmdir()
            except OSError:
                break
        raise
