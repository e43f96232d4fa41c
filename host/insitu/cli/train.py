"""`insitu train`: train a network on a task (in silico until the emulator lands)."""

from __future__ import annotations

import argparse

HELP = "train a network on a task (behaviour, regression, iris)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError

    raise UserError("training is not available yet")
