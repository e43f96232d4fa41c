"""Calibration of a built network from the host: strain channels, stiffness elements, forces.

Run against real boards or emulated ones through the same ``Rig``; it uses only what a lab has:
the boards' own sensors and actuators, the displacement encoders on the boards that carry them
(the length reference), and a known weight hung at a node (the force reference). Steps:

1. **Strain offset** — forces off, clamps released, ``configure tare``: each channel's zero is
   its reading at rest. Every later measurement is also taken relative to a rest measurement
   made just before, so gravity sag and residual offsets cancel (the model is linear).
2. **Strain gain** (per bond) — each force actuator pushes in turn (any scale: its error does
   not matter here) and every board reports its elongations and encoder displacements. The
   elongations must be compatible with one displacement field, e = C u, that agrees with the
   encoders where there are encoders. ``r_b m_b = (C u)_b`` is linear in the per-bond gain
   correction r and the unknown displacements of the nodes without an encoder, so it is a
   linear least-squares fit over all load cases (the unknown displacements are projected
   out). Assumes: small displacements (linear geometry) and the encoders' scale (their magnet
   pitch, ~0.2 %). Some combinations of gains may be invisible to every sensor (three on
   li-mao-2024, on bonds 2-6, 4-8, 4-9, 6-7, 8-9: a network whose gauges read r and whose
   bonds have stiffness p / r answers every load the same way); ``settle_open_gains`` picks
   them so that the stiffness at the setting used is nearest the file's k_init, and the
   report counts them. The new gain (metres per count) is pushed with ``configure slot
   gain``.
3. **Force actuator scale and offset, and the stiffness at the present setting** — with the
   corrected elongations, force balance at every free node, C^T diag(k) e = f, is linear in
   the bond stiffnesses k and in each actuator's scale s and offset o (f = s F + o while
   energised; each actuator is driven at +F and -F). The overall scale is fixed by the known
   weight (cases with every actuator off and only the weight hanging).
4. **Stiffness element map** (per bond) — the host commands a sweep of stiffness levels
   (through the node's nominal k -> pulse table) and, at each, estimates the realised k by the
   same force balance with the now-calibrated actuators. Per bond this gives commanded vs
   realised pairs; they must be increasing (monotone check, reported per bond).

The procedure starts from uncalibrated nodes (``cal clear``: config gains, no maps, no force
scale) and ends by loading everything on the nodes (``load_on_boards``: strain gains, each
bond's realised -> nominal stiffness map, each force axis's scale and offset, then the
calibration id), so the nodes apply it themselves: a node's own ``update`` moves along its
calibrated map and ``state`` reports the realised k. Boards on ports and emulated boards get
the same calibration through the same ops; the host keeps no correction of its own. ``save``
on every board then persists it with the learned state (docs/protocol.md ``cal``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from insitu.network.schema import Network, Port
from insitu.physics.linear import compatibility
from insitu.rig.session import Rig

# singular values below this fraction of the largest count as undetermined (see
# fit_strain_scale). On li-mao-2024 the determined ones are >= 0.15 of the largest and the
# encoders leave three combinations at ~1e-3; at 1e-3 one of those (1.1e-3 on a harsh board
# set) counted as determined, and noise made a gain -2.45. The gap is two decades wide.
RCOND = 1e-2


class CalibrationError(RuntimeError):
    """The measurements do not determine the calibration (or a check failed)."""


class Weights(Protocol):
    """A known weight a person (or the emulator: emulator.weights) hangs at a node."""

    def hang(self, port: Port, newtons: float) -> None: ...

    def remove(self, port: Port) -> None: ...


class PromptWeights:
    """A bench: ask the operator to hang and remove the weight."""

    def __init__(self, ask: Callable[[str], Any] = input) -> None:
        self.ask = ask

    def hang(self, port: Port, newtons: float) -> None:
        self.ask(
            f"hang {abs(newtons) / 9.81 * 1000:.1f} g at node {port.node} (axis {port.axis}), "
            "let it settle, press Enter "
        )

    def remove(self, port: Port) -> None:
        self.ask(f"remove the weight from node {port.node}, press Enter ")


@dataclass
class Calibration:
    """What a calibration found, per bond and per actuator, and how to use it."""

    network: str
    bonds: list[tuple[int, int]]
    strain_scale: np.ndarray  # true / previously measured elongation, per bond
    strain_gain: np.ndarray  # m per count pushed to each channel
    k_levels: np.ndarray  # (levels, bonds) stiffness commanded (through the nominal map)
    k_real: np.ndarray  # (levels, bonds) realised stiffness estimated
    k_min: np.ndarray
    k_max: np.ndarray
    force_scale: dict[Port, float]  # true force / commanded force
    force_offset: dict[Port, float]  # newtons while energised
    residual_strain: float  # rms relative residual of the compatibility fit
    residual_force: float  # rms relative residual of the force-balance fit
    saved: bool = False
    id: int | None = None  # cal_id() as loaded on the nodes
    notes: list[str] = field(default_factory=list)

    @property
    def monotone(self) -> np.ndarray:
        return np.all(np.diff(self.k_real, axis=0) > 0, axis=0)

    def cal_id(self) -> int:
        """A short id of this calibration (CRC-32 of its numbers, 1..10^9): what the nodes
        report in identify, so the host can tell calibrated boards and which calibration."""
        import zlib

        nums = self.as_json()
        for key in ("saved", "notes", "id"):
            nums.pop(key)
        return zlib.crc32(json.dumps(nums, sort_keys=True).encode()) % 999_999_999 + 1

    def as_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "bonds": [
                {
                    "i": i,
                    "j": j,
                    "strain_scale": float(self.strain_scale[b]),
                    "strain_gain": float(self.strain_gain[b]),
                    "k_commanded": [float(x) for x in self.k_levels[:, b]],
                    "k_realised": [float(x) for x in self.k_real[:, b]],
                    "monotone": bool(self.monotone[b]),
                }
                for b, (i, j) in enumerate(self.bonds)
            ],
            "forces": [
                {
                    "node": p.node,
                    "axis": p.axis,
                    "scale": self.force_scale[p],
                    "offset_n": self.force_offset.get(p, 0.0),
                }
                for p in self.force_scale
            ],
            "residual_strain": self.residual_strain,
            "residual_force": self.residual_force,
            "saved": self.saved,
            "id": self.id,
            "notes": self.notes,
        }

    def report(self) -> str:
        lines = [f"calibration of {self.network}"]
        lines.append(f"{'bond':>9} {'strain x':>9} {'k map (commanded -> realised, N/m)':<40} mono")
        for b, (i, j) in enumerate(self.bonds):
            pairs = " ".join(f"{r:.1f}" for r in self.k_real[:, b])
            lines.append(
                f"{i:>4}-{j:<4} {self.strain_scale[b]:9.4f} {pairs:<40} "
                f"{'yes' if self.monotone[b] else 'NO'}"
            )
        lines.append("levels commanded: " + " ".join(f"{c:.1f}" for c in self.k_levels[:, 0]))
        lines.append(f"{'force':>9} {'scale':>9} {'offset mN':>10}")
        for p, s in self.force_scale.items():
            lines.append(
                f"{p.node:>6}/{'xyz'[p.axis]:<2} {s:9.4f} {1e3 * self.force_offset.get(p, 0):10.3f}"
            )
        lines.append(
            f"fit residuals: strain {self.residual_strain:.2e}, force {self.residual_force:.2e}"
        )
        bad = [f"{i}-{j}" for (i, j), m in zip(self.bonds, self.monotone, strict=True) if not m]
        if bad:
            lines.append("NOT monotone (the node keeps its nominal map): " + ", ".join(bad))
        lines.append(f"calibration id {self.id} loaded on the nodes")
        lines.append("saved on the boards" if self.saved else "not saved on the boards")
        lines.extend(self.notes)
        return "\n".join(lines)


def load_on_boards(rig: Rig, cal: Calibration, only: int | None = None) -> int:
    """Load `cal` on the nodes (op ``cal``): each monotone bond's realised -> nominal stiffness
    map, each force axis's scale and offset, then the id that marks a node calibrated. Strain
    gains were pushed by ``calibrate`` itself. Returns the id."""
    net = rig.network
    cid = cal.cal_id()
    for bd in net.boards:
        if only is not None and bd.id != only:
            continue
        for slot, b in enumerate(bd.bonds):
            kr, kc = cal.k_real[:, b], cal.k_levels[:, b]
            if cal.monotone[b] and kr[0] > 0:
                rig.request(bd, "cal", {"slot": slot, "kr": [float(x) for x in kr],
                                        "kc": [float(x) for x in kc]})  # fmt: skip
        for p, sc in cal.force_scale.items():
            if p.node != bd.node:
                continue
            off = cal.force_offset.get(p, 0.0)
            if not (0.1 <= sc <= 10.0 and abs(off) <= 10.0):
                raise CalibrationError(
                    f"force actuator at node {p.node} axis {p.axis}: scale {sc:.3g}, offset "
                    f"{off:.3g} N outside what a node takes (0.1..10, +/-10 N)"
                )
            rig.request(bd, "cal", {"axis": p.axis, "f": [float(sc), float(off)]})
        rig.request(bd, "cal", {"id": cid})
    return cid


def model_gradient(net: Network, k: np.ndarray, load: np.ndarray, f_adj: np.ndarray) -> np.ndarray:
    """The twin's e·e_adj per bond: the network file's geometry at stiffness k (the nodes'
    reported realised k), under ``load``, adjoint forces ``f_adj`` (dL/du = -f_adj)."""
    from insitu.physics.linear import Equilibrium, compatibility, injected_loss_gradient

    eq = Equilibrium(
        compatibility(net.positions, net.bonds), k, net.clamped_dofs(),
        node_ids=net.node_ids, dim=net.dim,
    )  # fmt: skip
    return eq.gradient(eq.solve(load), injected_loss_gradient(f_adj))[0]


def check_gradient(
    rig: Rig, load: np.ndarray, f_adj: np.ndarray, settle_ms: int = 0, n: int = 1
) -> Any:
    """What a lab checks on its own rig: the boards' in-situ gradient (one forward and one
    adjoint phase) against the twin's from the calibrated model (``model_gradient`` at the
    realised k the nodes report). Returns an insitu.gradcheck.GradCheck."""
    from insitu.gradcheck import compare, insitu_gradient

    g = insitu_gradient(rig, load, f_adj, settle_ms=settle_ms, n=n)
    twin = model_gradient(rig.network, rig.realised_stiffness(), load, f_adj)
    return compare(rig.network, g, twin, rig.counters.loadings, rig.counters.sent)


# ----------------------------------------------------------------------------- procedure


def force_ports(net: Network) -> list[Port]:
    """Every force actuator's DOF: each axis of each board that carries one."""
    return [
        Port(bd.node, axis) for bd in net.boards if "force" in bd.carries for axis in range(net.dim)
    ]


def _disp_ports(net: Network) -> list[Port]:
    return [
        Port(bd.node, axis)
        for bd in net.boards
        if "displacement" in bd.carries
        for axis in range(net.dim)
    ]


def _strain_gains(rig: Rig) -> np.ndarray:
    """Each channel's present gain (m/count) from the configs the rig expects."""
    net = rig.network
    gains = np.full(net.n_bonds, np.nan)
    if rig.configs is None:
        raise CalibrationError("the rig has no node configs: cannot know the present gains")
    for bd in net.boards:
        cfg = rig.configs[bd.id]
        for slot, b in enumerate(bd.bonds):
            gains[b] = float(cfg["bonds"][slot]["cal"]["gain"])
    return gains


class _Meter:
    def __init__(self, rig: Rig, settle_ms: int, n: int, progress: Callable[[str], None]):
        self.rig, self.settle_ms, self.n, self.progress = rig, settle_ms, n, progress
        self.count = 0

    def read(self) -> tuple[np.ndarray, dict[Port, float]]:
        m = self.rig.measure("forward", tag=0, settle_ms=self.settle_ms, n=self.n, v=True)
        self.count += 1
        assert m.e is not None
        return m.e.copy(), dict(m.u)

    def wait(self, ms: int) -> None:
        """Let `ms` pass on the boards (a measurement whose settle time is `ms`)."""
        if ms > 0:
            self.rig.measure("forward", tag=0, settle_ms=ms, n=1)

    def case(self, forces: Mapping[Port, float]) -> tuple[np.ndarray, dict[Port, float]]:
        """(de, du) under `forces` commanded, relative to rest just before."""
        rig = self.rig
        rig.forces_off()
        e0, u0 = self.read()
        rig.apply_forces(forces)
        e1, u1 = self.read()
        rig.forces_off()
        return e1 - e0, {p: u1[p] - u0.get(p, 0.0) for p in u1}

    def weight_case(
        self, weights: Weights, port: Port, newtons: float
    ) -> tuple[np.ndarray, dict[Port, float]]:
        rig = self.rig
        rig.forces_off()
        e0, u0 = self.read()
        weights.hang(port, newtons)
        e1, u1 = self.read()
        weights.remove(port)
        return e1 - e0, {p: u1[p] - u0.get(p, 0.0) for p in u1}


def fit_strain_scale(
    net: Network, de: list[np.ndarray], du: list[dict[Port, float]]
) -> tuple[np.ndarray, float, np.ndarray]:
    """Per-bond r with r_b de_b = (C u)_b, u matching the encoders (least squares)."""
    C = compatibility(net.positions, net.bonds).toarray()
    fixed = net.clamped_dofs()
    known = np.zeros((net.n_nodes * net.dim), bool)
    known[fixed] = True  # supports: u = 0
    for p in du[0]:
        known[net.dof(p)] = True
    unk = np.flatnonzero(~known)
    # the displacements of the nodes without an encoder are eliminated: project each case's
    # equations onto the complement of range(C[:, unk]), leaving equations in r alone
    Q = np.linalg.qr(C[:, unk])[0]
    P = np.eye(net.n_bonds) - Q @ Q.T
    nb = net.n_bonds
    rows_a, rows_b = [], []
    for c in range(len(de)):
        uk = np.zeros(net.n_nodes * net.dim)
        for p, val in du[c].items():
            uk[net.dof(p)] = val
        rows_a.append(P * de[c][None, :])
        rows_b.append(P @ (C @ uk))
    A = np.vstack(rows_a)
    rhs = np.concatenate(rows_b)
    # fit the change from the present gains (r = 1 + dr): where the encoders leave a
    # combination of gains undetermined (a few, on li-mao-2024) the minimum-norm solution
    # keeps the present calibration for it; the count is reported
    rhs0 = rhs - A @ np.ones(nb)
    _, sv, vt = np.linalg.svd(A, full_matrices=False)
    null = vt[sv < RCOND * sv[0]].T
    x = np.linalg.lstsq(A, rhs0, rcond=RCOND)[0] + 1.0
    res = float(np.linalg.norm(A @ x - rhs) / np.linalg.norm(rhs))
    return x, res, null


def fit_force_balance(
    net: Network,
    de: list[np.ndarray],
    known: list[dict[Port, float]],
    commanded: list[dict[Port, float]] | None = None,
    unknown_ports: tuple[Port, ...] = (),
) -> tuple[np.ndarray, dict[Port, float], dict[Port, float], float]:
    """Least squares of C^T diag(k) e = f at the free DOFs for k and each unknown actuator's
    (scale, offset). Per case, ``known[c]``: {port: true newtons} (known weights, calibrated
    actuators); ``commanded[c]``: {port: commanded F} of actuators in ``unknown_ports``."""
    C = compatibility(net.positions, net.bonds).toarray()
    free = np.flatnonzero(~net.clamped_dofs())
    nb, nf, nc = net.n_bonds, len(free), len(de)
    col = {p: nb + 2 * i for i, p in enumerate(unknown_ports)}
    A = np.zeros((nf * nc, nb + 2 * len(unknown_ports)))
    rhs = np.zeros(nf * nc)
    pos = {int(d): i for i, d in enumerate(free)}
    for c in range(nc):
        r0 = c * nf
        A[r0 : r0 + nf, :nb] = C[:, free].T * de[c][None, :]
        for p, F in known[c].items():
            rhs[r0 + pos[net.dof(p)]] += F
        for p, F in (commanded[c] if commanded is not None else {}).items():
            row = r0 + pos[net.dof(p)]
            A[row, col[p]] -= F
            A[row, col[p] + 1] -= 1.0
    scale = np.linalg.norm(A, axis=0)
    scale[scale == 0] = 1.0
    As = A / scale
    rank = np.linalg.matrix_rank(As)
    if rank < A.shape[1]:
        raise CalibrationError(
            f"stiffness and force scales not determined ({rank} of {A.shape[1]} unknowns)"
        )
    x = np.linalg.lstsq(As, rhs, rcond=None)[0] / scale
    res = float(np.linalg.norm(A @ x - rhs) / max(np.linalg.norm(rhs), 1e-300))
    s = {p: float(x[col[p]]) for p in unknown_ports}
    o = {p: float(x[col[p] + 1]) for p in unknown_ports}
    return x[:nb], s, o, res


def settle_open_gains(
    r0: np.ndarray, null: np.ndarray, p: np.ndarray, k_nominal: np.ndarray
) -> np.ndarray:
    """Choose the gain combinations the encoders leave open (``null``, bonds x d) so that the
    stiffness they imply, k = p / r with p = k r from the force balance, is nearest the
    network file's nominal stiffness (relative least squares).

    The open combinations are invisible to every sensor on the boards (the statics too: a
    network with gains r and stiffness p / r answers every load the same way), so something
    outside the measurements must pick them; here it is the design stiffness at the setting
    used, i.e. the element map's error at that one setting is taken as zero on average.
    """
    if null.shape[1] == 0:
        return r0
    target = p / k_nominal
    w = 1.0 / target
    alpha = np.linalg.lstsq(null * w[:, None], (target - r0) * w, rcond=None)[0]
    return r0 + null @ alpha


def calibrate(
    rig: Rig,
    weights: Weights,
    weight_ports: list[Port] | None = None,
    weight_n: float = 0.049,
    force_n: float = 0.05,
    levels: int = 5,
    settle_ms: int = 0,
    n: int = 1,
    move_ms: int = 500,
    save: bool = True,
    only: int | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> Calibration:
    """Calibrate every board of `rig` (see the module docstring for the steps).

    ``only``: a board id; the whole network is still loaded and fitted (a bond's calibration
    needs its neighbours'), but only that board's channels are changed and saved, and the
    other bonds keep their gains (strain_scale 1).
    """
    net = rig.network
    if only is not None and all(bd.id != only for bd in net.boards):
        raise CalibrationError(f"no board {only} in {net.name}")
    fports = force_ports(net)
    if not fports:
        raise CalibrationError("no board carries a force actuator: nothing to load with")
    if not _disp_ports(net):
        raise CalibrationError("no board carries a displacement sensor: no length reference")
    if weight_ports is None:
        # the weight hangs (gravity along -y) at the first force node and at the last one
        weight_ports = [Port(fports[-1].node, 1), Port(fports[0].node, 1)]
    meter = _Meter(rig, settle_ms, n, progress)
    k_nominal = net.k_init.astype(float).copy()

    progress("forgetting the nodes' previous calibration and latched sensor faults")
    # a gauge latched faulty (e.g. saturated under an earlier load) reads 0 from then on: the
    # fits would see its bond as missing. Calibration starts from clean nodes.
    if only is None:
        rig.broadcast("cal", {"id": 0})
        rig.broadcast("reset", {"faults": True})
    else:
        rig.request(only, "cal", {"id": 0})
        rig.request(only, "reset", {"faults": True})

    progress("strain offsets: tare at rest")
    rig.set_stiffness(k_nominal)
    meter.wait(move_ms)
    rig.tare(settle_ms=settle_ms, n=n)

    progress(f"loading each of {len(fports)} force axes at +/-{force_n} N")
    de: list[np.ndarray] = []
    du: list[dict[Port, float]] = []
    known: list[dict[Port, float]] = []
    cmds: list[dict[Port, float]] = []
    for p in fports:
        for sign in (1.0, -1.0):
            e, u = meter.case({p: sign * force_n})
            de.append(e)
            du.append(u)
            known.append({})
            cmds.append({p: sign * force_n})
    for wp in weight_ports:
        progress(f"known weight {weight_n} N at node {wp.node}")
        e, u = meter.weight_case(weights, wp, -weight_n if wp.axis == 1 else weight_n)
        de.append(e)
        du.append(u)
        known.append({wp: -weight_n if wp.axis == 1 else weight_n})
        cmds.append({})

    progress("strain gains: fitting elongations to the encoders")
    r, res_strain, null = fit_strain_scale(net, de, du)
    undetermined = null.shape[1]
    if np.any(r <= 0) or not np.all(np.isfinite(r)):
        raise CalibrationError(f"strain gain fit gave non-positive corrections: {r}")
    progress("force actuators: scale and offset from force balance")
    k0, s, o, res_force = fit_force_balance(net, [d * r for d in de], known, cmds, tuple(fports))
    if undetermined:
        progress(f"strain gains: {undetermined} combination(s) left open by the encoders")
        r = settle_open_gains(r, null, k0 * r, k_nominal)
    r_fit = r  # what the sweep's elongations are corrected with
    if only is not None:
        mine = np.zeros(net.n_bonds, bool)
        for bd in net.boards:
            if bd.id == only:
                mine[list(bd.bonds)] = True
        r = np.where(mine, r, 1.0)  # the other boards keep their gains
    old = _strain_gains(rig)
    gains = old * r
    for bd in net.boards:
        if only is not None and bd.id != only:
            continue
        for slot, b in enumerate(bd.bonds):
            rig.request(bd, "configure", {"slot": slot, "gain": float(gains[b])})

    def true_forces(cmd: Mapping[Port, float]) -> dict[Port, float]:
        return {p: s[p] * f + o[p] for p, f in cmd.items()}

    k_min, k_max = net.k_min.astype(float), net.k_max.astype(float)
    fracs = np.linspace(0.0, 1.0, levels)
    k_levels = np.array([k_min + f * (k_max - k_min) for f in fracs])
    k_real = np.zeros_like(k_levels)
    sweep_ports = fports[:: max(1, len(fports) // 4)]
    res_sweep = []
    for li, kc in enumerate(k_levels):
        progress(f"stiffness sweep {li + 1}/{levels}: commanding {fracs[li]:.0%} of each range")
        rig.set_stiffness(kc)
        meter.wait(move_ms)  # the servos travel
        des, lds = [], []
        for p in sweep_ports:
            for sign in (1.0, -1.0):
                cmd = {p: sign * force_n}
                e, _ = meter.case(cmd)
                des.append(e * r_fit / r)
                lds.append(true_forces(cmd))
        try:
            k_real[li], _, _, res = fit_force_balance(net, des, lds)
        except CalibrationError as exc:  # say which bonds read nothing, and any latched fault
            dead = [f"{i}-{j}" for (i, j), d in zip(net.bond_ids(), np.ptp(des, axis=0),
                                                   strict=True) if d == 0]  # fmt: skip
            why = "; ".join(rig.fault_report()) or "no latched fault"
            raise CalibrationError(
                f"sweep level {li + 1}: {exc}; bonds reading no change: {dead or 'none'}; {why}"
            ) from None
        res_sweep.append(res)
    cal = Calibration(
        network=net.name,
        bonds=net.bond_ids(),
        strain_scale=r,
        strain_gain=gains,
        k_levels=k_levels,
        k_real=k_real,
        k_min=k_min,
        k_max=k_max,
        force_scale=s,
        force_offset=o,
        residual_strain=res_strain,
        residual_force=max([res_force, *res_sweep]),
        notes=[
            f"{meter.count} measurements",
            f"{undetermined} combination(s) of strain gains not determined by the encoders "
            "(invisible to the sensors; settled by the file's nominal stiffness)",
        ],
    )
    progress("loading the calibration on the nodes")
    cal.id = load_on_boards(rig, cal, only)
    rig.set_stiffness(k_nominal)  # now realised k, through the nodes' maps
    meter.wait(move_ms)
    rig.forces_off()
    rig.tare(settle_ms=settle_ms, n=n)
    if save:
        progress("saving calibration on the boards")
        if only is None:
            rig.save()
        else:
            rig.request(next(bd for bd in net.boards if bd.id == only), "save")
        cal.saved = True
    return cal


__all__ = [
    "Calibration",
    "CalibrationError",
    "PromptWeights",
    "Weights",
    "calibrate",
    "check_gradient",
    "load_on_boards",
    "model_gradient",
    "fit_force_balance",
    "fit_strain_scale",
]


def calibrate_emulated(lab: Any, rig: Rig, settle_ms: int = 0, n: int = 1) -> Calibration:
    """Calibrate emulated boards (known weights hung by the emulator): what a lab does once
    before training. The calibration is loaded on the nodes but not saved, so a run's
    checkpoints (which carry it) stay the trainer's."""
    from insitu.rig.lab import lab_weights

    return calibrate(rig, lab_weights(lab), settle_ms=settle_ms, n=n, save=False)
