# Emulated silicon of an insitu node board: GPIO pins, PWM slices, ADC inputs and the chips the
# kit solders to them (hardware/docs/node.md), at the pin level.
#
# Written once in MicroPython-compatible Python: an in-process node imports it as a Python
# module, a MicroPython-process board finds it on MICROPYPATH. The board's own firmware drives
# these pins through hal/board.py and its real drivers (hx711.py, servo.py, adcbridge.py,
# actuators.py, coil.py); the chips turn pin activity into the world's analog quantities and
# back, exchanging them with the world over a `bus` (read(device, ch) / write(device, ch, v),
# the emubus protocol) once per sample, never once per pin toggle:
#   HX711     DOUT/SCK serial protocol; one bus read of the bridge count per conversion
#   servo     PWM pulse width (duty_ns at 50 Hz) -> "stiffness" (pulse us), on each new width
#   H-bridge  direction pin + PWM duty_u16 -> "force" / "coil" (signed duty), on each change
#   brake     clamp lock pin -> "lock" (1 holds the axis where it is, 0 releases)
#   DRV5055   linear Hall sensor on an ADC input: each read_u16 is one conversion of the
#             world's sensor part ("adc"), scaled like the RP2040 port (code << 4 | code >> 8);
#             the part (emulator/hardware.DispSensor) owns the sensor's physics and noise, so
#             the bus path (its "disp", the sum ADCBridge makes) reads the same bits
#
# `log` records, per pin, which chip saw the firmware drive it and how (HX711 frames clocked,
# servo pulses, duty writes, ADC reads), so a test can check that the board's drivers, not a
# shortcut, talk to the pins its pin map wires.

# --------------------------------------------------------------------------- part figures

# Avia HX711 datasheet: 24-bit two's complement; 25/26/27 SCK pulses select channel A gain
# 128 / channel B gain 32 / channel A gain 64 for the NEXT conversion; SCK high > 60 us powers
# the chip down; SCK high time (T3) at most 50 us while reading.
HX711_PULSES_GAIN = {25: 128, 26: 32, 27: 64}
HX711_PD_US = 60
HX711_T3_MAX_US = 50


# --------------------------------------------------------------------------- chips


class HX711Chip:
    """Pin-level HX711: DOUT low = a conversion is ready; each SCK rising edge shifts the next
    bit (MSB first) onto DOUT; pulses 25..27 pick the next gain/channel. A conversion is
    latched into the output register when DOUT goes low, as on the chip: the bus is asked
    ("ready", then "strain": the bridge at channel A gain 128) when the driver samples DOUT,
    so no bus round trip falls inside an SCK pulse (one would stretch it past 60 us on a
    MicroPython-process board and power the chip down)."""

    def __init__(self, sil, ch, dout, sck):
        self.sil = sil
        self.ch = ch
        self.dout = dout
        self.sck = sck
        self.gain = 128  # gain/channel of the current conversion (power-up: A/128)
        self.pulses = 0  # SCK pulses in the current frame
        self.word = 0
        self.latched = None  # the conversion in the output register (DOUT low), 24-bit
        self.high_since = None  # time (us) SCK went high, for power-down
        self.down = False
        self.reads = 0  # DOUT samples since the last SCK edge
        self.stretch = 0  # fault: stretch the next frame's pulse number `stretch` (1..24)
        self.frames = 0
        sil.attach(dout, self, "hx711.dout")
        sil.attach(sck, self, "hx711.sck")

    def read_pin(self, pin):
        self._check_pd()
        if self.down:
            return 1
        self.reads += 1
        if self.pulses:
            if self.pulses <= 24:
                if self.reads == 1 or self.sck_level:
                    return (self.word >> (24 - self.pulses)) & 1
                # DOUT sampled again with no SCK edge: the driver left this frame (it lost
                # sync); the next conversion overwrites the output register, as on the chip
                self.pulses = 0
                self.sil.log_event(self.sck, "hx711.abandoned")
            elif self.sck_level == 0:  # frame over: the gain pulses are counted
                self._end()
            else:
                return 1
        if self.latched is None and self.sil.bus.read("ready", self.ch):
            self.latched = self._sample()
        return 0 if self.latched is not None else 1

    sck_level = 0

    def write_pin(self, pin, v):
        if v == self.sck_level:
            return
        self._check_pd()
        self.sck_level = v
        self.reads = 0
        if v:
            self.high_since = self.sil.now_us()
            if self.down:
                return
            if self.pulses == 0:
                if self.latched is None:  # clocked while DOUT was high: shifts out all ones
                    self.latched = 0xFFFFFF
                self.word = self.latched
                self.latched = None
            self.pulses += 1
            if self.stretch and self.pulses == self.stretch:
                # a pulse held high past T3 (an interrupt mid-read): the chip shifts once more
                # than the driver counts, so every later bit of this word is the next one
                self.stretch = 0
                self.word = (self.word << 1 | 1) & 0xFFFFFF
                self.sil.log_event(self.sck, "hx711.stretched")
        else:
            self.high_since = None
            if self.down:  # SCK low again: the chip wakes, reset to channel A gain 128
                self.down = False
                self.gain = 128
                self.pulses = 0
                self.latched = None
                self.sil.log_event(self.sck, "hx711.wake")

    def _check_pd(self):
        t = self.high_since
        if t is not None and not self.down and self.sil.now_us() - t > self.sil.pd_us:
            self.down = True
            self.pulses = 0
            self.latched = None
            self.sil.log_event(self.sck, "hx711.power_down")

    def _sample(self):
        v = self.sil.bus.read("strain", self.ch)
        if self.gain == 32:
            v = 0  # channel B: nothing wired on the kit's boards
        elif self.gain == 64:
            v = v >> 1  # half the gain of the bridge count the world gives (A/128)
        v = int(v)
        if v > 0x7FFFFF:
            v = 0x7FFFFF
        elif v < -0x800000:
            v = -0x800000
        return v & 0xFFFFFF

    def _end(self):
        g = HX711_PULSES_GAIN.get(self.pulses)
        if g is not None:
            self.gain = g
        self.pulses = 0
        self.frames += 1
        self.sil.log_event(self.sck, "hx711.frame")
        self.sil.log_event(self.dout, "hx711.frame")


class PwmChip:
    """What a PWM output drives: a servo (pulse width) or an H-bridge (duty + direction)."""

    def __init__(self, sil, kind, device, ch, pwm, dirpin=None):
        self.sil = sil
        self.kind = kind  # "servo" or "hbridge"
        self.device = device
        self.ch = ch
        self.pwm = pwm
        self.dirpin = dirpin
        self.last = 0
        self.dir = 0
        sil.attach(pwm, self, kind + ".pwm")
        if dirpin is not None:
            sil.attach(dirpin, self, kind + ".dir")

    def read_pin(self, pin):
        return self.dir

    def write_pin(self, pin, v):
        self.dir = v  # takes effect with the next duty write (the driver writes it right after)

    def pwm_update(self, p):
        sil = self.sil
        if self.kind == "servo":
            ns = p.ns
            if ns == 0 or ns == self.last:
                return  # no pulses: a servo holds where it is
            self.last = ns
            sil.log_event(self.pwm, f"servo.pulse@{p._freq}Hz")
            sil.bus.write(self.device, self.ch, ns / 1000)
            return
        c = -p._duty if self.dir else p._duty
        sil.log_event(self.pwm, f"hbridge.duty@{p._freq}Hz")
        if c != self.last:
            self.last = c
            sil.bus.write(self.device, self.ch, c)


class LockChip:
    """The clamp's brake: lock pin high holds the axis where it is."""

    def __init__(self, sil, ch, pin):
        self.sil = sil
        self.ch = ch
        self.v = 0
        sil.attach(pin, self, "brake.lock")

    def read_pin(self, pin):
        return self.v

    def write_pin(self, pin, v):
        if v != self.v:
            self.v = v
            self.sil.bus.write("lock", self.ch, v)


class HallChip:
    """DRV5055 on an ADC input: each conversion is the world's sensor part's (bus "adc")."""

    def __init__(self, sil, ch, pin):
        self.sil = sil
        self.ch = ch
        self.pin = pin
        sil.attach(pin, self, "drv5055.adc")

    def read_pin(self, pin):
        return 0

    def write_pin(self, pin, v):
        pass

    def read_u16(self):
        self.sil.log_event(self.pin, "drv5055.read")
        return self.sil.bus.read("adc", self.ch)


# --------------------------------------------------------------------------- the board


class Silicon:
    """One board's pins and chips. `wiring`: list of dicts, one per chip, as the board's pin
    map solders them: {"chip": "hx711", "ch": slot, "dout": n, "sck": n},
    {"chip": "servo", "ch": slot, "pwm": n}, {"chip": "hbridge", "device": "force"|"coil",
    "ch": axis|slot, "pwm": n, "dir": n}, {"chip": "brake", "ch": axis, "lock": n},
    {"chip": "drv5055", "ch": axis, "adc": n}. `now_us()`: the board's clock in microseconds."""

    def __init__(self, bus, wiring, now_us=None, pd_us=HX711_PD_US):
        self.bus = bus
        # SCK-high time that powers an HX711 down: the datasheet's 60 us on a virtual clock;
        # a MicroPython process passes more (machine.py), since the OS can deschedule it for
        # milliseconds mid-pulse, which an MCU with interrupts off never does
        self.pd_us = pd_us
        self.now_us = now_us or (lambda: 0)
        self.chips = {}  # pin -> chip
        self.roles = {}  # pin -> role name
        self.log = {}  # pin -> {event: count}
        self.hx711 = {}  # slot -> HX711Chip (fault injection)
        for w in wiring:
            c = w["chip"]
            if c == "hx711":
                self.hx711[w["ch"]] = HX711Chip(self, w["ch"], w["dout"], w["sck"])
            elif c == "servo":
                PwmChip(self, "servo", "stiffness", w["ch"], w["pwm"])
            elif c == "hbridge":
                PwmChip(self, "hbridge", w["device"], w["ch"], w["pwm"], w["dir"])
            elif c == "brake":
                LockChip(self, w["ch"], w["lock"])
            elif c == "drv5055":
                HallChip(self, w["ch"], w["adc"])
            else:
                raise ValueError("unknown chip " + repr(c))

    def attach(self, pin, chip, role):
        if pin in self.chips:
            raise ValueError(f"pin {pin} wired twice ({self.roles[pin]} and {role})")
        self.chips[pin] = chip
        self.roles[pin] = role

    def log_event(self, pin, what):
        d = self.log.get(pin)
        if d is None:
            d = self.log[pin] = {}
        d[what] = d.get(what, 0) + 1

    def chip(self, pin):
        return self.chips.get(pin)


# --------------------------------------------------------------------------- machine-like parts


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, sil, id, mode=-1, pull=-1, value=None):
        self.sil = sil
        self.id = id
        self._chip = sil.chip(id)
        self._mode = Pin.IN
        self._v = 0
        if mode != -1:
            self._mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        chip = self._chip
        if v is None:
            if chip is not None and self._mode == Pin.IN:
                return chip.read_pin(self.id)
            return self._v
        v = 1 if v else 0
        self._v = v
        if chip is not None and self._mode != Pin.IN:
            chip.write_pin(self.id, v)

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class PWM:
    def __init__(self, sil, pin, freq=None, duty_u16=None, duty_ns=None):
        self.sil = sil
        self.id = pin.id if hasattr(pin, "id") else pin
        self._chip = sil.chip(self.id)
        self._freq = 1000
        self._duty = 0
        self.ns = 0  # pulse width as last set (ns); servos read this
        if freq is not None:
            self._freq = int(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        if duty_ns is not None:
            self.duty_ns(duty_ns)

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = int(f)

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        d = int(d)
        self._duty = 0 if d < 0 else (65535 if d > 65535 else d)
        self.ns = self._duty * (1000000000 // self._freq) // 65535
        if self._chip is not None:
            self._chip.pwm_update(self)

    def duty_ns(self, ns=None):
        period = 1000000000 // self._freq
        if ns is None:
            return self.ns
        ns = int(ns)
        ns = 0 if ns < 0 else (period if ns > period else ns)
        # the pulse width is kept exactly: the RP2040 slice at 50 Hz (125 MHz / divider 38.1,
        # wrap 65535) resolves ~0.3 us, under every servo's dead band (>= 1 us)
        self.ns = ns
        self._duty = ns * 65535 // period
        if self._chip is not None:
            self._chip.pwm_update(self)

    def deinit(self):
        self.duty_u16(0)


class ADC:
    def __init__(self, sil, pin):
        self.id = pin.id if hasattr(pin, "id") else pin
        chip = sil.chip(self.id)
        if not isinstance(chip, HallChip):
            raise ValueError(f"GPIO {self.id} has no analog part wired")
        self._chip = chip

    def read_u16(self):
        return self._chip.read_u16()


class Family:
    """Pin factories for hal/board.build (the same five functions as hal/rp2.py)."""

    def __init__(self, sil, uid):
        self.sil = sil
        self._uid = uid

    def pin_in(self, n):
        return Pin(self.sil, n, Pin.IN)

    def pin_out(self, n):
        return Pin(self.sil, n, Pin.OUT, value=0)

    def pwm(self, n, freq):
        return PWM(self.sil, Pin(self.sil, n, Pin.OUT), freq=freq, duty_u16=0)

    def adc(self, n):
        return ADC(self.sil, n)

    def uid(self):
        return self._uid
