"""Sensor fault detection per channel (strain slots, then displacement axes).

Judged once per finished measurement (in service(), never in the control tick), from what the
tick already keeps: the sample sum and count, and the smallest and largest sample of the
measurement (sampling.Channels.lo/hi). A fault is latched until `reset faults=true` or a
reboot, and reported once as an event when it appears (docs/reliability.md):

- dead: the channel gave no sample before the measurement's timeout (HX711 DOUT never low,
  a bus that stopped answering). Later measurements do not wait for a dead strain channel.
- sat: a sample of the measurement sat on the 24-bit rail (a bridge wire off, an overload:
  an elongation beyond the gauge's full scale); sampling.Channels.mean then reads as the rail.
  An ideal emulated sensor's float counts have no rail and never saturate.
- stuck: STUCK_N measurements in a row with a bit-identical mean. A live sensor with any noise
  never repeats its mean exactly, and an ideal one only under identical loads; a training run
  alternates forward and adjoint loads.
- noisy: the spread (largest - smallest sample) of one measurement of n >= 2 samples exceeds
  `noise` counts (configure noise=...; default NOISE_SPREAD, about 12 sigma of a harsh bench's
  HX711 at 10 SPS, so a healthy sensor is never flagged; 0 turns the check off).

A stiffness element is judged by a response check (`check`, response() below): under a steady
load the node measures its bond's elongation, commands the bond to another stiffness, measures
again and puts the element back. A working element moves the elongation the way the physics
says (stiffer: shorter, since de/dk = -e b'K^-1 b <= 0 for the bond's own k); one that ignored
the command leaves it where it was. A failed check latches ELEM on the bond's channel.

Bonds whose channel has a fault (sensor or element) are frozen by the node: `update` leaves
their stiffness and optimiser state as they were.
"""

from array import array

from .compat import const
from .sampling import RAW_MAX, RAW_MIN

OK = const(0)
DEAD = const(1)
SAT = const(2)
STUCK = const(3)
NOISY = const(4)
ELEM = const(5)  # the bond's stiffness element did not respond (sensor codes are below this)
NAMES = ("ok", "dead", "sat", "stuck", "noisy", "element")

# response() verdicts
RESPONDED = const(0)
UNLOADED = const(1)  # too little elongation to judge by: try another load
NO_RESPONSE = const(2)
SENSOR = const(3)  # the bond's gauge failed during the check: no verdict on the element
VERDICTS = ("ok", "unloaded", "stuck", "sensor")
LOADED_SNR = const(10)  # a bond is judged only when its elongation is 10x the noise

STUCK_N = const(8)  # identical means in a row
NOISE_SPREAD = const(20000)  # counts; 2^33 counts/m strain gain: 2.3 um of elongation


class Health:
    def __init__(self, n):
        self.n = n
        self.code = array("b", bytes(n))  # latched fault per channel (OK = none)
        self.same = array("i", bytes(4 * n))  # measurements in a row with an identical mean
        self.prev = array("d", bytes(8 * n))  # previous measurement's mean
        self.noise = NOISE_SPREAD

    def clear(self):
        for s in range(self.n):
            self.code[s] = OK
            self.same[s] = 0

    def judge(self, s, cnt, mean, spread):
        """Fault code newly found on channel s by one finished measurement (OK if none new).

        cnt: samples the channel gave (0 = none before the timeout); mean, spread in counts.
        """
        if self.code[s] != OK and self.code[s] != ELEM:
            return OK  # already reported (a sensor fault still shows on a stuck element's bond)
        code = OK
        if cnt == 0:
            code = DEAD
        elif mean == RAW_MAX or mean == RAW_MIN:  # exact: mean() returns the rail it touched
            code = SAT
        elif self.noise and cnt > 1 and spread > self.noise:
            code = NOISY
        else:
            if self.same[s] and mean == self.prev[s]:
                self.same[s] += 1
            else:
                self.same[s] = 1
            self.prev[s] = mean
            if self.same[s] >= STUCK_N:
                code = STUCK
        if code != OK:  # keeps an element fault latched when the gauge is fine
            self.code[s] = code
        return code
