"""HX711 24-bit bridge ADC, read without blocking.

DOUT low means a conversion is ready; 24 clock pulses shift the value out MSB first (two's
complement) and 1-3 extra pulses select the gain/channel of the NEXT conversion. SCK held
high > 60 us powers the chip down, so the clocking loop is kept tight (callers may disable
interrupts around poll() on boards where an IRQ could stretch a pulse).
"""

from ..compat import const

_PULSES = {128: 25, 32: 26, 64: 27}  # channel A/128, channel B/32, channel A/64
_SIGN = const(0x800000)
_WRAP = const(0x1000000)


class HX711:
    def __init__(self, dout, sck, gain=128):
        # dout, sck: pin objects with value() / value(v) (machine.Pin or a test double)
        self._din = dout.value  # bound once: calling a stored bound method does not allocate
        self._clk = sck.value
        self._extra = _PULSES[gain] - 24
        self._clk(0)

    def ready(self):
        return self._din() == 0

    def poll(self):
        if self._din():
            return None
        clk = self._clk
        din = self._din
        v = 0
        for _ in range(24):
            clk(1)
            clk(0)
            v = (v << 1) | din()
        for _ in range(self._extra):
            clk(1)
            clk(0)
        if v & _SIGN:
            v -= _WRAP
        return v

    def power_down(self):
        self._clk(1)
