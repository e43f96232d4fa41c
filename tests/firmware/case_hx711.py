"""The HX711 driver (hal/hx711.py) against a pin-level chip double: DOUT shifted bit by bit on
SCK, gain pulses, power-down/reset when SCK stays high > 60 us, and interrupts that stretch a
pulse. (A test double for the chip until the emulator's pin-level model is on main.)"""

from insitu_node.hal.hx711 import HX711

US_PER_PIN_OP = 1  # a MicroPython pin write takes ~1 us on an rp2 at 125 MHz
IRQ_US = 100  # a long interrupt handler (e.g. USB/flash): longer than the 60 us power-down


class Chip:
    """Avia HX711 at the pin level, on a microsecond clock advanced by pin operations."""

    def __init__(self):
        self.t = 0
        self.sck = 0
        self.sck_up = 0
        self.words = []  # conversions still to come
        self.word = None  # the conversion being shifted out
        self.pulses = 0
        self.gain_pulses = 25
        self.resets = 0
        self.irq_at = []  # times at which an interrupt becomes pending
        self.masked = False
        self.wake = 0
        self.dout = _Pin(self._dout_read, None)
        self.clk = _Pin(None, self._sck_write)

    # the MCU side: interrupts pending at a time run when unmasked
    def disable_irq(self):
        self._tick()
        self.masked = True
        return 1

    def enable_irq(self, state):
        self.masked = False
        self._tick()

    def _tick(self):
        self.t += US_PER_PIN_OP
        while self.irq_at and self.irq_at[0] <= self.t and not self.masked:
            self.irq_at.pop(0)
            self.t += IRQ_US  # the handler runs; SCK stays where it is
        if self.sck and self.t - self.sck_up > 60:
            self.sck_up = self.t  # one reset per stretched pulse
            self._power_down()

    def _power_down(self):
        self.resets += 1
        self.word = None  # reset: the word in flight is gone, DOUT high until a new conversion
        self.pulses = 0
        self.wake = self.t + 50000  # datasheet: 50 ms settling after power-up at 80 SPS
        self.gain_pulses = 25  # gain 128 after reset

    def _dout_read(self):
        self._tick()
        if self.word is None or self.pulses >= 25 and not self.sck:
            if not self.words or self.sck or self.t < self.wake:
                self.word = None
                return 1
            self.word = self.words.pop(0) & 0xFFFFFF
            self.pulses = 0
        if self.pulses == 0:
            return 0  # ready
        if self.pulses <= 24:
            return (self.word >> (24 - self.pulses)) & 1
        return 1

    def _sck_write(self, v):
        self._tick()
        if v and not self.sck:
            self.sck_up = self.t
            if self.word is not None:
                self.pulses += 1
        elif self.sck and not v:
            self._tick()
            if self.word is not None and self.pulses >= 25:
                self.gain_pulses = self.pulses  # pulses 25-27 select the next gain
        self.sck = v


class _Pin:
    def __init__(self, rd, wr):
        self._rd, self._wr = rd, wr

    def value(self, *a):
        if a:
            self._wr(a[0])
            return None
        return self._rd()


def _driver(chip, masked=True, gain=128):
    irq = (chip.disable_irq, chip.enable_irq) if masked else (lambda: 0, lambda s: None)
    return HX711(chip.dout, chip.clk, gain, irq=irq)


def test_words_and_gain_pulses():
    chip = Chip()
    hx = _driver(chip, gain=64)
    assert hx.poll() is None  # no conversion yet: returns at once
    chip.words = [123456, -5, -8388608, 8388607, 123400]
    got = [hx.poll() for _ in range(5)]
    assert got == [123456, -5, None, None, 123400], got  # +-2**23: jumps, not confirmed
    assert chip.gain_pulses == 27 and hx.dropped == 2 and chip.resets == 0


def test_interrupts_masked_per_pulse_keep_every_word():
    chip = Chip()
    hx = _driver(chip)
    words = [200000 + 37 * i for i in range(40)]
    chip.words = list(words)
    chip.irq_at = [5 + 23 * i for i in range(400)]  # an interrupt every 23 us
    got = [hx.poll() for _ in range(40)]
    assert got == words and chip.resets == 0 and hx.dropped == 0


def test_an_unmasked_interrupt_corrupts_a_word_and_the_check_drops_it():
    chip = Chip()
    hx = _driver(chip, masked=False)
    chip.words = [200000, 200010, 200020, 200030]
    assert hx.poll() == 200000
    chip.irq_at = [chip.t + 3]  # lands in the first (MSB) high pulse of the next word
    bad = hx.poll()
    assert chip.resets == 1 and bad is None and hx.dropped == 1  # reads ones after the reset
    chip.t = chip.wake  # the chip converts again after its reset
    chip.words = [200040, 200050]
    assert hx.poll() == 200040 and hx.poll() == 200050


def test_a_real_step_is_accepted_one_conversion_late():
    chip = Chip()
    hx = _driver(chip)
    chip.words = [1000, 3000000, 3000100, 3000050]
    assert [hx.poll() for _ in range(4)] == [1000, None, 3000100, 3000050]
    assert hx.dropped == 1


def test_all_ones_and_all_zeros_need_a_repeat():
    chip = Chip()
    hx = _driver(chip)
    chip.words = [5, -1, 7, 0, 0, -1, -1]
    assert [hx.poll() for _ in range(7)] == [5, None, 7, None, 0, None, -1]
    assert hx.dropped == 3


def test_poll_never_waits_for_a_conversion():
    chip = Chip()
    hx = _driver(chip)
    t0 = chip.t
    for _ in range(100):
        assert hx.poll() is None
    assert chip.t - t0 == 100 * US_PER_PIN_OP  # one DOUT read per poll


def test_poll_does_not_allocate():
    try:
        import micropython
    except ImportError:
        return

    class P:  # no *args: a tuple per call would be the double's allocation, not the driver's
        def value(self, v=None):
            return 0

    hx = HX711(P(), P(), 128, irq=(lambda: 0, lambda s: None))
    micropython.heap_lock()
    try:
        for _ in range(3):
            hx.poll()
    finally:
        micropython.heap_unlock()


def test_board_driver_masks_through_machine():
    import sys

    calls = []

    class Machine:  # stands in for machine: disable_irq returns a state enable_irq restores
        @staticmethod
        def disable_irq():
            calls.append("off")
            return 7

        @staticmethod
        def enable_irq(state):
            calls.append(state)

    old = sys.modules.get("machine")
    sys.modules["machine"] = Machine
    try:
        import machine

        if machine is not Machine:  # a port whose built-in machine wins: nothing to check
            return
        chip = Chip()
        hx = HX711(chip.dout, chip.clk, 128)  # irq from machine, as hal/board.py builds it
    finally:
        if old is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = old
    chip.words = [4321]
    assert hx.poll() == 4321
    assert calls == ["off", 7] * 25  # 24 data pulses + 1 gain pulse, each masked alone
