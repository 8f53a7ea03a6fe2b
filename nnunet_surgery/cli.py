"""`nnunet-surgery` console script: one subcommand per module in `nnunet_surgery.commands`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`, and keeps
its heavy imports inside `run` so that `nnunet-surgery --help` stays fast. A command raises
`nnunet_surgery.cases.InputError` for input it refuses; `main` alone catches it, prints it as one line
`nnunet-surgery COMMAND: error: MESSAGE` (the parser's `prog`, e.g. `nnunet-surgery recalibrate fit`) and
returns 2, as argparse does for a bad argument; an unrecognized argument is told by the subcommand's parser
too (argparse's own top-level parser would name only `nnunet-surgery`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from nnunet_surgery.cases.errors import InputError

__all__ = ["COMMANDS", "main"]

# subcommand name -> module in nnunet_surgery.commands
COMMANDS: dict[str, str] = {
    "trainers-dir": "trainers_dir",
    "report": "report",
    "report-merge": "report_merge",
    "recalibrate": "recalibrate",
    "maps": "maps",
    "conformal": "conformal",
    "demo": "demo",
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nnunet-surgery",
        description="Calibrated nnU-Net v2 training with gradient vector field surgery, and calibration reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"nnunet_surgery.commands.{module_name}")
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run, _prog=command_parser.prog, _parser=command_parser)
    return parser


def _merge_alias(argv: list[str]) -> list[str]:
    """`report merge ...` is `report-merge ...`, unless a folder named `merge` exists here (then it is the
    GT_FOLDER of a report, as before)."""
    if argv[:2] == ["report", "merge"] and not Path("merge").is_dir():
        return ["report-merge", *argv[2:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: `sys.argv[1:]`), run the subcommand and return its exit code: 2 for input it
    refuses, told in one line on stderr."""
    args, unknown = _build_parser().parse_known_args(
        _merge_alias(sys.argv[1:] if argv is None else list(argv))
    )
    if unknown:  # told by the subcommand's parser: `nnunet-surgery maps: error: unrecognized arguments: ...`
        args._parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args._run(args) or 0)
    except InputError as error:
        print(f"{args._prog}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
