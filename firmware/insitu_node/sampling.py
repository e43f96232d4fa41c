"""Integer sample bookkeeping for every sensor channel (strain slots, then displacement axes).

Called from the control tick, so everything here is preallocated int arrays and small-int
arithmetic: no floats (heap objects on MicroPython), no lists, no allocation.
"""

from array import array

from .compat import const

RAW_MAX = const(8388607)  # HX711 full scale: a reading here is saturated
RAW_MIN = const(-8388608)
_CAP = const(1000000)  # counters stop here so they stay small ints forever


class Channels:
    def __init__(self, n, typecode="i"):
        # "i" on boards (integer counts, no heap floats in the tick); "d" only for an ideal
        # emulated sensor whose counts are exact floats
        self.n = n
        # an ideal emulated sensor's float counts have no 24-bit rail: a reading beyond
        # RAW_MAX there is exact, not saturated (only integer channels can clip)
        self.rail = typecode != "d"
        size = 8 if typecode == "d" else 4
        self.last = array(typecode, bytes(size * n))  # latest raw count
        self.sums = array(typecode, bytes(size * n))  # sum of samples in the current measurement
        self.cnt = array("i", bytes(4 * n))  # samples in the current measurement
        self.stale = array("i", bytes(4 * n))  # ticks since the last fresh sample
        self.sat = array("i", bytes(4 * n))  # saturated samples seen (ever)
        self.clip = array("i", bytes(4 * n))  # saturated samples in the current measurement
        self.seen = array("i", bytes(4 * n))  # 1 once any sample arrived
        self.lo = array(typecode, bytes(size * n))  # smallest sample of the measurement
        self.hi = array(typecode, bytes(size * n))  # largest (health.py: the noise check)

    def start(self):
        for s in range(self.n):
            self.sums[s] = 0
            self.cnt[s] = 0
            self.clip[s] = 0

    def poll(self, sensors, want):
        """Read every sensor once; accumulate up to `want` samples (0 = not measuring).

        Returns 1 when every channel has `want` samples (measurement complete), else 0.
        """
        done = 1
        for s in range(self.n):
            raw = sensors[s].poll()
            if raw is None:
                if self.stale[s] < _CAP:
                    self.stale[s] += 1
            else:
                self.stale[s] = 0
                self.seen[s] = 1
                self.last[s] = raw
                on_rail = self.rail and (raw >= RAW_MAX or raw <= RAW_MIN)
                if on_rail and self.sat[s] < _CAP:
                    self.sat[s] += 1
                if self.cnt[s] < want:
                    if on_rail:
                        self.clip[s] += 1
                    if self.cnt[s] == 0 or raw < self.lo[s]:
                        self.lo[s] = raw
                    if self.cnt[s] == 0 or raw > self.hi[s]:
                        self.hi[s] = raw
                    self.sums[s] += raw
                    self.cnt[s] += 1
            if self.cnt[s] < want:
                done = 0
        return done

    def mean(self, s):
        """Mean raw count of channel s in the finished measurement (allocates a float).

        A measurement with any sample on the rail has no true mean (the clipped samples
        understate it): it reads as the rail it touched, which health.judge calls saturated.
        """
        if self.clip[s]:
            return float(RAW_MAX) if self.hi[s] >= RAW_MAX else float(RAW_MIN)
        c = self.cnt[s]
        return self.sums[s] / c if c else float(self.last[s])

    def missing(self, want):
        return [s for s in range(self.n) if self.cnt[s] < want]
