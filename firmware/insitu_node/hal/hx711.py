"""HX711 24-bit bridge ADC, read without blocking, robust to interrupts and glitches.

DOUT low means a conversion is ready; 24 clock pulses shift the value out MSB first (two's
complement) and 1-3 extra pulses select the gain/channel of the NEXT conversion. SCK held
high > 60 us powers the chip down and resets it (the word in flight is lost: the rest of it
reads as ones, and the gain falls back to 128).

Interrupts are off for each high pulse (machine.disable_irq/enable_irq), not for the whole
word: only a stretched HIGH phase corrupts a read (data holds while SCK is low), and a pending
IRQ then runs between pulses, so nothing waits more than one pulse. One code path serves
rp2 and esp32 (PIO would be rp2-only and costs a state machine per channel).

Plausibility: a word that jumps more than `jump` counts from the last accepted one, or is the
all-ones / all-zeros pattern of a DOUT line held high / low through the shift, is dropped
(counted in `dropped`, poll() returns None) unless the word read just before it agrees with
it, so one glitch never reaches the node while a real step is accepted one conversion late.
"""

from ..compat import const
from .plausible import JUMP, accept

_PULSES = {128: 25, 32: 26, 64: 27}  # channel A/128, channel B/32, channel A/64
_SIGN = const(0x800000)
_WRAP = const(0x1000000)


def _irq():
    try:
        from machine import disable_irq, enable_irq

        return disable_irq, enable_irq
    except (ImportError, AttributeError):  # CPython / an emulated machine without IRQs
        return _off, _on


def _off():
    return 0


def _on(state):
    pass


class HX711:
    def __init__(self, dout, sck, gain=128, irq=None, jump=JUMP):
        # dout, sck: pin objects with value() / value(v) (machine.Pin or a test double)
        self._din = dout.value  # bound once: calling a stored bound method does not allocate
        self._clk = sck.value
        self._extra = _PULSES[gain] - 24
        self._dis, self._en = irq or _irq()
        self._jump = jump
        self._last = None  # last accepted word
        self._prev = None  # last word read, accepted or not
        self.dropped = 0
        self._clk(0)

    def ready(self):
        return self._din() == 0

    def poll(self):
        din = self._din
        if din():
            return None
        clk = self._clk
        dis = self._dis
        en = self._en
        v = 0
        for _ in range(24):
            st = dis()
            clk(1)
            clk(0)
            en(st)
            v = (v << 1) | din()
        for _ in range(self._extra):
            st = dis()
            clk(1)
            clk(0)
            en(st)
        if v & _SIGN:
            v -= _WRAP
        return accept(self, v, self._jump)

    def power_down(self):
        self._clk(1)
