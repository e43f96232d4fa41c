"""Servo supply current: what the kit's 5 V actuator rail must deliver when servos move.

Each servo element (``World.elements``) draws one of three currents, by what its motor does:

- idle: holding still (the leaf-spring clamp holds without power; the electronics draw);
- stall: the first PWM frame after a command, when the motor starts from rest and only its
  winding resistance limits the current (also a servo pushing against an end stop);
- moving: every later frame until it arrives.

Figures: the Tower Pro SG90 datasheet (the BOM's budget servo; the digital ES08MD II and
HS-5055MG list figures of the same order): idle 6 +/- 10 mA, no-load operating current
220 +/- 50 mA, stall 650 +/- 80 mA at 4.8 V. We take the upper tolerance for moving (the leaf
spring's clamp is a load) and the nominal stall. A voice-coil (coil) element draws from the
force driver's supply instead and is not modelled here.

After an update every bond's servo gets a new pulse at once, so the rail sees the sum of 28
stall currents for one frame and then of 28 moving currents until the slowest arrives:
``peak_after_update`` reports both (docs/emulator.md, hardware/docs/assembly.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import World

IDLE_A = 0.006
MOVING_A = 0.27
STALL_A = 0.65


@dataclass(frozen=True)
class SupplyPeak:
    surge_a: float  # the largest sum in any frame (starting servos draw stall current)
    moving_a: float  # the largest sum over frames after the first (servos under way)
    frames: int  # PWM frames until every servo arrived
    servos: int

    def as_json(self) -> dict:
        return {"surge_a": self.surge_a, "moving_a": self.moving_a, "frames": self.frames,
                "servos": self.servos}  # fmt: skip


def currents(world: World, t: float) -> np.ndarray:
    """Per-bond servo current (A) at world time t, from the servos' last commands."""
    w = world
    k = np.atleast_1d(w._elements_k(t))  # noqa: SLF001 (the world's servo state, read only)
    moving = (k != w._k_to) | ((t >= w._t_cmd) & (t < w._t_cmd + w._frame))
    first = moving & (t < w._t_cmd + w._frame)
    out = np.where(moving, MOVING_A, IDLE_A)
    return np.where(first, STALL_A, out)


def peak_after_update(world: World) -> SupplyPeak:
    """Supply current of every servo, frame by frame, from the latest command until the last
    servo arrives (call after the boards applied an update)."""
    w = world
    with w._lock:  # noqa: SLF001
        t0 = float(np.max(w._t_cmd))
        frame = w._frame
        span = np.abs(w._k_to - w._k_from) / np.where(w._finite_rate, w._rate, np.inf)
        t_end = float(np.max(w._t_cmd + span)) + frame
        n = max(1, int(np.ceil((t_end - t0) / frame)))
        sums = np.array([currents(w, t0 + i * frame + 1e-9).sum() for i in range(n)])
    return SupplyPeak(float(sums.max()), float(sums[1:].max()) if n > 1 else 0.0, n,
                      len(w.elements))  # fmt: skip
