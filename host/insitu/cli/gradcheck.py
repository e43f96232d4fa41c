"""`insitu gradcheck`: in-situ gradient from emulated boards vs the exact gradient."""

from __future__ import annotations

import argparse
import json

from insitu.cli.solve import load_vector
from insitu.network.schema import load_network

HELP = "one forward and one adjoint phase on emulated boards; compare with the exact gradient"


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
    p.add_argument("--profile", default="ideal", choices=["ideal", "realistic", "harsh"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, help="samples averaged per phase (default 1 ideal, 16)")
    p.add_argument(
        "--micropython",
        action="store_true",
        help="boards as real MicroPython processes on ptys (slower, realistic)",
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError
    from insitu.emulator.gradcheck import run_gradcheck

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
    res = run_gradcheck(net, load, f_adj, args.profile, args.seed, args.micropython, args.samples)
    if args.json:
        print(json.dumps(res.as_json()))
        return 0
    print(
        f"{net.name}: profile {args.profile}, "
        f"{'MicroPython' if args.micropython else 'in-process'} boards"
    )
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
