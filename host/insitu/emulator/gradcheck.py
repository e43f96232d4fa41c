"""Gradient check: the gradient the boards compute locally vs the physics core's exact one.

One forward and one adjoint phase on emulated boards (in-process or MicroPython processes);
every node accumulates e·e_adj for its own bonds; the host reads those numbers back and
compares them with e·e_adj from the physics core at the world's true stiffness, with the loads
and adjoint forces exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insitu.emulator.world import World
from insitu.network.schema import Network, Port
from insitu.rig.session import Rig

# The adjoint is injected at a 5 g peak and the scale divided out on the nodes: unscaled
# adjoint forces drown in actuator offsets (docs/emulator.md).
from insitu.trainers.insitu import ADJOINT_PEAK_N


@dataclass
class GradCheck:
    bonds: list[tuple[int, int]]
    insitu: np.ndarray
    exact: np.ndarray
    cosine: float
    rel_err: float
    loadings: int
    messages: int
    # bonds (node pairs) whose gauge saturated: the node reads them as 0 and freezes them,
    # so their in-situ entries are not measurements (firmware health.py, docs/reliability.md)
    saturated: list[tuple[int, int]] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "bonds": [
                {"i": i, "j": j, "insitu": float(a), "exact": float(b)}
                for (i, j), a, b in zip(self.bonds, self.insitu, self.exact, strict=True)
            ],
            "cosine": self.cosine,
            "rel_err": self.rel_err,
            "loadings": self.loadings,
            "messages": self.messages,
            "saturated": [[i, j] for i, j in self.saturated],
        }


def ports_forces(net: Network, f: np.ndarray) -> dict[Port, float]:
    """Nonzero entries of a force vector as {Port: newtons}."""
    out = {}
    for dof in np.flatnonzero(f):
        node = net.node_ids[dof // net.dim]
        out[Port(node, int(dof % net.dim))] = float(f[dof])
    return out


def insitu_gradient(
    rig: Rig,
    load: np.ndarray,
    f_adj: np.ndarray,
    settle_ms: int = 0,
    n: int = 1,
    tare: bool = True,
) -> np.ndarray:
    """Per-bond e·e_adj as the boards compute it (network bond order)."""
    net = rig.network
    sigma = ADJOINT_PEAK_N / float(np.max(np.abs(f_adj)))
    if tare:
        rig.tare(settle_ms=settle_ms, n=n)
    rig.reset()
    rig.apply_forces(ports_forces(net, load))
    rig.measure("forward", tag=1, settle_ms=settle_ms, n=n)
    rig.apply_forces(ports_forces(net, sigma * f_adj))
    rig.measure("adjoint", tag=1, settle_ms=settle_ms, n=n, scale=1.0 / sigma)
    rig.forces_off()
    g, count = rig.accumulated()
    if count != 1:
        raise RuntimeError(f"boards accumulated {count} samples, expected 1")
    return g


def exact_gradient(world: World, load: np.ndarray, f_adj: np.ndarray) -> np.ndarray:
    """e·e_adj from the physics core at the world's true stiffness (dL/du = -f_adj)."""
    return world.exact_gradient(-f_adj, f=load)


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


def compare(
    net: Network,
    insitu: np.ndarray,
    exact: np.ndarray,
    loadings: int,
    messages: int,
    saturated: list[tuple[int, int]] | None = None,
) -> GradCheck:
    cos = float(insitu @ exact / (np.linalg.norm(insitu) * np.linalg.norm(exact)))
    rel = float(np.linalg.norm(insitu - exact) / np.linalg.norm(exact))
    return GradCheck(net.bond_ids(), insitu, exact, cos, rel, loadings, messages, saturated or [])


def saturated_bonds(rig: Rig) -> list[tuple[int, int]]:
    """Bonds (node pairs, network order) whose gauge the boards reported saturated."""
    hit = {
        (int(ev["bond"][0]), int(ev["bond"][1]))
        for _, ev in rig.events
        if ev.get("ev") == "fault" and ev.get("kind") == "sat" and "bond" in ev
    }
    return [b for b in rig.network.bond_ids() if b in hit]


def run_gradcheck(
    net: Network,
    load: np.ndarray,
    f_adj: np.ndarray,
    profile: str = "ideal",
    seed: int = 0,
    micropython: bool = False,
    n: int | None = None,
    pins: str | None = None,
) -> GradCheck:
    """Start emulated boards, measure the gradient in situ, compare with the exact one.
    ``pins``: boards on pin-level silicon wired by that pin map; MicroPython boards are by
    default the kit's boards of their family (MicroPythonLab's "auto")."""
    if not np.any(f_adj):
        raise ValueError("the adjoint force is zero everywhere: nothing to check")
    if micropython:
        from insitu.emulator.mplab import MicroPythonLab
        from insitu.links import SerialLink

        with MicroPythonLab(net, profile, seed, pins=pins or "auto") as lab:
            links = [SerialLink(port) for port in lab.ports().values()]
            rig = Rig(net, links, configs=lab.configs, timeout=3.0)
            try:
                rig.connect()
                return _check(rig, lab.world, net, load, f_adj, n)
            finally:
                rig.close()
    from insitu.rig.lab import emulated_rig

    lab, rig = emulated_rig(net, profile, seed, pins=pins)
    return _check(rig, lab.world, net, load, f_adj, n)


def _check(rig: Rig, world: World, net: Network, load, f_adj, n: int | None) -> GradCheck:
    # 10 tau, as the trainer: after 5 tau the forward state still leaks 0.7 % into the adjoint
    settle_ms = int(round(10 * world.tau * 1000)) if world.relax else 0
    if n is None:
        n = 1 if not world.profile.strain.quantise else 16
    g = insitu_gradient(rig, load, f_adj, settle_ms=settle_ms, n=n)
    ex = exact_gradient(world, load, f_adj)
    c = rig.counters
    return compare(net, g, ex, c.loadings, c.sent, saturated_bonds(rig))
