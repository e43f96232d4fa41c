"""`insitu gradcheck`: in-situ gradient from the boards vs the exact one (emulated boards: the
emulator's truth; boards on ports: the twin's, from the calibration the nodes hold)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from insitu.cli.calibrate import add_port_arguments, open_port_rig
from insitu.cli.element import PROFILE_NAMES, add_element, element_profile
from insitu.cli.solve import load_vector
from insitu.network.schema import load_network

HELP = "one forward and one adjoint phase on the boards; compare with the exact gradient"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="NODE:FX,FY",
        help="forward load in N (repeatable)",
    )
    p.add_argument(
        "--adjoint",
        action="append",
        default=[],
        metavar="NODE:FX,FY",
        help="adjoint force in N (= -dL/du at an output; repeatable)",
    )
    p.add_argument(
        "--profile", default="ideal", choices=PROFILE_NAMES
    )
    add_element(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, help="samples averaged per phase (default 1 ideal, 16)")
    p.add_argument(
        "--micropython",
        action="store_true",
        help="boards as real MicroPython processes on ptys (slower, realistic)",
    )
    add_port_arguments(
        p, "boards on these serial ports (repeat): compare with the twin's gradient at the "
        "realised k the nodes report (their calibration) and the file's geometry",
    )  # fmt: skip
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.emulator.gradcheck import run_gradcheck

    args.profile = element_profile(args)
    net = load_network(args.network)
    if not args.load:
        raise UserError("give at least one --load NODE:FX,FY")
    if not args.adjoint:
        raise UserError("give at least one --adjoint NODE:FX,FY")
    load = load_vector(net, args.load)
    f_adj = load_vector(net, args.adjoint, flag="--adjoint")
    for flag, vec in (("--load", load), ("--adjoint", f_adj)):
        for dof in vec.nonzero()[0]:
            node = net.node_ids[dof // net.dim]
            bd = net.board_of_node(node)
            if bd is None or "force" not in bd.carries:
                raise UserError(f"{flag}: node {node} has no board with a force actuator")
    if args.samples is not None and not 1 <= args.samples <= 64:
        raise UserError(f"--samples {args.samples}: must be 1..64")
    if args.port:
        if args.micropython:
            raise UserError("--micropython starts emulated boards; drop it with --port")
        res, where, calibrated = _on_ports(args, net, load, f_adj)
    else:
        # emulated boards; --pins builds them on pin-level silicon wired by that pin map (the
        # real drivers through hal/board.py), as --pins names the boards' pin map on ports
        if args.family:
            raise UserError("--family goes with --port (boards on serial ports)")
        if args.micropython:
            from insitu.emulator.mplab import too_many_boards

            why = too_many_boards(net)
            if why:
                raise UserError(why)
        if args.pins is not None and args.profile == "ideal":
            raise UserError("--pins: pins carry integer counts; use --profile realistic or harsh")
        res = run_gradcheck(
            net, load, f_adj, args.profile, args.seed, args.micropython, args.samples,
            pins=args.pins, bus=args.bus,
        )  # fmt: skip
        where = f"profile {args.profile}, " + (
            "MicroPython boards" if args.micropython else "in-process boards"
        ) + (f" on pin-level silicon ({args.pins})" if args.pins else "") + (
            " on one emulated RS-485 bus" if args.bus else "")
        calibrated = None
    if args.json:
        out = res.as_json()
        if calibrated is not None:
            out["calibration"] = calibrated
        print(json.dumps(out))
        return 0
    print(f"{net.name}: {where}")
    print(f"{'bond':>9} {'in situ':>14} {'exact':>14}")
    for (i, j), a, b in zip(res.bonds, res.insitu, res.exact, strict=True):
        print(f"{i:>4}-{j:<4} {a:14.6e} {b:14.6e}")
    print(
        f"cosine {res.cosine:.6f}   relative error {res.rel_err:.3e}   "
        f"{res.loadings} loadings, {res.messages} messages"
    )
    if res.saturated:
        bonds = ", ".join(f"{i}-{j}" for i, j in res.saturated)
        print(f"saturated gauges (read as 0, not measured; a smaller load fits): {bonds}")
    return 0


def _on_ports(args: argparse.Namespace, net: Any, load: Any, f_adj: Any) -> tuple[Any, str, dict]:
    """The check on boards on serial ports against the twin; (result, where, calibration ids)."""
    from insitu.calibrate import check_gradient
    from insitu.cli.main import UserError
    from insitu.rig import RigError

    rig = open_port_rig(args, net)
    try:
        settle_ms = int(round(10 * net.relaxation_time * 1000))  # 10 tau, as the trainer
        res = check_gradient(rig, load, f_adj, settle_ms=settle_ms, n=args.samples or 16)
        ids = {a: i.calibration for a, i in rig.boards.items()}
        bare = rig.uncalibrated()
    except RigError as exc:
        raise UserError(str(exc))
    finally:
        rig.close()
    where = f"{len(args.port)} port(s), twin at the nodes' realised k"
    if bare:
        where += f" (uncalibrated: {', '.join(bare)})"
    return res, where, ids
