"""Values the command line accepts, checked where argparse reads them: a number out of its
range, not finite or not a number is refused as ``argument --flag: ...`` (one line, exit 2)
before anything runs or is written. One place for these rules, shared by the commands."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

SEED_MAX = 2**32 - 1  # numpy's default_rng takes any int; runs are recorded as SQLite ints


def integer(lo: int, hi: int, what: str = "an integer") -> Callable[[str], int]:
    """An int in [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside {lo} .. {hi}")
        return v

    return parse


def number(lo: float, hi: float, *, open_lo: bool = True) -> Callable[[str], float]:
    """A finite float in (lo, hi] (or [lo, hi] with open_lo=False)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if not (lo < v if open_lo else lo <= v) or v > hi:
            left = "(" if open_lo else "["
            raise argparse.ArgumentTypeError(f"{v:g} is outside {left}{lo:g}, {hi:g}]")
        return v

    return parse


seed = integer(0, SEED_MAX, "a seed (a whole number)")
# what an option declared plainly as int or float may be: finite, and no int beyond 32 bits
# (counts, ids, milliseconds; a command checks its own tighter range)
plain_int = integer(-(2**31 - 1), 2**31 - 1)
plain_float = number(-1e300, 1e300, open_lo=False)


def tighten(parser: argparse.ArgumentParser) -> None:
    """Every option of ``parser`` declared with ``type=int`` or ``type=float`` gets the plain
    bounds above instead (argparse's float takes "nan", "inf" and "1e999")."""
    for act in parser._actions:
        if act.type is int:
            act.type = plain_int
        elif act.type is float:
            act.type = plain_float


class UsageError(Exception):
    """A command line argparse refuses; its text is the one line the user sees (exit 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (UsageError: `insitu` prints it on stderr and
    exits 2, as for every other error of a command); ``--help`` shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} ({self.prog} --help)")
