"""Run `nnunet-surgery report` through its command module, as the console script dispatches to it."""

from __future__ import annotations

import argparse
from pathlib import Path

from nnunet_surgery.commands import report as command


def run_report_command(folders, out: Path, *extra: str, preds: list[Path] | None = None) -> int:
    """`nnunet-surgery report GT PRED... -djfile DATASET_JSON -o OUT *extra` on a built `Folders`; the exit code."""
    parser = argparse.ArgumentParser(prog="nnunet-surgery report")
    command.add_arguments(parser)
    preds = folders.preds if preds is None else preds
    arguments = [str(folders.gt), *map(str, preds), "-djfile", str(folders.dataset_json), "-o", str(out)]
    return command.run(parser.parse_args([*arguments, *extra]))
