"""Active "virtual spring": a voice coil whose loop makes force = -(k - k_s) * elongation.

The sensing flexure (k_s, config element.flex_k) already acts across the bond, so the loop adds
only k - k_s. The gain G = (k - k_s) * m_per_count * cmd_per_n (command per count) is held as
a mantissa m (|m| < 2**15) and a shift s (12..28), rounded, not truncated: relative error
<= 2**-15 (137.5 N/m -> 137.502 on the kit's chain). control() runs every tick, so it is
integer-only (a float is a heap object on a board) and exact: c = round(-G * d) for every
|d| < 2**25 counts (any 24-bit HX711 word minus any config offset), with d split in 13 + 12
bits so no product leaves the 31-bit small-int range of a 32-bit board. The command clips only
at max_cmd (full duty).
"""

from ..compat import const

_LO = const(12)
_LO_MASK = const(4095)
_M_MAX = const(32767)
_S_MIN = const(12)
_S_MAX = const(28)


class VirtualSpring:
    def __init__(self, cmd_per_n, max_cmd, sink, flex_k=0):
        self._cmd_per_n = cmd_per_n  # actuator command per newton
        self._max = max_cmd
        self._sink = sink  # signed int command -> H-bridge PWM or emulator bus
        self._ks = flex_k  # the sensing flexure's own stiffness, already in the bond
        self._m = 0  # round(-G * 2**s); +-32767 when G is beyond 8 commands per count
        self._s = _S_MAX
        self._off = 0

    def set_k(self, k, gain, offset):
        # 4 floats of garbage per call (boxed on a board): the shift and the rounding in ints
        a = int((k - self._ks) * gain * self._cmd_per_n * -(1 << _S_MAX))  # -G * 2**28
        s = _S_MAX
        n = 0
        b = abs(a)
        while s > _S_MIN and b >> n > _M_MAX - 1:
            n += 1
            s -= 1
        m = (a + (1 << n >> 1)) >> n  # round half up (floor shift: both signs)
        m = _M_MAX if m > _M_MAX else (-_M_MAX if m < -_M_MAX else m)
        self._m = m
        self._s = s
        self._off = offset
        return m

    def control(self, raw):
        # |d| < 2**25 on a board: a 24-bit word minus an offset the config bounds to 2**24 (or a
        # tare, itself a word); int() keeps an int as it is (float counts: emulator only)
        d = int(raw - self._off)
        m = self._m
        s = self._s
        sl = s - _LO
        p = m * (d >> _LO)  # |p| < 2**28
        q = p >> sl
        # m*d / 2**s = q + ((p - q*2**sl) * 2**12 + m*lo) / 2**s, every term < 2**29
        c = q + ((((p - (q << sl)) << _LO) + m * (d & _LO_MASK) + (1 << (s - 1))) >> s)
        mx = self._max
        if c > mx:
            c = mx
        elif c < -mx:
            c = -mx
        self._sink(c)
