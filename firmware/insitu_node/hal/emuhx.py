"""An emulated HX711 channel on the bus: a reading only when the world's "ready" (DOUT) says a
new conversion exists, and the HX711 driver's plausibility check on its integer words
(plausible.accept), so a board on the bus reads what a board on its pins reads (the pin path
runs hx711.py itself). Float counts (the ideal profile) have no driver to glitch: passed as is."""

from .plausible import JUMP, accept


class EmuHX711:
    def __init__(self, bus, channel):
        self._bus = bus
        self._ch = channel
        self._last = self._prev = None  # accept's state
        self.dropped = 0

    def poll(self):
        bus = self._bus
        if not bus.read("ready", self._ch):
            return None
        v = bus.read("strain", self._ch)
        if type(v) is int:
            return accept(self, v, JUMP)
        return v
