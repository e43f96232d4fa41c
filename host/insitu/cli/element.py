"""`--element servo|coil`: which stiffness element the emulated boards are built with.

``PROFILE_NAMES``: the hardware profiles every command's ``--profile`` offers. One helper for
every command that starts emulated boards (gradcheck, train, emulate, demo, check,
bench): ``add_element(p)`` adds the flag, ``element_profile(args)`` folds it into the profile
name the command passes on ("realistic" + coil -> "realistic+coil", which
``insitu.emulator.hardware.get_profile`` reads), so the run store and every layer below see one
string. Servo is the default and leaves the name as it was.
"""

from __future__ import annotations

import argparse

from insitu.emulator.coil import ELEMENTS, profile_name
from insitu.emulator.hardware import PROFILES

PROFILE_NAMES = tuple(PROFILES)  # every command offers every profile (emulator/hardware.py)


def add_element(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--element",
        choices=ELEMENTS,
        default="servo",
        help="emulated boards' stiffness element: servo-tuned leaf spring or voice-coil "
        "virtual spring (default %(default)s; hardware/docs/node.md)",
    )


def element_profile(args: argparse.Namespace) -> str:
    """The profile name with the element folded in; a coil on MicroPython processes is refused
    (the world reads a coil loop's gain from an in-process node: insitu.emulator.coil)."""
    from insitu.cli.main import UserError

    element = getattr(args, "element", "servo")
    if element == "coil" and getattr(args, "micropython", False):
        raise UserError("--element coil: the coil is emulated for in-process boards only "
                        "(drop --micropython)")  # fmt: skip
    return profile_name(args.profile, element)
