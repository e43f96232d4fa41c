"""Known weights on an emulated network: what a person hangs at a node on a bench."""

from __future__ import annotations

from typing import Any

from insitu.emulator.world import _Event
from insitu.network.schema import Port


class EmulatedWeights:
    """A known weight on an emulated network: an exact force on the world, no actuator."""

    def __init__(self, world: Any) -> None:
        self.world = world

    def _set(self, port: Port, newtons: float) -> None:
        w = self.world
        dof = w.net.dof(port)
        with w._lock:
            w._push(_Event(w.clock.now(), "force", dof, float(newtons)))

    def hang(self, port: Port, newtons: float) -> None:
        self._set(port, newtons)

    def remove(self, port: Port) -> None:
        self._set(port, 0.0)
