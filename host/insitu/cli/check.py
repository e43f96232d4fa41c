"""`insitu check`: self-test of the stiffness elements (does every bond's element obey?),
on boards on serial ports or on emulated boards. Exit status 1 when an element is stuck."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from insitu.cli.element import PROFILE_NAMES, add_element, element_profile

HELP = "self-test: does every bond's stiffness element respond? (exit 1 if one is stuck)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument("--port", action="append", metavar="PORT",
                   help="boards on these serial ports (repeat); default: emulated boards")
    p.add_argument("--family", choices=("pico", "pico2", "esp32", "emu"), help="--port: family")
    p.add_argument("--pins", metavar="FILE", help="--port: pin map the boards were flashed with")
    p.add_argument("--profile", default="realistic", choices=PROFILE_NAMES,
                   help="emulated boards' hardware profile (default %(default)s)")
    add_element(p)
    p.add_argument("--seed", type=int, default=0, help="emulated boards' part draws")
    p.add_argument("--stuck", action="append", default=[], metavar="BOARD:SLOT",
                   help="emulated boards: make this stiffness element ignore commands (repeat)")
    p.add_argument("--force", type=float, default=0.049,
                   help="test load in N, one force port at a time (default %(default)s)")
    p.add_argument("--settle-ms", type=int, help="wait after each stiffness change "
                   "(default 10 relaxation times + 500 ms of servo travel)")
    p.add_argument("--n", type=int, default=4, help="samples per measurement (4)")
    p.add_argument("--bonds", metavar="LIST", help="bond indices to check, e.g. 0,3,7 (all)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--plot", metavar="PNG", help="draw the network, bonds coloured by verdict")
    p.add_argument("--json", action="store_true", help="print JSON")


def _stuck(spec: str) -> tuple[int, int]:
    from insitu.cli.main import UserError

    try:
        board, slot = spec.split(":")
        return int(board), int(slot)
    except ValueError:
        raise UserError(f"--stuck {spec!r}: expected BOARD:SLOT, e.g. 2:1") from None


def _rig(args: argparse.Namespace, net: Any) -> Any:
    from insitu.cli.main import UserError

    if args.port:
        if args.stuck:
            raise UserError("--stuck is for emulated boards (drop --port)")
        from insitu.deploy.flash import FlashError
        from insitu.links import LinkError
        from insitu.rig import RigError
        from insitu.rig.lab import open_rig

        try:
            return open_rig(net, args.port, family=args.family, pins=args.pins)[1]
        except (FlashError, ValueError, LinkError, RigError) as exc:
            raise UserError(str(exc))
    if args.family or args.pins:
        raise UserError("--family and --pins go with --port (boards on serial ports)")
    from insitu.emulator import faults
    from insitu.rig.lab import open_rig

    stuck = [_stuck(s) for s in args.stuck]
    ids = {bd.id for bd in net.boards}
    for board, _ in stuck:
        if board not in ids:
            raise UserError(f"--stuck {board}:...: {net.name} has no board {board}")
    lab, rig = open_rig(net, profile=element_profile(args), seed=args.seed)
    for board, slot in stuck:
        try:
            faults.stuck_element(lab.world, board, slot)
        except IndexError as exc:
            rig.close()
            raise UserError(f"--stuck {board}:{slot}: {exc}") from None
    return rig


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network
    from insitu.rig import RigError
    from insitu.rig.selftest import check_elements

    net = load_network(args.network)
    bonds = None
    if args.bonds:
        try:
            bonds = [int(x) for x in args.bonds.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--bonds {args.bonds!r}: expected indices like 0,3,7") from None
        bad = [b for b in bonds if not 0 <= b < net.n_bonds]
        if bad:
            raise UserError(f"--bonds: {net.name} has bonds 0..{net.n_bonds - 1}, not {bad}")
    if not args.force > 0:
        raise UserError(f"--force must be > 0 N, got {args.force}")
    if args.n < 1 or args.n > 64:
        raise UserError(f"--n must be in 1..64, got {args.n}")
    rig = _rig(args, net)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rcheck: {done}/{total} bonds", end="", file=sys.stderr, flush=True)

    try:
        report = check_elements(
            rig, force=args.force, settle_ms=args.settle_ms, n=args.n, bonds=bonds,
            progress=progress,
        )  # fmt: skip
    except RigError as exc:
        raise UserError(str(exc))
    finally:
        rig.close()
        if not args.quiet:
            print(file=sys.stderr)
    if args.plot:
        print(f"check: wrote {plot_report(report, Path(args.plot))}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print("\n".join(report.lines()))
    return 1 if report.stuck else 0


COLOURS = {"ok": "tab:green", "stuck": "tab:red", "unloaded": "0.6", "sensor": "tab:orange",
           "faulty": "tab:orange", "fixed": "k"}  # fmt: skip


def plot_report(report: Any, path: Path) -> Path:
    """The network with every bond coloured by its verdict and labelled with |e1/e0|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    net = report.network
    pos = net.positions[:, :2] * 1000.0  # mm
    fig, ax = plt.subplots(figsize=(7, 5))
    checks = sorted(report.checks, key=lambda c: c.bond)
    segs = [pos[list(net.bonds[c.bond])] for c in checks]
    ax.add_collection(LineCollection(segs, colors=[COLOURS.get(c.verdict, "k") for c in checks],
                                     linewidths=3, zorder=1))  # fmt: skip
    for c, seg in zip(checks, segs, strict=True):
        if c.verdict in ("ok", "stuck") and c.e0:
            mid = seg.mean(axis=0)
            ax.annotate(f"{abs(c.e1 / c.e0):.2f}", mid, fontsize=6, ha="center", va="center",
                        color="0.2", backgroundcolor="white", zorder=3)  # fmt: skip
    ax.scatter(pos[:, 0], pos[:, 1], s=22, c="white", edgecolors="k", zorder=2)
    for i, nid in enumerate(net.node_ids):
        ax.annotate(str(nid), pos[i], xytext=(5, -10), textcoords="offset points", fontsize=7,
                    color="0.3")  # fmt: skip
    seen = sorted({c.verdict for c in checks}, key=list(COLOURS).index)
    ax.legend([Line2D([], [], color=COLOURS[v], lw=3) for v in seen], seen, fontsize=8,
              loc="lower left")  # fmt: skip
    ax.set_title(f"stiffness elements of {net.name}: |e| at the probe stiffness / |e| at k",
                 fontsize=10)  # fmt: skip
    ax.set_aspect("equal")
    ax.margins(0.08)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
