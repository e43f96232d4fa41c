# Emulated `machine` module of an insitu MicroPython-process board (shadows the unix port's
# built-in machine, which lacks Pin/ADC/PWM/WDT). Board state that a real MCU keeps in hardware
# (unique id, reset cause, watchdog) comes from / goes to the supervisor; see emubus.py.
# Pins, PWM and ADC are the board's emulated silicon (silicon.py): the chips soldered to them
# are listed in INSITU_WIRING (JSON, silicon.Silicon's `wiring`) and reach the world through
# emubus once per sample; a pin with no chip is a plain latch.
import binascii
import json
import os
import time

import emubus
import silicon

_sil = silicon.Silicon(
    emubus, json.loads(os.getenv("INSITU_WIRING") or "[]"), now_us=time.ticks_us,
    # wall-clock SCK-high time that powers an HX711 down: 60 us is the chip's; an OS time
    # slice (~4-20 ms on a loaded host) can stretch any pulse, so a process board uses 50 ms
    pd_us=int(os.getenv("INSITU_HX711_PD_US") or 50000),
)

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_freq = [int(os.getenv("INSITU_FREQ") or 125000000)]


def unique_id():
    return binascii.unhexlify(os.getenv("INSITU_UNIQUE_ID") or "00")


def reset():
    # hard reset: the supervisor kills this interpreter and boots a new one (boot.py, main.py)
    emubus.notify("R")
    while True:
        time.sleep_ms(10)


def soft_reset():
    raise SystemExit


def reset_cause():
    return int(os.getenv("INSITU_RESET_CAUSE") or PWRON_RESET)


def freq(hz=None):
    if hz is None:
        return _freq[0]
    _freq[0] = int(hz)


def idle():
    time.sleep_ms(1)


def lightsleep(ms=None):
    time.sleep_ms(ms if ms is not None else 1000)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def bootloader():
    reset()


class Pin:
    # A GPIO with a local latch only: inputs read the latch (or their pull level).
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8

    def __init__(self, id, mode=-1, pull=-1, *, value=None, **kw):
        self.id = id
        self._chip = _sil.chip(id)
        self._mode = Pin.IN
        self._pull = None
        self._v = 0
        self._handler = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None, **kw):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
            if self._mode == Pin.IN:
                self._v = 1 if pull == Pin.PULL_UP else 0
        if value is not None:
            self.value(value)

    def value(self, v=None):
        chip = self._chip
        if v is None:
            if chip is not None and self._mode == Pin.IN:
                return chip.read_pin(self.id)
            return self._v
        self._v = 1 if v else 0
        if chip is not None and self._mode != Pin.IN:
            chip.write_pin(self.id, self._v)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def high(self):
        self.value(1)

    def low(self):
        self.value(0)

    def toggle(self):
        self.value(self._v ^ 1)

    def mode(self, m=None):
        if m is None:
            return self._mode
        self._mode = m

    def pull(self, p=None):
        if p is None:
            return self._pull
        self._pull = p

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, **kw):
        self._handler = handler

    def __repr__(self):
        return f"Pin({self.id!r}, mode={self._mode})"


class Signal:
    def __init__(self, pin, invert=False):
        self._pin = pin
        self._inv = invert

    def value(self, v=None):
        if v is None:
            return self._pin.value() ^ self._inv
        self._pin.value((1 if v else 0) ^ self._inv)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class ADC:
    # an analog part wired to the pin (silicon.py), else the world's "adc" channel raw
    def __init__(self, pin, **kw):
        self._ch = pin if isinstance(pin, int) else pin.id
        self._part = _sil.chip(self._ch)

    def read_u16(self):
        if isinstance(self._part, silicon.HallChip):
            return self._part.read_u16()
        v = emubus.read("adc", self._ch)
        return max(0, min(65535, int(v)))

    def read_uv(self):
        return self.read_u16() * 3300000 // 65535


class PWM(silicon.PWM):
    # a PWM slice of the emulated silicon: what it drives (servo, H-bridge) sees every write
    def __init__(self, pin, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        silicon.PWM.__init__(self, _sil, pin, freq, duty_u16, duty_ns)

    def init(self, *, freq=None, duty_u16=None, duty_ns=None, **kw):
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        if duty_ns is not None:
            self.duty_ns(duty_ns)


def silicon_log():
    # which pins the firmware drove, and how (silicon.Silicon.log), for the supervisor's tests
    return _sil.log


class WDT:
    # A watchdog kept by the supervisor: it hard-resets the board (reset_cause() == WDT_RESET)
    # unless fed within `timeout` ms. It cannot be stopped; a soft reset does not stop it either.
    def __init__(self, id=0, timeout=5000):
        limit = int(os.getenv("INSITU_WDT_MAX_MS") or 8388)
        if not 1 <= timeout <= limit:
            raise ValueError(f"timeout must be 1..{limit} ms")
        emubus.request(f"W {int(timeout)}")

    def feed(self):
        emubus.notify("F")


class UART:
    # The board's UART to its RS-485 transceiver. An emulated board's bus drop is its console:
    # the bytes the UART sends and receives are the process's stdout and stdin, the pty the
    # emulated bus (insitu.emulator.bus.PtyBus) joins to the others, so the firmware's own UART
    # path (hal/bus.py UartLink: any/read/write/flush/txdone and the DE pin) runs as on a board.
    # The line's timing is the bus's to model; this UART sends at once.
    def __init__(self, id, baudrate=115200, *, tx=None, rx=None, timeout=0, **kw):
        import select
        import sys

        self.id = id
        self.baudrate = baudrate
        self.tx, self.rx = tx, rx
        self._in = getattr(sys.stdin, "buffer", sys.stdin)
        self._out = sys.stdout
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def any(self):
        # a stream cannot say how many bytes are waiting: one, when any is
        return 1 if self._poll.poll(0) else 0

    def read(self, n=1):
        return self._in.read(1)

    def write(self, data):
        self._out.write(data if isinstance(data, str) else data.decode())
        return len(data)

    def flush(self):
        pass

    def txdone(self):
        return True
