"""The emulated world: a spring network driven by emulated parts, solved quasi-statically.

Boards act on the world only through a ``Bus`` (``world.bus(board_id)``) with two methods,
``read(device, channel)`` and ``write(device, channel, value)``, in the raw units a board's
drivers see (docs/emulator.md has the device table). Tests and benchmarks look at the truth
(exact u, e, k, forces, clamps, the current ``Equilibrium`` and the exact gradient) through the
``World`` methods.

Time and state
--------------
Every write is an event stamped with the world clock. On the next read the world applies the
pending events in time order: each change of loads, clamps or stiffness starts a new settling
segment u(t) = u_eq + (u_start - u_eq) exp(-(t - t0) / tau) (tau = the network's
relaxation_time; with relaxation off u = u_eq at once). Servos move toward their targets at a
limited rate, one step per PWM frame, so a moving servo produces one state per frame. Writes
closer together than tau/20 are merged into one state (their order is kept, the intermediate
equilibria are not solved; the error is below 5 % of tau in time).

Factorisation: an ``Equilibrium`` (sparse LU of K_ff) is built once per (stiffness, clamp set,
broken bonds) state and cached; a change of forces or of clamp targets alone re-uses it.
``World.factorisations`` counts builds. In nonlinear mode each state change runs Newton
(``solve_nonlinear``) from the previous equilibrium instead.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from insitu.network.schema import AXES, Board, Network
from insitu.physics.linear import Equilibrium, MechanismError, compatibility
from insitu.physics.nonlinear import (
    NonlinearState,
    solve_nonlinear,
    tangent_adjoint_gradient,
    tangent_stiffness,
)

from . import friction
from .clock import RealClock, VirtualClock
from .coil import CoilBank
from .hardware import (
    Clamp,
    DispSensor,
    ForceActuator,
    Profile,
    StiffnessElement,
    StrainSensor,
    get_profile,
    nominal_pulse,
    part_rng,
    servo_table,
)

_EQ_CACHE_SIZE = 8  # stiffness/clamp states kept factorised (coupled learning toggles clamps)
_HISTORY = 32  # settling segments kept, for sensor conversions that are up to a period old
_MERGE_FRACTION = 0.05  # writes within this fraction of tau share one state
_KIND_STRAIN, _KIND_ELEMENT, _KIND_FORCE, _KIND_CLAMP, _KIND_DISP = range(1, 6)


class DeviceError(LookupError):
    """A board was asked for a device or channel it does not carry."""


@dataclass
class _Segment:
    t0: float
    u_start: np.ndarray
    u_eq: np.ndarray
    e_start: np.ndarray
    e_eq: np.ndarray


@dataclass
class _Event:
    t: float
    kind: str  # "force", "clamp", "release", "k"
    dof: int = -1
    value: float = 0.0


def settle_time(tau: float, fraction: float = 0.01) -> float:
    """Time for a first-order step response to come within `fraction` of its final value."""
    return 0.0 if tau <= 0 else tau * math.log(1.0 / fraction)


class World:
    """A network of springs with emulated sensors, stiffness elements, forces and clamps.

    ``profile`` names a hardware profile (ideal, realistic, harsh) or is a ``Profile``; ``seed``
    fixes every part's errors and noise; ``relax`` overrides the profile's settling switch;
    ``clock`` is shared with the boards (a fresh ``VirtualClock`` by default).
    """

    def __init__(
        self,
        network: Network,
        profile: str | Profile = "ideal",
        seed: int = 0,
        nonlinear: bool = False,
        clock: VirtualClock | RealClock | None = None,
        relax: bool | None = None,
    ) -> None:
        self.net = network
        self.profile = get_profile(profile)
        self.nominal = self.profile.nominal
        self.seed = seed
        self.nonlinear = nonlinear
        self.clock = clock if clock is not None else VirtualClock()
        self.tau = float(network.relaxation_time)
        relax = self.profile.relax if relax is None else relax
        self.relax = bool(relax) and self.tau > 0
        self.dim = network.dim
        self.n_dof = network.n_nodes * network.dim
        self.C = compatibility(network.positions, network.bonds)
        self._supports = network.clamped_dofs()
        self._lock = threading.RLock()
        self.factorisations = 0
        self.nonlinear_solves = 0

        prof, nom = self.profile, self.nominal
        B = network.n_bonds
        self.strain = [
            StrainSensor(prof.strain, nom, part_rng(seed, _KIND_STRAIN, b)) for b in range(B)
        ]
        self.elements = [
            StiffnessElement(
                prof.element,
                nom,
                network.k_min[b],
                network.k_max[b],
                network.k_init[b],
                part_rng(seed, _KIND_ELEMENT, b),
            )
            for b in range(B)
        ]
        self.boards: dict[int, Board] = {bd.id: bd for bd in network.boards}
        self.force_parts: dict[int, ForceActuator] = {}
        self.clamp_parts: dict[int, Clamp] = {}
        self.disp_parts: dict[int, DispSensor] = {}
        for bd in network.boards:
            base = network.index(bd.node) * self.dim
            for a in range(self.dim):
                dof = base + a
                if "force" in bd.carries:
                    self.force_parts[dof] = ForceActuator(
                        prof.force, nom, part_rng(seed, _KIND_FORCE, dof)
                    )
                if "clamp" in bd.carries:
                    self.clamp_parts[dof] = Clamp(prof.clamp, part_rng(seed, _KIND_CLAMP, dof))
                if "displacement" in bd.carries:
                    self.disp_parts[dof] = DispSensor(
                        prof.disp, nom, part_rng(seed, _KIND_DISP, dof)
                    )

        now = self.clock.now()
        # the elements power up where the firmware's boot sets them: nominal pulse of k_init
        k0 = np.array([el.true_k(el.last_pulse) for el in self.elements])
        self._k_from = k0.copy()
        self._k_to = k0.copy()
        self._t_cmd = np.full(B, now)
        self._rate = np.array([el.rate for el in self.elements])
        self._finite_rate = np.isfinite(self._rate)
        self._frame = prof.element.frame_s
        self.k = k0.copy()  # true stiffness of the current state
        self._alive = np.ones(B, dtype=bool)
        self._C_alive: sp.csr_matrix = self.C
        self._f = np.zeros(self.n_dof)  # true forces
        self._clamps: dict[int, float] = {}  # DOF -> true held position
        self._events: deque[_Event] = deque()
        self._t_applied = now
        self._moving = False
        self._eq_cache: OrderedDict[tuple, Equilibrium] = OrderedDict()
        self._checked: set[tuple[bytes, bytes]] = set()  # clamp/bond sets known rigid
        self._eq: Equilibrium | None = None
        self._nl_state: NonlinearState | None = None
        self._segments: deque[_Segment] = deque(maxlen=_HISTORY)
        self._e_cache: tuple[float, int, np.ndarray] | None = None
        self.mechanism: str | None = None  # set while broken bonds leave a mechanism
        self.coils: CoilBank | None = None  # voice-coil bonds (use_coils), else servos
        zero = np.zeros(self.n_dof)
        self._new_state(now, now, u_start=zero)

    # ------------------------------------------------------------------ boards

    def bus(self, board_id: int) -> Bus:
        """The bus of one board: what its emulated HAL reads and writes."""
        if board_id not in self.boards:
            raise DeviceError(f"no board {board_id} in network {self.net.name}")
        return Bus(self, self.boards[board_id])

    def nominal_config(self, board_id: int) -> dict:
        """The calibration a node's config needs to convert this world's raw units."""
        bd = self.boards[board_id]
        nom = self.nominal
        ids = self.net.node_ids
        return {
            "strain_m_per_count": nom.strain_m_per_count,
            "strain_offset": nom.strain_offset_counts,
            "disp_m_per_count": nom.disp_m_per_count,
            "force_cmd_per_n": nom.force_cmd_per_n,
            "bonds": [
                {
                    "slot": s,
                    "bond": [ids[self.net.bonds[b, 0]], ids[self.net.bonds[b, 1]]],
                    "k_min": float(self.net.k_min[b]),
                    "k_max": float(self.net.k_max[b]),
                    "k_init": float(self.net.k_init[b]),
                    "table": servo_table(self.net.k_min[b], self.net.k_max[b], nom),
                }
                for s, b in enumerate(bd.bonds)
            ],
        }

    def use_coils(self, law: Callable[[int], float | None]) -> None:
        """Every bond becomes a voice-coil virtual spring whose loop gain (commands per
        count) ``law(bond)`` reads from its node (insitu.emulator.coil)."""
        with self._lock:
            self.coils = CoilBank(self, law)
            self._sync()

    # ------------------------------------------------------------------ events (writes)

    def _push(self, ev: _Event) -> None:
        # a long gap since the first pending write: solve what is pending first, so that the
        # settling in between is represented (only matters with relaxation on)
        if self.relax and self._events and ev.t - self._events[0].t > _MERGE_FRACTION * self.tau:
            self._sync(ev.t)
        self._events.append(ev)

    def command_stiffness(self, bond: int, pulse_us: float) -> None:
        with self._lock:
            now = self.clock.now()
            target = self.elements[bond].command(float(pulse_us))
            if target is None:
                return  # dead band or stuck: the servo does not move
            k_now = self._elements_k(now, bond)
            self._k_from[bond] = k_now
            self._k_to[bond] = target
            self._t_cmd[bond] = now
            self._push(_Event(now, "k"))

    def command_force(self, dof: int, command: float) -> None:
        with self._lock:
            true = self.force_parts[dof].true_force(float(command))
            self._push(_Event(self.clock.now(), "force", dof, true))

    def command_clamp(self, dof: int, target: float) -> None:
        with self._lock:
            nom = self.nominal
            target_m = float(target)
            if nom.clamp_in_counts:
                target_m = (target_m - nom.disp_offset_counts) / nom.disp_counts_per_m
            true = self.clamp_parts[dof].true_target(target_m)
            self._push(_Event(self.clock.now(), "clamp", dof, true))

    def command_lock(self, dof: int, on: float) -> None:
        """The kit's brake clamp (lock pin): on holds the DOF where it is now, off releases."""
        if not on:
            self.command_release(dof)
            return
        with self._lock:
            now = self.clock.now()
            self._sync(now)
            u = float(self._u_at(now)[dof])
            true = self.clamp_parts[dof].true_target(u)
            self._push(_Event(now, "clamp", dof, true))

    def command_release(self, dof: int) -> None:
        with self._lock:
            self._push(_Event(self.clock.now(), "release", dof))

    # ------------------------------------------------------------------ state advance

    def _elements_k(self, t: float, bond: int | None = None) -> np.ndarray | float:
        """True k of the elements at time t: rate-limited steps toward the targets."""
        sl = slice(None) if bond is None else slice(bond, bond + 1)
        k_from, k_to, t_cmd = self._k_from[sl], self._k_to[sl], self._t_cmd[sl]
        rate, finite = self._rate[sl], self._finite_rate[sl]
        delta = k_to - k_from
        out = np.where(t >= t_cmd, k_to, k_from)  # instant elements
        if finite.any():
            frame = self._frame
            ticks = np.floor(t / frame + 1e-9) - np.floor(t_cmd / frame + 1e-9)
            moved = np.maximum(ticks, 0.0) * np.where(finite, rate, 0.0) * frame
            partial = k_from + np.sign(delta) * moved
            out = np.where(finite, np.where(moved >= np.abs(delta), k_to, partial), out)
        return out if bond is None else float(out[0])

    def _still_moving(self, t: float) -> bool:
        if not self._finite_rate.any():
            return False
        k = self._elements_k(t)
        return bool(np.any(k != self._k_to))

    def _sync(self, now: float | None = None) -> None:
        """Apply pending events and servo frames up to `now`, one state per change time."""
        if now is None:
            now = self.clock.now()
        if self.coils is not None:  # a loop gain set since the world last looked changes k
            self.coils.refresh(now)
        if self.mechanism is not None:
            # the last state could not be solved; retry with whatever changed since
            while self._events and self._events[0].t <= now:
                self._apply(self._events.popleft())
            self._t_applied = max(self._t_applied, now)
            self._new_state(now, now)
        while self._events or self._moving:
            t_ev = self._events[0].t if self._events else math.inf
            t_fr = math.inf
            if self._moving:
                t_fr = (math.floor(self._t_applied / self._frame + 1e-9) + 1) * self._frame
            tn = min(t_ev, t_fr)
            if tn > now:
                break
            tb = min(tn + _MERGE_FRACTION * self.tau, now) if self.relax else now
            while self._events and self._events[0].t <= tb:
                self._apply(self._events.popleft())
            self._t_applied = max(self._t_applied, tb)
            self._new_state(tn, tb)
            self._moving = self._still_moving(tb)

    def _apply(self, ev: _Event) -> None:
        if ev.kind == "force":
            self._f[ev.dof] = ev.value
        elif ev.kind == "clamp":
            self._clamps[ev.dof] = ev.value
        elif ev.kind == "release":
            self._clamps.pop(ev.dof, None)
        elif ev.kind == "k":
            self._moving = self._moving or bool(self._finite_rate.any())

    def _clamp_state(self) -> tuple[np.ndarray, np.ndarray]:
        mask = self._supports.copy()
        uc = np.zeros(self.n_dof)
        for dof, target in self._clamps.items():
            if not self._supports[dof]:  # supports stay at zero whatever a clamp says
                mask[dof] = True
                uc[dof] = target
        return mask, uc

    def _equilibrium(self, k: np.ndarray, mask: np.ndarray) -> Equilibrium:
        key = (k[self._alive].tobytes(), mask.tobytes(), self._alive.tobytes())
        eq = self._eq_cache.get(key)
        if eq is None:
            topo = (mask.tobytes(), self._alive.tobytes())
            eq = Equilibrium(
                self._C_alive, k[self._alive], mask, node_ids=self.net.node_ids, dim=self.dim,
                check_modes=topo not in self._checked,
            )
            self._checked.add(topo)  # only reached when the check passed
            self.factorisations += 1
            self._eq_cache[key] = eq
            if len(self._eq_cache) > _EQ_CACHE_SIZE:
                self._eq_cache.popitem(last=False)
        else:
            self._eq_cache.move_to_end(key)
        return eq

    def _elongations(self, u: np.ndarray) -> np.ndarray:
        """Per-bond elongation of displacement u (linear e = C u; nonlinear: stretch)."""
        if not self.nonlinear:
            return self.C @ u
        x = self.net.positions + u.reshape(-1, self.dim)
        a, b = self.net.bonds[:, 0], self.net.bonds[:, 1]
        L0 = np.linalg.norm(self.net.positions[b] - self.net.positions[a], axis=1)
        return np.linalg.norm(x[b] - x[a], axis=1) - L0

    def _new_state(self, t0: float, tb: float, u_start: np.ndarray | None = None) -> None:
        try:
            self._solve_state(t0, tb, u_start)
        except MechanismError as exc:
            self.mechanism = str(exc)
            raise
        self.mechanism = None

    def _solve_state(self, t0: float, tb: float, u_start: np.ndarray | None) -> None:
        k = self._elements_k(tb)
        self.k = k
        mask, uc = self._clamp_state()
        if u_start is None:
            u_start = self._u_at(t0)
        if self.nonlinear:
            u0 = self._segments[-1].u_eq.copy() if self._segments else np.zeros(self.n_dof)
            u0[mask] = uc[mask]  # solve_nonlinear holds clamped DOFs where u0 puts them
            alive = self._alive
            state = solve_nonlinear(
                self.net.positions, self.net.bonds[alive], k[alive], mask, self._f, u0=u0
            )
            self.nonlinear_solves += 1
            self._nl_state = state
            u_eq = state.u
            self._eq = None
        else:
            self._eq = self._equilibrium(k, mask)
            u_eq = self._eq.solve(self._f, uc)
            if self.profile.friction_n > 0:  # nodes stick where they are (friction.py)
                u_eq = friction.settle(self._C_alive, k[self._alive], mask, uc, self._f,
                                       u_start, self.profile.friction_n)  # fmt: skip
        self._segments.append(
            _Segment(t0, u_start, u_eq, self._elongations(u_start), self._elongations(u_eq))
        )
        self._e_cache = None

    def _segment_at(self, t: float) -> tuple[_Segment, float]:
        """The settling segment that holds at time t and its decay factor."""
        seg = self._segments[-1]
        if t < seg.t0:
            for s in reversed(self._segments):
                seg = s
                if s.t0 <= t:
                    break
            else:
                return seg, 1.0  # before the oldest kept state: its starting point
        if not self.relax:
            return seg, 0.0
        return seg, math.exp(-(t - seg.t0) / self.tau)

    def _u_at(self, t: float) -> np.ndarray:
        seg, d = self._segment_at(t)
        if d == 0.0:
            return seg.u_eq.copy()
        return seg.u_eq + (seg.u_start - seg.u_eq) * d

    def _e_at(self, t: float) -> np.ndarray:
        seg, d = self._segment_at(t)
        if d == 0.0:
            return seg.e_eq
        if not self.nonlinear:  # linear: elongation relaxes with the displacement
            return seg.e_eq + (seg.e_start - seg.e_eq) * d
        c = self._e_cache
        if c is None or c[0] != t or c[1] != id(seg):
            self._e_cache = c = (t, id(seg), self._elongations(self._u_at(t)))
        return c[2]

    def _bond_e(self, bond: int, t: float) -> float:
        seg, d = self._segment_at(t)
        if d == 0.0:
            return float(seg.e_eq[bond])
        if not self.nonlinear:
            return float(seg.e_eq[bond] + (seg.e_start[bond] - seg.e_eq[bond]) * d)
        return float(self._e_at(t)[bond])

    # ------------------------------------------------------------------ reads (through a bus)

    def read_strain(self, bond: int) -> float | int:
        with self._lock:
            now = self.clock.now()
            self._sync(now)
            return self.strain[bond].read(now, lambda tc: self._bond_e(bond, tc))

    def strain_ready(self, bond: int) -> int:
        with self._lock:
            return int(self.strain[bond].ready(self.clock.now()))

    def _disp_now(self, dof: int) -> float:
        """A DOF's displacement now, as its sensor sees it (call with the lock held)."""
        now = self.clock.now()
        self._sync(now)
        seg, d = self._segment_at(now)
        return float(seg.u_eq[dof] + (seg.u_start[dof] - seg.u_eq[dof]) * d if d else seg.u_eq[dof])

    def read_disp(self, dof: int) -> float | int:
        with self._lock:
            return self.disp_parts[dof].read(self._disp_now(dof))

    def read_disp_u16(self, dof: int) -> int:
        """One ADC conversion of a DOF's displacement sensor (a pin-level board's ADC pin)."""
        with self._lock:
            return self.disp_parts[dof].read_u16(self._disp_now(dof))

    def true_disp(self, dof: int) -> float:
        """The true displacement of a DOF now (m): what a pin-level sensor model converts."""
        with self._lock:
            now = self.clock.now()
            self._sync(now)
            return float(self._u_at(now)[dof])

    # ------------------------------------------------------------------ truth (host side)

    def now(self) -> float:
        return self.clock.now()

    def settle(self, fraction: float = 1e-3) -> None:
        """Sleep the world clock until settling is within `fraction` (and servos arrived)."""
        with self._lock:
            self._sync()
            wait = settle_time(self.tau, fraction) if self.relax else 0.0
            if self._moving:
                wait += float(np.max(np.abs(self._k_to - self.k) / self._rate)) + self._frame
        if wait > 0:
            self.clock.sleep_us(wait * 1e6)

    def u(self, t: float | None = None) -> np.ndarray:
        """True displacement (all DOFs, metres) now, or at a past time t."""
        with self._lock:
            now = self.clock.now()
            self._sync(now)
            return self._u_at(now if t is None else t)

    def u_eq(self) -> np.ndarray:
        """The equilibrium the world is settling toward."""
        with self._lock:
            self._sync()
            return self._segments[-1].u_eq.copy()

    def elongation(self, t: float | None = None) -> np.ndarray:
        """True per-bond elongation now (linear: C u; nonlinear: stretch), metres."""
        with self._lock:
            now = self.clock.now()
            self._sync(now)
            return np.array(self._e_at(now if t is None else t), copy=True)

    def stiffness(self) -> np.ndarray:
        """True per-bond stiffness of the current state (N/m)."""
        with self._lock:
            self._sync()
            return self.k.copy()

    def forces(self) -> np.ndarray:
        """True force per DOF (N) acting now (forces on clamped DOFs go to the clamp)."""
        with self._lock:
            self._sync()
            return self._f.copy()

    def clamps(self) -> dict[int, float]:
        """Held DOFs (besides the supports) and where they are held, metres."""
        with self._lock:
            self._sync()
            return {d: v for d, v in self._clamps.items() if not self._supports[d]}

    def clamped_mask(self) -> np.ndarray:
        with self._lock:
            self._sync()
            return self._clamp_state()[0]

    def alive(self) -> np.ndarray:
        """Bonds not broken."""
        return self._alive.copy()

    def equilibrium(self) -> Equilibrium:
        """The factorised linear Equilibrium of the current state (alive bonds only)."""
        with self._lock:
            self._sync()
            if self._eq is None:
                raise RuntimeError("nonlinear world: use exact_gradient or tangent()")
            return self._eq

    def tangent(self):
        """(K_T, G, stretch) of the current nonlinear equilibrium."""
        with self._lock:
            self._sync()
            u = self._segments[-1].u_eq
            alive = self._alive
            return tangent_stiffness(self.net.positions, self.net.bonds[alive], self.k[alive], u)

    def exact_gradient(
        self, dL_du: np.ndarray, f: np.ndarray | None = None, u_clamped: np.ndarray | None = None
    ) -> np.ndarray:
        """Exact dL/dk per bond (0 for broken bonds) at the current stiffness and clamps.

        By default at the current equilibrium (current true forces); pass `f` (and
        `u_clamped`) to evaluate at another load on the same stiffness state, e.g. the nominal
        input a benchmark meant to apply.
        """
        with self._lock:
            self._sync()
            g = np.zeros(self.net.n_bonds)
            alive = self._alive
            if self.nonlinear:
                mask, uc = self._clamp_state()
                if f is None:
                    state = self._nl_state
                else:
                    u0 = np.zeros(self.n_dof) if u_clamped is None else np.array(u_clamped)
                    state = solve_nonlinear(
                        self.net.positions, self.net.bonds[alive], self.k[alive], mask, f, u0=u0
                    )
                ga, _ = tangent_adjoint_gradient(
                    self.net.positions, self.net.bonds[alive], self.k[alive], mask, state, dL_du
                )
            else:
                eq = self.equilibrium()
                if f is None:
                    u = self._segments[-1].u_eq
                else:
                    uc = self._clamp_state()[1] if u_clamped is None else u_clamped
                    u = eq.solve(f, uc)
                ga, _ = eq.gradient(u, dL_du)
            g[alive] = ga
            return g

    # ------------------------------------------------------------------ faults support

    def _set_alive(self, bond: int, alive: bool) -> str | None:
        """Break or repair a bond; returns the mechanism message if the network now has one."""
        with self._lock:
            try:
                self._sync()
            except MechanismError:
                pass  # an earlier break; this change may cure it
            self._alive[bond] = alive
            self._C_alive = self.C[np.flatnonzero(self._alive)]
            self.strain[bond].broken = not alive
            self._events.append(_Event(self.clock.now(), "k"))
            try:
                self._sync()
            except MechanismError as exc:
                return str(exc)
            return None


class Bus:
    """One board's view of the world: ``read(device, channel)`` / ``write(device, channel, v)``.

    Devices (docs/emulator.md): read "strain" (slot) -> HX711 count, "ready" (slot) -> 1 when
    a new conversion is available, "disp" (axis) -> the displacement sensor's count
    (ADCBridge's sum of 16 conversions), "adc" (axis) -> one conversion as ADC.read_u16 returns
    it, "u" (axis) -> true displacement (m); write "stiffness" (slot, pulse us), "force" (axis,
    the profile's force commands), "clamp" (axis, a target), "release" (axis, ignored),
    "lock" (axis, a brake: 1 holds where it is), "coil" (slot, the virtual spring's command;
    coil builds, ``World.use_coils``).
    Axes are spatial: 0 = x, 1 = y, 2 = z of this board's node. Slots index Board.bonds.
    """

    def __init__(self, world: World, board: Board) -> None:
        self.world = world
        self.board = board
        self.clock = world.clock
        self._base = world.net.index(board.node) * world.dim
        self._reads: dict[str, Callable[[int], float | int]] = {
            "strain": lambda ch: world.read_strain(self._bond(ch)),
            "ready": lambda ch: world.strain_ready(self._bond(ch)),
            "disp": lambda ch: world.read_disp(self._dof(ch, "displacement")),
            # one conversion of the sensor's ADC, for pin-level boards (emulator/mp/silicon.py)
            "adc": lambda ch: world.read_disp_u16(self._dof(ch, "displacement")),
            "u": lambda ch: world.true_disp(self._dof(ch, "displacement")),
        }
        self._writes: dict[str, Callable[[int, float], None]] = {
            "stiffness": lambda ch, v: world.command_stiffness(self._bond(ch), v),
            "force": lambda ch, v: world.command_force(self._dof(ch, "force"), v),
            "clamp": lambda ch, v: world.command_clamp(self._dof(ch, "clamp"), v),
            "release": lambda ch, v: world.command_release(self._dof(ch, "clamp")),
            "coil": self._coil,
            "lock": lambda ch, v: world.command_lock(self._dof(ch, "clamp"), v),
        }

    def _coil(self, slot: int, value: float) -> None:
        coils = self.world.coils
        if coils is None:
            raise DeviceError("voice-coil elements are emulated for in-process boards only")
        coils.command(self._bond(slot), value)

    def _bond(self, slot: int) -> int:
        bonds = self.board.bonds
        if not isinstance(slot, int) or not 0 <= slot < len(bonds):
            raise DeviceError(
                f"board {self.board.id} has bond slots 0..{len(bonds) - 1}, not {slot!r}"
            )
        return bonds[slot]

    def _dof(self, axis: int, need: str) -> int:
        if need not in self.board.carries:
            have = ", ".join(sorted(self.board.carries)) or "nothing"
            raise DeviceError(
                f"board {self.board.id} (node {self.board.node}) carries no {need} device "
                f"(it carries {have})"
            )
        if not isinstance(axis, int) or not 0 <= axis < self.world.dim:
            raise DeviceError(f"axis must be 0..{self.world.dim - 1} ({AXES[: self.world.dim]})")
        return self._base + axis

    def read(self, device: str, channel: int) -> float | int:
        try:
            fn = self._reads[device]
        except KeyError:
            raise DeviceError(f"no readable device {device!r} (have {sorted(self._reads)})")
        return fn(channel)

    def write(self, device: str, channel: int, value: float) -> None:
        try:
            fn = self._writes[device]
        except KeyError:
            raise DeviceError(f"no writable device {device!r} (have {sorted(self._writes)})")
        fn(channel, value)

    def nominal_pulse(self, slot: int, k: float) -> float:
        """Nominal servo pulse for stiffness k on a slot (what the firmware's table gives)."""
        b = self._bond(slot)
        net = self.world.net
        return nominal_pulse(k, net.k_min[b], net.k_max[b], self.world.nominal)


# ----------------------------------------------------------------------------- gradient check


@dataclass
class GradientCheck:
    insitu: np.ndarray  # per bond, as nodes would compute it (nominal calibration)
    exact: np.ndarray  # per bond, physics core at the true stiffness and nominal loads
    e_forward: np.ndarray
    e_adjoint: np.ndarray  # per unit adjoint scale
    cosine: float
    rel_err: float


def _mean_reads(world: World, bonds: Sequence[int], n: int) -> np.ndarray:
    """Mean of n fresh conversions per bond, polled like a node's non-blocking driver."""
    rate = world.profile.strain.sample_rate
    step_us = 1000.0 if rate is None else 1e6 / rate / 4
    acc = np.zeros(len(bonds))
    got = np.zeros(len(bonds), dtype=int)
    while True:
        for i, b in enumerate(bonds):
            if got[i] < n and world.strain_ready(b):
                acc[i] += world.read_strain(b)
                got[i] += 1
        if got.min() >= n:
            return acc / n
        world.clock.sleep_us(step_us)


def gradient_check(
    world: World,
    load: dict[int, float],
    dL_du: np.ndarray,
    n: int = 16,
    settle: float | None = None,
    adjoint_peak: float | None = None,
) -> GradientCheck:
    """Emulate in-situ backprop on `world` through its buses, as the nodes would compute it.

    `load`: DOF -> newtons for the forward phase (written to the force actuators); `dL_du`
    the loss gradient (adjoint force is -dL/du at its nonzero DOFs, scaled so its largest
    component is `adjoint_peak` newtons — the host's sigma, divided out again). Each bond is
    tared (mean of n reads, no load), then measured in each phase after `settle` seconds
    (default 5 tau), and converted with the nominal calibration.
    """
    net = world.net
    nom = world.nominal
    bonds = list(range(net.n_bonds))
    settle = 5 * world.tau if settle is None else settle
    from insitu_node.learning.convention import adjoint_force

    f_adj = adjoint_force(np.asarray(dL_du, dtype=float))
    if adjoint_peak is None:
        adjoint_peak = max(abs(v) for v in load.values())
    sigma = adjoint_peak / float(np.max(np.abs(f_adj)))

    def phase(forces: dict[int, float]) -> np.ndarray:
        for dof in world.force_parts:
            world.command_force(dof, forces.get(dof, 0.0))
        world.clock.sleep_us(settle * 1e6)
        return _mean_reads(world, bonds, n)

    missing = [d for d in list(load) + list(np.flatnonzero(f_adj)) if d not in world.force_parts]
    if missing:
        raise DeviceError(f"no force actuator at DOFs {missing}")
    tare = phase({})
    e_fwd = (phase(load) - tare) / nom.strain_counts_per_m
    adj = {int(d): sigma * f_adj[d] for d in np.flatnonzero(f_adj)}
    e_adj = (phase(adj) - tare) / nom.strain_counts_per_m / sigma
    phase({})
    insitu = e_fwd * e_adj
    f_nom = np.zeros(world.n_dof)
    for dof, v in load.items():
        f_nom[dof] = v
    exact = world.exact_gradient(dL_du, f=f_nom)
    cos = float(insitu @ exact / (np.linalg.norm(insitu) * np.linalg.norm(exact)))
    rel = float(np.linalg.norm(insitu - exact) / np.linalg.norm(exact))
    return GradientCheck(insitu, exact, e_fwd, e_adj, cos, rel)


__all__ = ["Bus", "DeviceError", "GradientCheck", "World", "gradient_check", "settle_time"]
