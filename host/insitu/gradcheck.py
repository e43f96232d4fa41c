"""Gradient check on any rig: the boards' in-situ gradient (one forward and one adjoint phase,
every node accumulating e·e_adj for its own bonds) read back and compared with a reference.

The reference is the caller's: the physics core at an emulated world's true stiffness
(``emulator.gradcheck``), or the calibrated twin on a bench (``calibrate.check_gradient``).
Nothing here knows whether the boards are emulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
