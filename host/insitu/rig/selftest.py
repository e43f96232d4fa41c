"""Self-test of the stiffness elements: does every bond's element obey its commands?

A servo has no position feedback, so a node cannot see that its element ignored a command.
It can see what the element does to its own bond: under a steady load, a stiffer bond
stretches less (de/dk = -e bᵀK⁻¹b for the bond's own stiffness). The node does the check and
the judging (firmware ``check`` op, ``insitu_node/health.py: response``); the host only picks
a load that stretches each bond, holds it, and asks the bonds one at a time.

    report = check_elements(rig)      # forces off, clamps released before and after
    print("\\n".join(report.lines()))
    report.stuck                       # bond indices whose element did not respond

The load for a bond is the force port (a board that carries a force actuator, one axis) that
stretches that bond most in the nominal model at the stiffness the boards hold now; bonds that
share a port are checked under one load. A bond no port stretches past ``e_min`` comes back
``unloaded`` (not judged, not frozen). Costs two physical loadings per bond.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from insitu.calibrate import force_ports
from insitu.network.schema import Network, Port
from insitu.physics.linear import Equilibrium, compatibility
from insitu.rig.session import Rig
from insitu_node.protocol.messages import measure_deadline_ms

DEFAULT_FORCE = 0.049  # N: 5 g, the paper's largest input weight (safe for its bars)
DEFAULT_E_MIN = 2e-6  # m: the node's default; smaller elongations are not judged


@dataclass(frozen=True)
class ElementCheck:
    """One bond's check: what its node measured and said."""

    bond: int
    board: int
    node: int
    port: Port | None  # the load it was checked under (None: not checked)
    verdict: str  # ok | stuck | unloaded | sensor (gauge failed in the check) | fixed | faulty
    k: float = float("nan")  # N/m, the bond's stiffness
    kp: float = float("nan")  # N/m, the probe stiffness
    e0: float = float("nan")  # m, elongation at k
    e1: float = float("nan")  # m, elongation at kp
    noise: float = 0.0  # m, the node's bound on the measurements' error
    fault: str | None = None  # faulty: the fault its node had latched before (not checked)


@dataclass
class ElementReport:
    network: Network
    checks: list[ElementCheck] = field(default_factory=list)

    def _with(self, verdict: str) -> list[int]:
        return [c.bond for c in self.checks if c.verdict == verdict]

    @property
    def stuck(self) -> list[int]:
        return self._with("stuck")

    @property
    def unloaded(self) -> list[int]:
        return self._with("unloaded")

    @property
    def ok(self) -> list[int]:
        return self._with("ok")

    def _bond(self, b: int) -> str:
        ids = self.network.node_ids
        i, j = self.network.bonds[b]
        return f"bond {ids[i]}-{ids[j]} (#{b})"

    @property
    def faulty(self) -> list[int]:
        """Bonds not checked: a fault was latched already, or the gauge failed in the check."""
        return [c.bond for c in self.checks if c.verdict in ("faulty", "sensor")]

    @property
    def frozen(self) -> list[int]:
        """Bonds whose nodes hold them frozen: stuck, or with any latched fault."""
        return sorted(self.stuck + self.faulty)

    def lines(self) -> list[str]:
        """What the user is told: a summary, then every bond that is not fine."""
        n = len(self.checks)
        out = [
            f"stiffness elements: {n} bonds, {len(self.ok)} respond, {len(self.stuck)} stuck, "
            f"{len(self.unloaded)} unloaded (not judged), {len(self.faulty)} not checked "
            f"(faulty), {len(self._with('fixed'))} fixed (nothing to tune)"
        ]
        for c in self.checks:
            where = f"{self._bond(c.bond)} on board {c.board} (node {c.node})"
            if c.verdict == "stuck":
                out.append(
                    f"{where}: stiffness element does not respond: e {c.e0:.3g} m at "
                    f"k {c.k:.4g} N/m, {c.e1:.3g} m at {c.kp:.4g} N/m; bond frozen"
                )
            elif c.verdict == "faulty":
                out.append(f"{where}: not checked, its node holds a {c.fault} fault; bond frozen")
            elif c.verdict == "sensor":
                out.append(f"{where}: its strain gauge failed during the check; bond frozen")
            elif c.verdict == "unloaded":
                out.append(
                    f"{where}: not judged, |e| {max(abs(c.e0), abs(c.e1)):.2g} m under {c.port}"
                    " (no force port stretches it enough)"
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "stuck": self.stuck,
            "unloaded": self.unloaded,
            "ok": self.ok,
            "checks": [
                {**c.__dict__, "port": None if c.port is None else str(c.port)} for c in self.checks
            ],
        }


def best_ports(net: Network, k: np.ndarray, ports: Sequence[Port]) -> tuple[np.ndarray, np.ndarray]:
    """For every bond: the index of the port whose unit force stretches it most in the nominal
    model (supports only, no clamps), and that elongation per newton."""
    if not ports:
        raise ValueError(f"network {net.name} has no force actuator to load the bonds with")
    clamped = np.zeros(net.n_nodes * net.dim, dtype=bool)
    index = {nid: i for i, nid in enumerate(net.node_ids)}
    for nid in net.fixed:
        i = index[nid]
        clamped[i * net.dim : (i + 1) * net.dim] = True
    eq = Equilibrium(compatibility(net.positions, net.bonds), k, clamped, net.node_ids, net.dim)
    per_n = np.empty((len(ports), net.n_bonds))
    for p, port in enumerate(ports):
        f = np.zeros(net.n_nodes * net.dim)
        f[index[port.node] * net.dim + port.axis] = 1.0
        per_n[p] = eq.elongation(eq.solve(f))
    best = np.argmax(np.abs(per_n), axis=0)
    return best, np.abs(per_n[best, np.arange(net.n_bonds)])


def _latched(rig: Rig) -> dict[int, str]:
    """Bond index → fault its node has latched (a node refuses to check such a bond)."""
    out: dict[int, str] = {}
    for addr, st in rig.state("faults").items():
        bd = rig.boards[addr].board
        for slot, kind in enumerate(st.get("faults", ())[: len(bd.bonds)]):
            if kind != "ok":
                out[bd.bonds[slot]] = str(kind)
    return out


def _stay_awake(rig: Rig, ms: int) -> dict[str, int]:
    """Raise every board's host-silence timeout to at least ``ms`` (a check talks to one
    board for seconds; the others, the one holding the load among them, would go safe and
    drop it; a ping before every check covers the time between checks). Returns the
    timeouts to put back."""
    now = {a: int(p["timeout_ms"]) for a, p in rig.broadcast("configure").items()}
    if any(0 < t < ms for t in now.values()):
        rig.broadcast("configure", {"timeout_ms": int(ms)})
    return now


def _put_back(rig: Rig, timeouts: dict[str, int]) -> None:
    values = set(timeouts.values())
    if len(values) == 1:
        rig.broadcast("configure", {"timeout_ms": values.pop()})
        return
    for addr, t in timeouts.items():
        rig.request(rig.boards[addr].board, "configure", {"timeout_ms": t})


def check_elements(
    rig: Rig,
    force: float = DEFAULT_FORCE,
    settle_ms: int | None = None,
    n: int = 4,
    bonds: Sequence[int] | None = None,
    e_min: float = DEFAULT_E_MIN,
    tare: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ElementReport:
    """Check the stiffness elements of ``bonds`` (default: every tunable bond), one at a time.

    ``settle_ms`` after each stiffness change must cover the element's travel and the
    network's relaxation (default: 10 τ + 0.5 s). ``tare`` first zeroes the strain gauges
    unloaded (the verdict compares |e|, so an offset as large as e could flip it); pass False
    only when the offsets are known good (e.g. restored from a checkpoint). Leaves forces off
    and clamps released.
    A stuck element's bond is frozen by its node and named in ``rig.fault_report()``.
    """
    net = rig.network
    if settle_ms is None:
        settle_ms = int(round(10 * net.relaxation_time * 1000)) + 500
    if not force > 0:
        raise ValueError(f"force must be > 0 N, got {force}")
    todo = list(range(net.n_bonds)) if bonds is None else [int(b) for b in bonds]
    for b in todo:
        if not 0 <= b < net.n_bonds:
            raise ValueError(f"network {net.name} has no bond {b} (0..{net.n_bonds - 1})")
    ports = force_ports(net)
    k = rig.stiffness()
    best, _ = best_ports(net, k, ports)
    owner = {b: bd for bd in net.boards for b in bd.bonds}
    report = ElementReport(net)
    if tare:  # forces off, clamps released, settle, zero
        rig.tare(settle_ms=int(round(10 * net.relaxation_time * 1000)), n=n)
    else:
        rig.forces_off()
        rig.release()
    latched = _latched(rig)
    groups: dict[int, list[int]] = {}
    for b in todo:
        bd = owner[b]
        if net.k_min[b] == net.k_max[b]:
            report.checks.append(ElementCheck(b, bd.id, bd.node, None, "fixed", k[b], k[b]))
        elif b in latched:
            report.checks.append(
                ElementCheck(b, bd.id, bd.node, None, "faulty", k[b], k[b], fault=latched[b])
            )
        else:
            groups.setdefault(int(best[b]), []).append(b)
    total = sum(len(g) for g in groups.values())
    one_check_ms = 2 * (settle_ms + measure_deadline_ms(n))  # the node's limit, both stages
    timeouts = _stay_awake(rig, one_check_ms + 5000)
    done = 0
    try:
        for p, group in sorted(groups.items()):
            port = ports[p]
            rig.apply_forces({port: -force})
            for b in group:
                rig.broadcast("ping")  # host traffic for every board: none goes safe meanwhile
                r = rig.check_element(b, settle_ms=settle_ms, n=n, e_min=e_min)
                bd = owner[b]
                report.checks.append(
                    ElementCheck(
                        b, bd.id, bd.node, port, str(r["verdict"]), float(r["k"]),
                        float(r["kp"]), float(r["e0"]), float(r["e1"]), float(r["noise"]),
                    )
                )
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        rig.forces_off()
        _put_back(rig, timeouts)
    report.checks.sort(key=lambda c: c.bond)
    return report
