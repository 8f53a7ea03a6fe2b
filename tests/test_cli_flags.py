"""The commands spell their shared flags alike: `-o/--output` (stored as `output`), `-djfile`, `-np`, and
the reference folder as the first positional GT_FOLDER wherever a command reads one."""

from __future__ import annotations

import argparse

import pytest

from nnunet_surgery.cli import _build_parser

#: every command that writes something (all but trainers-dir): each takes -o/--output
WITH_OUTPUT = (
    "report",
    "report-merge",
    "recalibrate fit",
    "recalibrate apply",
    "maps",
    "demo",
    "conformal fit",
    "conformal apply",
)


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its prog, `recalibrate fit` and `recalibrate apply` included."""
    found = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            found[parser.prog.removeprefix("nnunet-surgery ")] = parser
        for action in subparsers:
            for child in dict.fromkeys(action.choices.values()):
                walk(child)

    walk(_build_parser())
    return found


def _option(parser: argparse.ArgumentParser, flag: str) -> argparse.Action | None:
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_command_is_found():
    assert set(_commands()) == {"trainers-dir", *WITH_OUTPUT}


@pytest.mark.parametrize("command", WITH_OUTPUT)
def test_output_is_dash_o_or_dash_dash_output_stored_as_output(command):
    action = _option(_commands()[command], "-o")
    assert action is not None and action.option_strings == ["-o", "--output"] and action.dest == "output"


@pytest.mark.parametrize("command", ["report", "recalibrate fit", "maps", "conformal fit"])
def test_the_reference_folder_is_the_first_positional(command):
    parser = _commands()[command]
    positionals = [a for a in parser._actions if not a.option_strings]
    assert positionals[0].metavar == "GT_FOLDER" and positionals[0].dest == "gt_folder"
    assert _option(parser, "-djfile").metavar == "DATASET_JSON"
    assert _option(parser, "-np").dest == "num_processes"
