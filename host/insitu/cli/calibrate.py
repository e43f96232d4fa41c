"""`insitu calibrate`: calibrate a network's boards (strain channels, stiffness elements,
force actuators) from the host, on emulated boards or on serial ports."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from insitu.cli.args import integer, number
from insitu.cli.element import PROFILE_NAMES

HELP = "calibrate the boards: strain gain/offset, stiffness element map, force actuator scale"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument(
        "--node",
        type=int,
        metavar="ID",
        help="change and save only this board's calibration (the whole network is measured)",
    )
    p.add_argument(
        "--profile",
        default="realistic",
        choices=PROFILE_NAMES,
        help="emulated boards' hardware profile (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="emulated boards' part draws")
    add_port_arguments(
        p, "calibrate the boards on these serial ports (repeat); the operator is asked to hang "
        "the known weight",
    )  # fmt: skip
    p.add_argument("--weight", type=number(0.0, 1000.0), default=5.0,
                   help="known weight in grams (5)")  # fmt: skip
    p.add_argument("--force", type=number(0.0, 10.0), default=0.05,
                   help="actuator load in N (0.05)")  # fmt: skip
    p.add_argument("--levels", type=integer(2, 100), default=5,
                   help="stiffness sweep levels (5)")  # fmt: skip
    p.add_argument("--no-save", action="store_true", help="do not save on the boards")
    p.add_argument("--store", metavar="PATH", help="record the calibration in this run store")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_port_arguments(p: argparse.ArgumentParser, port_help: str) -> None:
    """--port (repeatable), --family, --pins, --bus: boards on serial ports (calibrate,
    gradcheck)."""
    p.add_argument("--port", action="append", metavar="PORT", help=port_help)
    p.add_argument("--bus", action="store_true",
                   help="the boards share one RS-485 line (--port: its adapter; emulated "
                   "boards: one emulated bus); quiet phases (docs/protocol.md)")  # fmt: skip
    p.add_argument("--bus-listen", type=number(0.001, 60.0), metavar="S",
                   help="--port --bus: seconds of silence after a quiet request that mean "
                   "consent (default: 20 ms + the boards' reply slots)")  # fmt: skip
    p.add_argument("--family", choices=("pico", "pico2", "esp32", "emu"), help="--port: family")
    p.add_argument(
        "--pins", metavar="MAP",
        help="the boards' pin map (pico, pico2, esp32 or a TOML path): on --port, the one they "
        "were flashed with; emulated boards (gradcheck) are then built on pin-level silicon",
    )  # fmt: skip


def open_port_rig(args: argparse.Namespace, net: Any) -> Any:
    """A connected Rig over the boards on args.port (UserError, one line, if it cannot be);
    emu boards' configs follow args.profile (what `insitu emulate` started them with)."""
    from insitu.cli.main import UserError
    from insitu.deploy.flash import FlashError
    from insitu.links import LinkError
    from insitu.rig import RigError
    from insitu.rig.lab import open_rig

    try:
        return open_rig(net, args.port, family=args.family, pins=args.pins,
                        profile=args.profile, bus=bool(getattr(args, "bus", False)),
                        listen_s=getattr(args, "bus_listen", None))[1]  # fmt: skip
    except (FlashError, ValueError, LinkError, RigError) as exc:
        raise UserError(str(exc))


def _rig(args: argparse.Namespace, net: Any) -> tuple[Any, Any, Any]:
    """(rig, weights, world or None)."""
    from insitu.calibrate import PromptWeights
    from insitu.cli.main import UserError

    if args.port:
        return open_port_rig(args, net), PromptWeights(lambda msg: input(msg)), None
    if args.family or args.pins:
        raise UserError("--family and --pins go with --port (boards on serial ports)")
    from insitu.rig.lab import lab_weights, open_rig

    lab, rig = open_rig(net, profile=args.profile, seed=args.seed, bus=args.bus)
    return rig, lab_weights(lab), lab.world


def run(args: argparse.Namespace) -> int:
    cal = calibrate_boards(args)
    if args.json:
        print(json.dumps(cal.as_json()))
    else:
        print(cal.report())
    return 0


def calibrate_boards(args: argparse.Namespace) -> Any:
    """The command without its printing (also insitu.Session.calibrate): the Calibration."""
    from insitu.calibrate import CalibrationError, calibrate
    from insitu.cli.main import UserError
    from insitu.network.schema import load_network

    net = load_network(args.network)
    if args.levels < 2:
        raise UserError("--levels: need at least 2")
    if args.node is not None and all(bd.id != args.node for bd in net.boards):
        raise UserError(f"--node {args.node}: no such board in {net.name}")
    rig, weights, world = _rig(args, net)
    relax = world is not None and world.relax
    settle_ms = int(round(10 * net.relaxation_time * 1000)) if relax or args.port else 0
    quantised = world is None or world.profile.strain.quantise
    n = 16 if quantised else 1

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"calibrate: {msg}", file=sys.stderr, flush=True)

    try:
        cal = calibrate(
            rig, weights, weight_n=args.weight * 1e-3 * 9.81, force_n=args.force,
            levels=args.levels, settle_ms=settle_ms, n=n, save=not args.no_save,
            only=args.node, progress=progress,
        )  # fmt: skip
    except CalibrationError as exc:
        raise UserError(str(exc))
    finally:
        rig.close()
    if args.store:
        from insitu.store import RunStore, StoreError

        try:
            with RunStore(args.store) as store:
                run_id = store.create_run(
                    "calibrate", "calibration", args.seed,
                    {"node": args.node, "ports": args.port, "weight_g": args.weight,
                     "force_n": args.force, "levels": args.levels},
                    net, profile=None if args.port else args.profile,
                )  # fmt: skip
                store.add_event(run_id, "calibration", cal.as_json())
                store.set_status(run_id, "finished")
        except (StoreError, OSError) as exc:
            raise UserError(str(exc))
        progress(f"recorded as run {run_id} in {args.store}")
    return cal
