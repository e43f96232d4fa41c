"""The voice-coil "virtual spring" stiffness element as an emulated part (docs/emulator.md).

A coil bond is three things in parallel across the slide (hardware/docs/node.md): the sensing
flexure (k_s), a voice coil on an H-bridge, and the firmware's loop (``hal/coil.py``) that
commands ``c = round(-G * (count - offset))`` every control tick, G being the gain the node set
for its k: ``(k - k_s) * m_per_count * cmd_per_n``, held as a 15-bit mantissa and a shift.

The world is quasi-static, so it does not run that loop in time: iterated without the bond's
mass and damping, a loop of gain ``(k - k_s) / k_s`` (about 6) diverges, and with them it
settles in about ``tau / (1 + gain)``, far inside the settle time a measurement waits. The world
takes the loop's fixed point instead: a spring of stiffness

    k_true = k_s,true + G * counts_per_m,true * newtons_per_command,true

with G the gain the firmware actually holds — read from the node's driver the way a debugger
reads a register, because a quasi-static world has no other way to learn a loop law before the
loop has run under load. So the world realises the loop's own quantisation of k (2^-16
relative), the coil's force-constant error and the flexure's; a loop offset (an untared node)
and the driver's PWM steps (see ``CoilSpec.force_step_n``) are not modelled, and the clip at
full duty is reported (``CoilBank.saturated``) rather than solved, since it lies beyond the
gauge's range with the kit's coil. In-process boards only: a MicroPython-process board's
driver is in another process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from insitu.hardware.pinmap import BENCH

if TYPE_CHECKING:
    from insitu.emulator.hardware import Profile
    from insitu.emulator.world import World

ELEMENTS = ("servo", "coil")
DUTY_FULL = 65535  # duty_u16 at full duty (hal/board.py hbridge_sink)
_KIND_COIL = 6  # part_rng kind (world.py uses 1..5)


def with_element(profile: Profile, element: str) -> Profile:
    """``profile`` built with ``element`` stiffness elements (named "NAME+coil")."""
    if element not in ELEMENTS:
        raise ValueError(f"unknown stiffness element {element!r} (known: {', '.join(ELEMENTS)})")
    if element == "servo":
        return profile
    return replace(profile, name=f"{profile.name}+{element}", element_kind=element)


def profile_name(profile: str, element: str) -> str:
    """The profile name a CLI passes on: "realistic" + "coil" -> "realistic+coil"."""
    return profile if element == "servo" else f"{profile}+{element}"


@dataclass(frozen=True)
class CoilSpec:
    """The kit's coil element (hardware/docs/bom.md, option B) and its errors."""

    # assumption (bom.md): a small voice coil, force constant 1.0 N/A, 8 ohm, on a DRV8835 from
    # the 5 V actuator rail: 0.625 A and 0.625 N at full duty (BENCH.coil_cmd_per_n)
    force_constant_n_per_a: float = 1.0
    resistance_ohm: float = 8.0
    supply_v: float = 5.0
    # rp2 PWM at 20 kHz: 125 MHz / 20 kHz = 6250 counter steps per period (RP2040 datasheet,
    # 4.5.2.6); an ESP32 LEDC at 20 kHz resolves 2^11 = 2048
    pwm_levels: int = 6250
    flexure_k: float = BENCH.flexure_k  # polyimide sensing flexure (node.md): 20-32 N/m
    scale_error: float = 0.0  # relative error of K_f * V / R, standard deviation
    flexure_error: float = 0.0  # relative error of the flexure's k_s, standard deviation

    @property
    def max_n(self) -> float:
        """Force at full duty (N)."""
        return self.force_constant_n_per_a * self.supply_v / self.resistance_ohm

    @property
    def newtons_per_command(self) -> float:
        return self.max_n / DUTY_FULL

    @property
    def force_step_n(self) -> float:
        """The smallest force change the driver's PWM makes (N), not modelled in the world."""
        return self.max_n / self.pwm_levels


COIL_SPECS = {
    "ideal": CoilSpec(),
    # assumptions: K_f and R known to 2 % (copper's R drifts 0.4 %/K), flexure cut to 5 %
    "realistic": CoilSpec(scale_error=0.02, flexure_error=0.05),
    "harsh": CoilSpec(scale_error=0.05, flexure_error=0.10),
}


class CoilPart:
    """One bond's coil and flexure: the loop's gain in, the bond's true stiffness out."""

    def __init__(self, spec: CoilSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.n_per_cmd = spec.newtons_per_command * (1 + spec.scale_error * rng.standard_normal())
        self.k_flex = spec.flexure_k * (1 + spec.flexure_error * rng.standard_normal())

    def true_k(self, gain: float, counts_per_m: float) -> float:
        """Stiffness of flexure + loop for a loop gain (commands per count)."""
        k = self.k_flex + gain * counts_per_m * self.n_per_cmd
        return max(k, 1e-3 * self.k_flex)  # the bond never goes slack (K stays definite)


class CoilBank:
    """The coil parts of a world's bonds, bound to the loop gains the nodes hold."""

    def __init__(self, world: World, law: Callable[[int], float | None]) -> None:
        from insitu.emulator.hardware import part_rng

        self.world = world
        self.law = law
        base = world.profile.name.partition("+")[0]
        self.spec = COIL_SPECS.get(base, COIL_SPECS["realistic"])
        B = world.net.n_bonds
        self.parts = [CoilPart(self.spec, part_rng(world.seed, _KIND_COIL, b)) for b in range(B)]
        self.gain = np.full(B, np.nan)  # the gain each bond's k was computed from
        self.commands = np.zeros(B)  # last command each loop wrote
        self.written = np.zeros(B, dtype=bool)
        self.t_seen = world.clock.now()  # when the world last read the loops' gains
        # a coil acts at once: no servo travel
        world._rate[:] = math.inf
        world._finite_rate[:] = False

    def refresh(self, now: float) -> bool:
        """Re-read every loop's gain; True if one changed. A node sets its gain when a command
        arrives, and nothing saw the world since the last refresh, so the change is dated
        then (a node that settles before it samples ticks no loop in between)."""
        from collections import deque

        from insitu.emulator.world import _Event

        w = self.world
        t, self.t_seen = self.t_seen, now
        changed = False
        for b, part in enumerate(self.parts):
            g = self.law(b)
            # a stuck element (faults.stuck_element) ignores its loop's new gain: k stays
            if g is None or g == self.gain[b] or w.elements[b].stuck:
                continue
            self.gain[b] = g
            w._k_from[b] = w._k_to[b]
            w._k_to[b] = part.true_k(g, w.strain[b].gain)
            w._t_cmd[b] = t
            changed = True
        if changed:  # in time order among the writes still pending
            w._events = deque(sorted([*w._events, _Event(t, "k")], key=lambda ev: ev.t))
        return changed

    def command(self, bond: int, value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"coil command must be finite, got {value}")
        self.commands[bond] = value
        self.written[bond] = True

    def saturated(self) -> list[int]:
        """Bonds whose loop would need more than full duty at the current elongation."""
        e = self.world.elongation()
        need = np.abs(self.gain * np.array([s.gain for s in self.world.strain]) * e)
        return [int(b) for b in np.flatnonzero(need > DUTY_FULL)]


def firmware_law(lab: Any) -> Callable[[int], float | None]:
    """Loop gain (commands per count) per bond, read from the in-process nodes' drivers."""
    where: dict[int, tuple[int, int]] = {}
    for bd in lab.network.boards:
        for slot, b in enumerate(bd.bonds):
            where[b] = (bd.id, slot)

    def law(bond: int) -> float | None:
        bid, slot = where[bond]
        el = lab.nodes[bid].hal.element[slot]
        m = getattr(el, "_m", None)  # VirtualSpring: round(-G * 2**s) and s
        return None if m is None else -m / (1 << el._s)

    return law


__all__ = [
    "COIL_SPECS",
    "ELEMENTS",
    "CoilBank",
    "CoilPart",
    "CoilSpec",
    "firmware_law",
    "profile_name",
    "with_element",
]
