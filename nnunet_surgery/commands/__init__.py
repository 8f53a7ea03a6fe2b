"""Subcommands of the `nnunet-surgery` console script (see `nnunet_surgery.cli`)."""
