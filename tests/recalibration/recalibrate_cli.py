"""Run `nnunet-surgery recalibrate ...` through the console script's parser and command module."""

from __future__ import annotations

from nnunet_surgery.cli import main


def run_recalibrate(*arguments: str) -> int:
    """`nnunet-surgery recalibrate *arguments` in this process, without progress output; the exit code."""
    return main(["recalibrate", *arguments, "--no-progress"])
