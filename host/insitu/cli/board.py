"""`insitu board`: check board pin maps, print their wiring, generate a node's config.json."""

from __future__ import annotations

import argparse
import sys

from insitu.cli.element import PROFILE_NAMES

HELP = "check board pin maps, print wiring tables, generate a node's config.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    c = sub.add_parser("check", help="validate pin maps (hardware/boards/*.toml); one line each")
    c.add_argument("files", nargs="+")
    w = sub.add_parser("wiring", help="print a pin map's wiring table (Markdown)")
    w.add_argument("file")
    g = sub.add_parser("config", help="print a node's config.json (canonical JSON) for a board")
    g.add_argument("network", help="network file")
    g.add_argument("--node", type=int, required=True, help="board id (its protocol address)")
    g.add_argument("--pins", help="pin map (default: hardware/boards/<family>.toml)")
    g.add_argument(
        "--family",
        choices=("pico", "pico2", "esp32", "emu"),
        help="board family (default: the network file's)",
    )
    g.add_argument(
        "--element",
        choices=("servo", "coil"),
        default="servo",
        help="stiffness element the node is built with (default: servo)",
    )
    g.add_argument(
        "--profile",
        default="ideal",
        choices=PROFILE_NAMES,
        help="emu boards: the emulator profile whose calibration they get (default: ideal, "
        "as insitu flash)",
    )


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError, check_files
    from insitu.hardware.pinmap import load_pinmap, summary, wiring_table

    if args.action == "check":
        return check_files("board", args.files, load_pinmap, summary)
    if args.action == "wiring":
        sys.stdout.write(wiring_table(load_pinmap(args.file)))
        return 0

    from insitu.deploy.flash import FlashError
    from insitu.deploy.nodeconfig import config_text
    from insitu.network.schema import load_network
    from insitu.rig.lab import board_configs

    net = load_network(args.network)
    board = next((b for b in net.boards if b.id == args.node), None)
    if board is None:
        known = ", ".join(str(b.id) for b in net.boards)
        raise UserError(f"--node {args.node}: no board with that id in {net.source} ({known})")
    if (args.family or board.family) == "emu" and args.pins:
        raise UserError("--pins: an emulated board has no pins")
    try:  # what insitu flash writes to this board (one generator: insitu.rig.lab)
        cfg = board_configs(net, [board], args.family, args.pins, args.profile,
                            args.element)[board.id]  # fmt: skip
    except FlashError as exc:
        raise UserError(str(exc)) from None
    sys.stdout.write(config_text(cfg))
    return 0
