import fw_fixtures as fx

from insitu_node import config
from insitu_node.hal import board
from insitu_node.hal.actuators import Force
from insitu_node.hal.adcbridge import ADCBridge
from insitu_node.hal.coil import VirtualSpring
from insitu_node.hal.hx711 import HX711
from insitu_node.hal.servo import Servo, k_to_us


class FakeHX711:
    """Shifts a 24-bit value out on falling SCK edges like the chip; counts pulses."""

    def __init__(self):
        self.value_next = None
        self.bits = 0
        self.pulses = 0
        self.sck = 0
        self.dout = Pin(self._dout)
        self.clk = Pin(self._sck_read, self._sck_write)

    def _dout(self):
        if self.value_next is None:
            return 1
        if self.pulses == 0:
            return 0
        return (self.bits >> (24 - self.pulses)) & 1 if self.pulses <= 24 else 1

    def _sck_read(self):
        return self.sck

    def _sck_write(self, v):
        if self.sck and not v:
            pass
        if v and not self.sck:
            if self.pulses == 0:
                self.bits = self.value_next & 0xFFFFFF
            self.pulses += 1
        self.sck = v

    def load(self, value):
        self.value_next = value
        self.pulses = 0


class Pin:
    def __init__(self, rd, wr=None):
        self._rd, self._wr = rd, wr
        self.v = 0

    def value(self, *a):
        if a:
            if self._wr:
                self._wr(a[0])
            self.v = a[0]
            return None
        return self._rd() if self._rd else self.v


def test_hx711_not_ready_then_signed_value_and_gain_pulses():
    chip = FakeHX711()
    hx = HX711(chip.dout, chip.clk, gain=64, jump=1 << 25)  # plausibility: case_hx711.py
    assert hx.poll() is None
    for v in (123456, -2, -8388608, 8388607, 1):
        chip.load(v)
        assert hx.poll() == v
        assert chip.pulses == 27
    chip.load(5)
    hx = HX711(chip.dout, chip.clk, gain=32)
    assert hx.poll() == 5 and chip.pulses == 26


def test_adc_bridge_oversamples():
    class Adc:
        def read_u16(self):
            return 32768 + 10

    assert ADCBridge(Adc(), over=8).poll() == 80


def test_servo_table():
    tab = [(100.0, 1000), (150.0, 1800), (200.0, 2000)]
    assert k_to_us(tab, 50.0) == 1000 and k_to_us(tab, 125.0) == 1400
    assert k_to_us(tab, 175.0) == 1900 and k_to_us(tab, 999.0) == 2000
    got = []
    Servo(tab, got.append).set_k(150.0, 1.0, 0)
    assert got == [1800]


def test_virtual_spring_force_is_minus_k_e():
    got = []
    vs = VirtualSpring(cmd_per_n=1000.0, max_cmd=65535, sink=got.append)
    gain = 1e-6  # metres per count
    vs.set_k(137.5, gain, 100)
    for raw in (100, 1100, -5000, 300000, -1048000):
        vs.control(raw)
        want = max(-65535.0, min(65535.0, -137.5 * (raw - 100) * gain * 1000.0))
        assert abs(got[-1] - want) <= 1.0 + 1e-4 * abs(want), (raw, got[-1], want)
    vs.control(10**7)
    assert got[-1] == -65535 or got[-1] >= -65535


def test_force_actuator():
    got = []
    f = Force(2000.0, 0.5, got.append)
    assert f.set(0.049) == 98
    f.off()
    assert got == [98, 0]


def test_board_build_with_fake_family():
    class Fam:
        made = []

        def pin_in(self, n):
            return Pin(lambda: 1)

        def pin_out(self, n):
            self.made.append(("out", n))
            return Pin(None)

        def pwm(self, n, freq):
            fam = self

            class P:
                def duty_ns(self, ns):
                    fam.made.append(("ns", n, ns))

                def duty_u16(self, d):
                    fam.made.append(("u16", n, d))

            self.made.append(("pwm", n, freq))
            return P()

        def adc(self, n):
            class A:
                def read_u16(self):
                    return 32768

            return A()

        def uid(self):
            return "e6614103e7"

    raw = fx.config(2, force=1, clamp=1, disp=1)
    raw["family"] = "rp2"
    raw["bonds"][0]["sensor"] = {"type": "hx711", "pins": {"dout": 2, "sck": 3}}
    raw["bonds"][0]["element"]["pins"] = {"pwm": 4}
    raw["bonds"][1]["sensor"] = {"type": "adc", "pins": {"adc": 26}, "over": 4}
    raw["bonds"][1]["element"] = {"type": "coil", "cmd_per_n": 100.0, "pins": {"pwm": 6, "dir": 7}}
    raw["force"][0]["pins"] = {"pwm": 8, "dir": 9}
    raw["clamp"][0]["pins"] = {"lock": 10}
    raw["disp"][0]["sensor"] = {"type": "adc", "pins": {"adc": 27}}
    cfg = config.validate(raw)
    hal = board.build(cfg, Fam(), None)
    assert hal.uid == "e6614103e7" and len(hal.strain) == 2 and len(hal.disp) == 1
    assert hal.strain[0].poll() is None and hal.strain[1].poll() == 0
    hal.element[0].set_k(150.0, 1.0, 0)
    assert ("ns", 4, 1500000) in Fam.made and ("pwm", 6, board.COIL_HZ) in Fam.made
    hal.force[0].set(-0.01)
    assert ("u16", 8, 10) in Fam.made
