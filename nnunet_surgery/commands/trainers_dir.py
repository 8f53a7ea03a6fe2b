"""`nnunet-surgery trainers-dir`: print the folder to put in nnU-Net's `nnUNet_extTrainer`."""

from __future__ import annotations

import argparse

from nnunet_surgery.trainer_folder import trainers_dir

__all__ = ["HELP", "add_arguments", "run", "trainers_dir"]

HELP = "print the absolute path for `export nnUNet_extTrainer=$(nnunet-surgery trainers-dir)`"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    print(trainers_dir())
    return 0
