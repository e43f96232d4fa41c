"""Gradient check: the gradient the boards compute locally vs the physics core's exact one.

One forward and one adjoint phase on emulated boards (in-process or MicroPython processes);
every node accumulates e·e_adj for its own bonds; the host reads those numbers back and
compares them with e·e_adj from the physics core at the world's true stiffness, with the loads
and adjoint forces exactly as given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from insitu.emulator.world import World

# the rig-side half of a gradient check, kept importable from here for its users
from insitu.gradcheck import (  # noqa: F401
    GradCheck,
    compare,
    insitu_gradient,
    ports_forces,
    saturated_bonds,
)
from insitu.network.schema import Network
from insitu.physics.linear import injected_loss_gradient
from insitu.rig.session import Rig


def exact_gradient(world: World, load: np.ndarray, f_adj: np.ndarray) -> np.ndarray:
    """e·e_adj from the physics core at the world's true stiffness (dL/du = -f_adj)."""
    return world.exact_gradient(injected_loss_gradient(f_adj), f=load)


def exact_batch_gradient(
    world: World, net: Network, io_name: str, X: np.ndarray, Y: np.ndarray, loss_grad: Any
) -> np.ndarray:
    """dL/dk of the batch-mean loss from the physics core at the world's true stiffness: loads
    X[s] at io set ``io_name``'s inputs, targets Y[s], ``loss_grad(u_out, y) -> (L, dL/du_out)``.
    What the boards' accumulated Σ e·e_adj / B must equal."""
    in_dofs, out_dofs = net.iodofs(io_name)
    eq = world.equilibrium()
    exact = np.zeros(net.n_bonds)
    for x, y in zip(X, Y, strict=True):
        f = np.zeros(net.n_nodes * net.dim)
        f[in_dofs] = x
        u = eq.solve(f)
        dL_du = np.zeros_like(u)
        dL_du[out_dofs] = loss_grad(u[out_dofs], y)[1]
        exact += world.exact_gradient(dL_du, f=f)
    return exact / len(X)


def run_gradcheck(
    net: Network,
    load: np.ndarray,
    f_adj: np.ndarray,
    profile: str = "ideal",
    seed: int = 0,
    micropython: bool = False,
    n: int | None = None,
    pins: str | None = None,
    bus: bool = False,
) -> GradCheck:
    """Start emulated boards, measure the gradient in situ, compare with the exact one.
    ``pins``: boards on pin-level silicon wired by that pin map; MicroPython boards are by
    default the kit's boards of their family (MicroPythonLab's "auto")."""
    if not np.any(f_adj):
        raise ValueError("the adjoint force is zero everywhere: nothing to check")
    from insitu.rig.lab import close_rig, open_rig

    lab, rig = open_rig(net, micropython=micropython, profile=profile, seed=seed, pins=pins,
                        bus=bus)  # fmt: skip
    try:
        return _check(rig, lab.world, net, load, f_adj, n)
    finally:
        close_rig(lab, rig)


def _check(rig: Rig, world: World, net: Network, load, f_adj, n: int | None) -> GradCheck:
    # 10 tau, as the trainer: after 5 tau the forward state still leaks 0.7 % into the adjoint
    settle_ms = int(round(10 * world.tau * 1000)) if world.relax else 0
    if n is None:
        n = 1 if not world.profile.strain.quantise else 16
    g = insitu_gradient(rig, load, f_adj, settle_ms=settle_ms, n=n)
    ex = exact_gradient(world, load, f_adj)
    c = rig.counters
    return compare(net, g, ex, c.loadings, c.sent, saturated_bonds(rig))
