"""The `insitu` command. Each subcommand lives in its own module under insitu.cli.

A subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Errors a user can fix (bad file, bad flag, missing board) are raised as
``UserError`` or a domain error and printed as one line on stderr with exit status 2; nothing
is written on that path.

Diagnostics go through ``logging`` (loggers ``insitu.*``): ``insitu --log-level info ...`` (or
``$INSITU_LOG``) shows retries, reboots, in-place recoveries and fallbacks on stderr, one line
each; the default, ``warning``, shows only what went wrong and was handled. insitu writes no
colour codes, so ``NO_COLOR`` holds whatever the terminal.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

# name -> module; imported lazily so `insitu solve` does not pay for matplotlib or serial.
COMMANDS: dict[str, str] = {
    "solve": "insitu.cli.solve",
    "network": "insitu.cli.network",
    "train": "insitu.cli.train",
    "demo": "insitu.cli.demo",
    "emulate": "insitu.cli.emulate",
    "gradcheck": "insitu.cli.gradcheck",
    "board": "insitu.cli.board",
    "bench": "insitu.cli.bench",
    "runs": "insitu.cli.runs",
    "plot": "insitu.cli.plot",
    "flash": "insitu.cli.flash",
    "ports": "insitu.cli.ports",
    "calibrate": "insitu.cli.calibrate",
    "check": "insitu.cli.check",
    "view": "insitu.cli.view",
    "sweep": "insitu.cli.sweep",
}


class UserError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from insitu.network.schema import NetworkError
    from insitu.physics.linear import MechanismError
    from insitu.physics.nonlinear import ConvergenceError

    return (UserError, NetworkError, MechanismError, ConvergenceError, FileNotFoundError)


def _env_errors() -> tuple[type[BaseException], ...]:
    from insitu.store import StoreWriteError

    return (StoreWriteError,)


def _rig_errors() -> tuple[type[BaseException], ...]:
    from insitu.rig.session import RigError

    return (RigError,)


def check_files(
    command: str, files: Sequence[str], load: Callable[[str], Any], describe: Callable[[Any], str]
) -> int:
    """`insitu COMMAND check FILE...`: one line per file (`FILE: ok — ...` or an error line on
    stderr); exit status 2 if any file is invalid."""
    status = 0
    for f in files:
        try:
            what = load(f)
        except ValueError as exc:
            print(f"insitu {command} check: error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{f}: ok — {describe(what)}")
    return status


def build_parser() -> argparse.ArgumentParser:
    from insitu.cli.args import OneLineParser, tighten

    parser = OneLineParser(
        prog="insitu",
        description="Self-learning mechanical networks: emulate, train in situ, deploy.",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default=None,
        help="diagnostics on stderr from this level up (default $INSITU_LOG or warning)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        tighten(p)
        p.set_defaults(_run=mod.run)
    return parser


def _resolve_auto_ports(args: argparse.Namespace) -> None:
    """``--port auto``: the ports a running ``insitu emulate`` published, its family unless
    --family says otherwise, and --bus when its boards share a bus (deploy.discovery)."""
    ports = getattr(args, "port", None)
    if not isinstance(ports, list) or "auto" not in ports:
        return
    from insitu.deploy.discovery import DiscoveryError, auto_ports

    try:
        found, family, listen = auto_ports()
    except DiscoveryError as exc:
        raise UserError(str(exc)) from None
    args.port = [p for p in ports if p != "auto"] + [p for p in found if p not in ports]
    if hasattr(args, "family") and args.family is None and family is not None:
        args.family = family
    if listen is not None and hasattr(args, "bus"):  # a bus's adapter, and how long to listen
        args.bus = True
        if getattr(args, "bus_listen", None) is None and hasattr(args, "bus_listen"):
            args.bus_listen = listen


LOG_LEVELS = ("debug", "info", "warning", "error")


def _logging(level: str | None) -> None:
    """One stderr handler on the ``insitu`` logger (not the root: a notebook's or an
    application's own logging is left alone)."""
    name = (level or os.environ.get("INSITU_LOG") or "warning").lower()
    if name not in LOG_LEVELS:
        from insitu.cli.args import UsageError

        levels = ", ".join(LOG_LEVELS)
        raise UsageError(f"insitu: error: $INSITU_LOG={name!r}: choose from {levels}")
    logger = logging.getLogger("insitu")
    logger.setLevel(name.upper())
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("insitu: %(levelname)s: %(message)s (%(name)s)"))
        logger.addHandler(handler)
        logger.propagate = False


class _Stderr(logging.StreamHandler):
    """Whatever sys.stderr is when a record is written (main() may run many times in one
    process: tests, a notebook), not the stream of the first call."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    from insitu.cli.args import UsageError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _logging(args.log_level)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        _resolve_auto_ports(args)
        return int(args._run(args) or 0)
    except _user_errors() as exc:
        print(f"insitu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except _env_errors() as exc:
        # the machine, not the command: a full disk, a store locked by another process
        print(f"insitu {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except _rig_errors() as exc:
        # a board refused what it was asked (a load beyond its actuator, a state it forbids):
        # the command's input was wrong, so status 2 like any user error; a rig that stopped
        # answering is a failure of the rig, status 1, still one line
        from insitu.rig.session import Refused

        print(f"insitu {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, Refused) else 1
    except KeyboardInterrupt:
        print(f"insitu {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`insitu ... | head`): stop quietly, as a program killed by
        # SIGPIPE does (status 128 + 13); stdout goes to devnull so the interpreter's final
        # flush does not raise again
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    # `python -m insitu.cli.main`: run the imported module, so that its UserError is the one
    # subcommands raise (this file as __main__ would define a second, different class)
    from insitu.cli.main import main as _main

    sys.exit(_main())
