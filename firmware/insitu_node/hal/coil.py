"""Active "virtual spring": a voice coil whose loop makes force = -k * elongation.

Runs every control tick, so it is integer-only (a float would be a heap object on
MicroPython). The gain k * m_per_count * cmd_per_n is kept as a 16.16 fixed-point int and
the multiply is split in two halves so no intermediate leaves the 31-bit small-int range of
a 32-bit board (which would allocate a big int).
"""

from ..compat import const

_SH = const(16)
_LO_BITS = const(10)
_LO_MASK = const(1023)
_D_MAX = const(1048575)  # |elongation count| clipped to 2**20 - 1 before the multiply
_G_MAX = const(524287)  # |gain| < 2**19: (2**19)(2**10) stays below 2**30


class VirtualSpring:
    def __init__(self, cmd_per_n, max_cmd, sink):
        self._cmd_per_n = cmd_per_n  # actuator command per newton
        self._max = max_cmd
        self._sink = sink  # signed int command -> H-bridge PWM or emulator bus
        self._g = 0
        self._off = 0
        self.saturated = False  # gain could not be represented (table/scale mismatch)
        self.cmd = 0

    def set_k(self, k, gain, offset):
        g = int(k * gain * self._cmd_per_n * (1 << _SH))
        self.saturated = not -_G_MAX <= g <= _G_MAX
        if g > _G_MAX:
            g = _G_MAX
        elif g < -_G_MAX:
            g = -_G_MAX
        self._g = g
        self._off = offset
        return g

    def control(self, raw):
        d = raw - self._off
        if d > _D_MAX:
            d = _D_MAX
        elif d < -_D_MAX:
            d = -_D_MAX
        g = self._g
        c = -(((g * (d >> _LO_BITS)) >> (_SH - _LO_BITS)) + ((g * (d & _LO_MASK)) >> _SH))
        m = self._max
        if c > m:
            c = m
        elif c < -m:
            c = -m
        self.cmd = c
        self._sink(c)
