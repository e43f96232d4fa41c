"""`insitu solve`: the equilibrium of a network under point loads."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from insitu.network.schema import AXES, Network, load_network
from insitu.physics.linear import Equilibrium, compatibility
from insitu.physics.nonlinear import solve_nonlinear

HELP = "print the equilibrium of a network under point loads (SI units)"

# Ranges far beyond any bench (a 1 m steel bar of 1 m^2 is 2e11 N/m) that keep every product
# of a solve inside float64: a load or stiffness past them is a typo, not an experiment.
MAX_FORCE_N = 1e9
MAX_STIFFNESS = 1e12


def parse_load(text: str, dim: int = 2, flag: str = "--load") -> tuple[int, list[float]]:
    """'NODE:FX,FY' -> (node id, [fx, fy]) in newtons."""
    from insitu.cli.main import UserError

    node_s, sep, comps = text.partition(":")
    parts = comps.split(",")
    try:
        node = int(node_s)
        vec = [float(c) for c in parts]
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected NODE:FX,FY with numbers, e.g. 11:0,-0.049")
    if not all(math.isfinite(v) and abs(v) <= MAX_FORCE_N for v in vec):
        raise UserError(f"{flag} {text!r}: forces must be finite, at most {MAX_FORCE_N:g} N")
    if not sep or len(vec) != dim:
        raise UserError(
            f"{flag} {text!r}: expected NODE:{','.join('F' + a.upper() for a in AXES[:dim])}"
        )
    return node, vec


def load_vector(net: Network, loads: list[str], flag: str = "--load") -> np.ndarray:
    from insitu.cli.main import UserError

    f = np.zeros(net.n_nodes * net.dim)
    for text in loads:
        node, vec = parse_load(text, net.dim, flag)
        if node not in net.node_ids:
            raise UserError(f"{flag} {text!r}: node {node} is not in {net.source}")
        if node in net.fixed:
            raise UserError(f"{flag} {text!r}: node {node} is fixed; a load there does nothing")
        i = net.index(node)
        f[i * net.dim : (i + 1) * net.dim] += vec
    return f


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("network", help="network file (TOML)")
    p.add_argument(
        "--load", action="append", default=[], metavar="NODE:FX,FY", help="point load in N"
    )
    p.add_argument("--k", type=float, help="set every bond's stiffness to this value (N/m)")
    p.add_argument("--nonlinear", action="store_true", help="geometrically nonlinear solve")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from insitu.cli.main import UserError

    net = load_network(args.network)
    f = load_vector(net, args.load)
    k = net.k_init.copy()
    if args.k is not None:
        if not (math.isfinite(args.k) and 0 < args.k <= MAX_STIFFNESS):
            raise UserError(
                f"--k {args.k}: stiffness must be > 0 and at most {MAX_STIFFNESS:g} N/m"
            )
        k[:] = args.k
    state = None
    if args.nonlinear:
        state = solve_nonlinear(net.positions, net.bonds, k, net.clamped_dofs(), f)
        u, e = state.u, state.stretch
    else:
        if args.k is None:  # k_init: the network's own factorisation (its rigidity check's)
            eq = net.equilibrium()
        else:
            eq = Equilibrium(
                compatibility(net.positions, net.bonds), k, net.clamped_dofs(), net.node_ids,
                net.dim,
            )  # fmt: skip
        u = eq.solve(f)
        e = eq.elongation(u)
    U = u.reshape(-1, net.dim)
    ids = net.bond_ids()
    if args.json:
        out = {
            "nodes": {str(nid): {"u": U[i].tolist()} for i, nid in enumerate(net.node_ids)},
            "bonds": [
                {"i": a, "j": b, "k": float(k[n]), "e": float(e[n])} for n, (a, b) in enumerate(ids)
            ],
        }
        if state is not None:
            out["tangent"] = {
                "min_eigenvalue": state.min_curvature,
                "saddles_left": state.escaped,
            }
        print(json.dumps(out))
        return 0
    print(
        f"{net.name}: {net.n_nodes} nodes, {net.n_bonds} bonds, "
        f"loads: {', '.join(args.load) or 'none'}"
    )
    print(f"{'node':>6} " + " ".join(f"{'u' + a + ' (mm)':>12}" for a in AXES[: net.dim]))
    for i, nid in enumerate(net.node_ids):
        tag = "  fixed" if nid in net.fixed else ""
        print(f"{nid:>6} " + " ".join(f"{v * 1e3:12.6f}" for v in U[i]) + tag)
    print(f"{'bond':>9} {'k (N/m)':>10} {'e (mm)':>12}")
    for n, (a, b) in enumerate(ids):
        print(f"{a:>4}-{b:<4} {k[n]:10.3f} {e[n] * 1e3:12.6f}")
    if state is not None:
        print(
            f"stable equilibrium: smallest tangent eigenvalue {state.min_curvature:.4g} N/m"
            + (
                f" (left {state.escaped} unstable equilibri{'um' if state.escaped == 1 else 'a'}"
                " on the way: a heavy symmetric load snaps the network sideways)"
                if state.escaped
                else ""
            )
        )
    return 0
