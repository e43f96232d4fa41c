"""`insitu board`: check board pin maps, print their wiring, generate a node's config.json."""

from __future__ import annotations

import argparse
import sys

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


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError, check_files
    from insitu.hardware.pinmap import load_pinmap, summary, wiring_table

    if args.action == "check":
        return check_files("board", args.files, load_pinmap, summary)
    if args.action == "wiring":
        sys.stdout.write(wiring_table(load_pinmap(args.file)))
        return 0

    from insitu.deploy.nodeconfig import Calibration, config_text, node_config
    from insitu.hardware.pinmap import (
        FAMILY_CHIP,
        apply_pins,
        bench_calibration,
        default_pinmap_path,
    )
    from insitu.network.schema import load_network

    net = load_network(args.network)
    board = next((b for b in net.boards if b.id == args.node), None)
    if board is None:
        known = ", ".join(str(b.id) for b in net.boards)
        raise UserError(f"--node {args.node}: no board with that id in {net.source} ({known})")
    family = args.family or board.family
    if family == "emu":
        if args.pins:
            raise UserError("--pins: an emulated board has no pins")
        from insitu.emulator.hardware import NOMINAL, servo_table

        cal = Calibration(
            strain_m_per_count=NOMINAL.strain_m_per_count,
            strain_offset=int(NOMINAL.strain_offset_counts),
            disp_m_per_count=NOMINAL.disp_m_per_count,
            force_cmd_per_n=NOMINAL.force_cmd_per_n,
            force_max_n=0.5,
            servo_table=lambda lo, hi: servo_table(lo, hi, NOMINAL),
        )
        sys.stdout.write(config_text(node_config(net, board, cal, family="emu")))
        return 0
    pins = args.pins or str(default_pinmap_path(family))
    pm = load_pinmap(pins)
    if pm.family != family:
        raise UserError(
            f"--pins {pins}: a {pm.family} pin map, but board {board.id} is a {family} "
            f"({FAMILY_CHIP[family]}); pass --family or another --pins"
        )
    cfg = node_config(net, board, bench_calibration(), family=pm.chip.firmware_family)
    cfg = apply_pins(cfg, pm, element=args.element)
    sys.stdout.write(config_text(cfg))
    return 0
