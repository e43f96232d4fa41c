"""Pin-level emulated silicon (emulator/mp/silicon.py) under the board's real drivers.

The firmware's own drivers (hal/hx711.py, servo.py, actuators.py, adcbridge.py via
hal/board.py) drive emulated pins; the chip models turn the pin activity into the world's
quantities. These tests fail if an emulated board stops building its hardware that way.
"""

from __future__ import annotations

import numpy as np
import pytest

from insitu.emulator.gradcheck import run_gradcheck
from insitu.emulator.hardware import HX711_MAX, HX711_MIN, REALISTIC, DispSensor
from insitu.emulator.inprocess import InProcessLab
from insitu.emulator.mp import silicon
from insitu.emulator.world import World
from insitu.hardware.pinmap import default_pinmap_path, load_pinmap
from insitu.network.schema import load_network
from insitu_node.hal import actuators, adcbridge, hx711, servo
from insitu_node.hal.emuhx import EmuHX711


class Bus:
    """A world stand-in: one strain channel whose next conversion the test sets."""

    def __init__(self) -> None:
        self.value = 0
        self.ready = True
        self.reads: list[str] = []
        self.writes: list[tuple[str, int, float]] = []
        self.u = 0.0
        self.adc = lambda: 0

    def read(self, device: str, ch: int):
        self.reads.append(device)
        if device == "ready":
            return int(self.ready)
        if device == "u":
            return self.u
        if device == "adc":
            return self.adc()
        return self.value

    def write(self, device: str, ch: int, v) -> None:
        self.writes.append((device, ch, v))


def hx(gain: int = 128, t: list[int] | None = None):
    bus = Bus()
    clock = t if t is not None else [0]
    sil = silicon.Silicon(bus, [{"chip": "hx711", "ch": 0, "dout": 2, "sck": 3}],
                          now_us=lambda: clock[0])
    fam = silicon.Family(sil, "t")
    return bus, sil, hx711.HX711(fam.pin_in(2), fam.pin_out(3), gain)


@pytest.mark.parametrize("v", [0, 1, -1, 123456, -98765, HX711_MAX, HX711_MIN])
def test_hx711_word_crosses_the_pins(v):
    bus, sil, drv = hx()
    bus.value = v
    if v in (0, -1):
        # all zeros / all ones is what a stuck DOUT line reads: the driver drops such a word
        # unless the one before agrees (hal/hx711.py plausibility), so it takes a second
        assert drv.poll() is None and drv.dropped == 1
    assert drv.poll() == v
    assert drv.poll() == v  # the next conversion (the bus still says ready)
    # a frame closes when DOUT is next sampled (one more for the dropped word)
    assert sil.log[3]["hx711.frame"] == (2 if v in (0, -1) else 1)


def test_hx711_not_ready_is_no_sample():
    bus, _, drv = hx()
    bus.ready = False
    assert drv.poll() is None
    assert bus.reads == ["ready"]  # no strain read: DOUT high, nothing clocked


def test_hx711_gain_pulses_select_the_next_conversion():
    bus, sil, drv = hx(gain=64)  # 27 pulses: channel A, gain 64
    bus.value = 1000
    assert drv.poll() == 1000  # the conversion after power-up is at A/128
    assert drv.poll() == 500  # then at the gain the 27 pulses picked
    assert sil.hx711[0].gain == 64
    _, sil32, drv32 = hx(gain=32)  # channel B: nothing wired on the kit, reads 0
    assert drv32.poll() is None  # an all-zero word alone is dropped as implausible
    assert drv32.poll() == 0 and drv32.poll() == 0
    assert sil32.hx711[0].gain == 32


def test_hx711_powers_down_when_sck_stays_high():
    t = [0]
    bus, sil, drv = hx(t=t)
    bus.value = 77
    drv.power_down()  # SCK high
    t[0] = 61  # > 60 us
    assert drv.poll() is None  # DOUT high while powered down
    assert sil.log[3]["hx711.power_down"] == 1
    drv._clk(0)  # SCK low: the chip wakes at channel A gain 128
    assert sil.log[3]["hx711.wake"] == 1
    assert drv.poll() == 77


def test_hx711_stretched_pulse_corrupts_one_word():
    bus, sil, drv = hx()
    bus.value = 0x123456
    sil.hx711[0].stretch = 5  # an interrupt holds pulse 5 high
    bad = drv.poll()
    assert bad != 0x123456
    assert bad & 0xFFFFF == (0x123456 << 1 | 1) & 0xFFFFF  # shifted from pulse 5 on
    assert drv.poll() == 0x123456  # one word only
    assert sil.log[3]["hx711.stretched"] == 1


def test_hx711_pin_path_reads_the_same_bits_as_the_bus(li_mao_path):
    """Same world, same seed: the pin-level chip and hal/emu.py see identical counts."""
    net = load_network(li_mao_path)
    from insitu.emulator.inprocess import firmware_profile

    out = []
    for pins in (False, True):
        w = World(net, firmware_profile("realistic"), seed=3)
        bus = w.bus(net.boards[0].id)
        if pins:
            sil = silicon.Silicon(bus, [{"chip": "hx711", "ch": 0, "dout": 2, "sck": 3}])
            fam = silicon.Family(sil, "t")
            drv = hx711.HX711(fam.pin_in(2), fam.pin_out(3), 128)
        else:
            drv = EmuHX711(bus, 0)  # what an in-process board reads through (inprocess._fast_node)
        got = []
        while len(got) < 40:
            w.clock.sleep_ms(3)
            c = drv.poll()
            if c is not None:
                got.append(c)
        out.append(got)
    assert out[0] == out[1]


def test_servo_hbridge_brake_and_hall_chips():
    bus = Bus()
    wiring = [
        {"chip": "servo", "ch": 0, "pwm": 4},
        {"chip": "hbridge", "device": "force", "ch": 1, "pwm": 6, "dir": 7},
        {"chip": "brake", "ch": 0, "lock": 8},
        {"chip": "drv5055", "ch": 1, "adc": 26},
    ]
    sil = silicon.Silicon(bus, wiring)
    fam = silicon.Family(sil, "t")
    from insitu_node.hal import board

    s = servo.Servo([[1.0, 1000], [2.0, 2000]], board.servo_sink(fam, 4))
    s.set_k(1.5, 1.0, 0)
    f = actuators.Force(1000.0, 1.0, board.hbridge_sink(fam, {"pwm": 6, "dir": 7}))
    f.set(-0.25)
    f.set(0.5)
    f.off()
    lock = fam.pin_out(8)
    lock.value(1)
    lock.value(0)
    assert bus.writes == [
        ("stiffness", 0, 1500.0),
        ("force", 1, -250),
        ("force", 1, 500),
        ("force", 1, 0),
        ("lock", 0, 1),
        ("lock", 0, 0),
    ]
    # the Hall sensor's physics is the world's part (emulator/hardware.DispSensor); the chip
    # hands the driver its conversions
    part = DispSensor(REALISTIC.disp, REALISTIC.nominal, np.random.default_rng(1))
    bus.u = 100e-6  # 100 um: 0.06 V on the Hall output, ~75 ADC codes above mid-scale
    bus.adc = lambda: part.read_u16(bus.u)
    a = adcbridge.ADCBridge(fam.adc(26), 16)
    counts = [a.poll() for _ in range(50)]
    m_per_count = 1.0 / (0.6e3 * 16 * 65535 / 3.3)  # the kit's nominal (BENCH)
    assert abs(np.mean(counts) * m_per_count - 100e-6) < 2e-6
    with pytest.raises(ValueError, match="wired twice"):
        silicon.Silicon(bus, [wiring[0], {"chip": "brake", "ch": 0, "lock": 4}])
    with pytest.raises(ValueError, match="no analog part"):
        fam.adc(4)


def test_pin_level_boards_run_the_real_drivers_on_the_mapped_pins(li_mao_path):
    """The board's pin map says which part sits on which GPIO; the emulated silicon records
    which pins the firmware drove, and how. Every mapped pin must show its protocol, driven
    by hal/board.py's drivers (not hal/emu.py)."""
    net = load_network(li_mao_path)
    pm = load_pinmap(default_pinmap_path("pico"))
    # a gradient measurement on the same kind of lab exercises every part
    load = np.zeros(len(net.node_ids) * net.dim)
    f_adj = np.zeros(len(net.node_ids) * net.dim)
    load[net.node_ids.index(10) * 2 + 1] = -0.049
    f_adj[net.node_ids.index(8) * 2] = 0.01
    from insitu.emulator.gradcheck import _check
    from insitu.rig.lab import emulated_rig

    lab, rig = emulated_rig(net, "realistic", 0, pins="pico")
    res = _check(rig, lab.world, net, load, f_adj, 4)
    assert res.cosine > 0.99
    for bd in net.boards:
        node = lab.nodes[bd.id]
        sil = lab.silicon[bd.id]
        assert node.hal.family == "rp2"
        assert all(type(s) is hx711.HX711 for s in node.hal.strain)
        assert all(type(e) is servo.Servo for e in node.hal.element)
        assert all(type(f) is actuators.Force for f in node.hal.force)
        assert all(type(c) is actuators.Clamp for c in node.hal.clamp)
        assert all(type(d) is adcbridge.ADCBridge for d in node.hal.disp)
        expect: dict[int, str] = {}
        for i in range(len(bd.bonds)):
            slot = pm.slots[i]
            expect[slot.sensor_pins["dout"]] = "hx711.frame"
            expect[slot.sensor_pins["sck"]] = "hx711.frame"
            expect[slot.servo["pwm"]] = "servo.pulse@50Hz"
        for a in range(net.dim):
            if "force" in bd.carries:
                expect[pm.force[a]["pwm"]] = "hbridge.duty@20000Hz"
            if "displacement" in bd.carries:
                expect[pm.disp[a].pins["adc"]] = "drv5055.read"
        driven = {p: set(ev) for p, ev in sil.log.items()}
        for pin, what in expect.items():
            assert what in driven.get(pin, set()), (bd.id, pin, what, driven)
        assert set(driven) <= set(expect) | {pm.clamp[a]["lock"] for a in range(len(pm.clamp))}


def test_pin_level_gradient_check_holds(li_mao_path):
    net = load_network(li_mao_path)
    load = np.zeros(len(net.node_ids) * net.dim)
    f_adj = np.zeros(len(net.node_ids) * net.dim)
    for n in (10, 12, 13, 14):
        load[net.node_ids.index(n) * 2 + 1] = -0.049
    f_adj[net.node_ids.index(8) * 2] = 0.01
    f_adj[net.node_ids.index(2) * 2] = -0.01
    res = run_gradcheck(net, load, f_adj, "realistic", 0, pins="pico")
    assert res.cosine >= 0.999


def test_pins_refuse_float_profiles(li_mao_path):
    net = load_network(li_mao_path)
    with pytest.raises(ValueError, match="unquantised"):
        InProcessLab(net, "ideal", pins="pico")


def test_hx711_resyncs_after_the_driver_loses_a_frame():
    bus, sil, drv = hx()
    bus.value = -5
    pin = silicon.Pin(sil, 3, silicon.Pin.OUT)
    assert drv._din() == 0  # ready: the conversion is latched
    for _ in range(7):  # a frame broken off after 7 bits (a reset mid-read)
        pin.value(1)
        pin.value(0)
        drv._din()
    bus.value = 321
    assert drv.poll() == 321  # DOUT sampled again: the next conversion, not the stale bits
    assert sil.log[3]["hx711.abandoned"] == 1


MP_MAIN = """
import machine
from insitu_node.hal import adcbridge, board, hx711, rp2
h = hx711.HX711(rp2.pin_in(2), rp2.pin_out(3), 128)
print("HX", h.poll(), h.poll())
board.servo_sink(rp2, 4)(1500)
board.hbridge_sink(rp2, {"pwm": 6, "dir": 7})(-100)
print("ADC", adcbridge.ADCBridge(rp2.adc(26), 16).poll())
h.poll()
log = machine.silicon_log()
print("LOG", sorted((p, sorted(ev)) for p, ev in log.items()))
print("DONE")
"""


def test_micropython_board_runs_the_family_pin_factories_on_the_silicon(tmp_path):
    """On a MicroPython-process board, the firmware's own hal/rp2.py gets its pins from the
    emulated machine, whose pins are silicon.py's: the same chips as in-process."""
    import json

    from insitu.deploy.flash import FIRMWARE_DIR
    from insitu.emulator.mpboard import MicroPythonBoard

    wiring = [
        {"chip": "hx711", "ch": 0, "dout": 2, "sck": 3},
        {"chip": "servo", "ch": 0, "pwm": 4},
        {"chip": "hbridge", "device": "force", "ch": 0, "pwm": 6, "dir": 7},
        {"chip": "drv5055", "ch": 0, "adc": 26},
    ]
    bus = Bus()
    bus.value = -123456
    bus.u = 0.0
    part = DispSensor(REALISTIC.disp, REALISTIC.nominal, np.random.default_rng(2))
    bus.adc = lambda: part.read_u16(bus.u)
    (tmp_path / "main.py").write_text(MP_MAIN)
    b = MicroPythonBoard(tmp_path, unique_id=1, bus=bus, path=[FIRMWARE_DIR],
                         env={"INSITU_WIRING": json.dumps(wiring)}, name="sil")
    try:
        b.start()
        end = b.wait_output(b"DONE\r\n", timeout=20)
        out = b.transcript()[:end].decode()
    finally:
        b.stop()
    assert "HX -123456 -123456" in out, out
    adc = int(out.split("ADC ")[1].split()[0])
    # mid-scale at u = 0: 16 conversions of 2.8 LSB rms noise, x16 per LSB -> ~180 counts rms
    assert abs(adc) < 1000
    assert "(2, ['hx711.frame']), (3, ['hx711.frame'])" in out
    assert "(4, ['servo.pulse@50Hz'])" in out and "(6, ['hbridge.duty@20000Hz'])" in out
    assert ("stiffness", 0, 1500.0) in bus.writes and ("force", 0, -100) in bus.writes


@pytest.mark.parametrize(
    "extra, msg",
    [
        (["--profile", "realistic", "--pins", "nosuch"], "nosuch.toml: file: not found"),
        (["--pins", "pico"], "--pins: pins carry integer counts"),
    ],
)
def test_gradcheck_pins_user_errors(li_mao_path, capsys, extra, msg):
    from insitu.cli.main import main

    argv = ["gradcheck", str(li_mao_path), "--load", "10:0,-0.049", "--adjoint", "8:0.01,0"]
    assert main([*argv, *extra]) == 2
    out = capsys.readouterr()
    assert msg in out.err and out.out == ""
    assert len(out.err.strip().splitlines()) == 1


@pytest.mark.parametrize("profile", ["realistic", "realistic+coil"])
def test_bus_path_reads_what_the_pin_path_reads_bit_for_bit(li_mao_path, profile):
    """In-process boards keep the fast bus path (hal/emu.py) because it hands the node the same
    readings as the pin-level path (hal/board.py and the real drivers on silicon.py): the same
    scenario on the same parts gives the same replies, bit for bit — strain and displacement
    readings, the realised stiffness, the accumulated gradient. (Clamps are left out: the
    kit's clamp is a brake that holds where it is, the bus path's a target; docs/emulator.md.)"""
    from insitu.network.schema import Port
    from insitu.rig.lab import emulated_rig

    net = load_network(li_mao_path)
    k = net.k_min + (net.k_max - net.k_min) * np.linspace(0.1, 0.9, net.n_bonds)
    runs = []
    for pins in (None, "pico"):
        lab, rig = emulated_rig(net, profile, seed=5, pins=pins)
        rig.release()  # as a trainer starts: nothing is clamped, so nothing happens
        rig.tare(settle_ms=2000, n=4)
        rig.set_stiffness(k)
        lab.advance(1000)  # the servos travel
        rig.apply_forces({Port(11, 1): -0.049, Port(10, 0): 0.02})
        fwd = rig.measure("free", settle_ms=2000, n=4, v=True)
        rig.apply_forces({Port(13, 1): 0.004, Port(14, 1): -0.002})
        adj = rig.measure("free", settle_ms=2000, n=4, v=True)
        # a step of ~0.2 mm in some bonds between two conversions: the HX711 driver drops the
        # first word of it (plausibility), and so must the bus path
        rig.apply_forces({Port(11, 1): -0.1})
        big = rig.measure("free", settle_ms=0, n=8, v=True)
        rig.forces_off()
        dropped = sum(s.dropped for n in lab.nodes.values() for s in n.hal.strain)
        runs.append((fwd.u, fwd.e, adj.u, adj.e, rig.realised_stiffness(), lab.silicon,
                     big.u, big.e, dropped, lab.clock.now()))  # fmt: skip
        rig.close()
    (bus, pin) = runs
    assert pin[5] and not bus[5]  # the second run really went through the pins
    assert bus[0] == pin[0] and bus[2] == pin[2]  # displacement, every port, exactly
    assert np.array_equal(bus[1], pin[1]) and np.array_equal(bus[3], pin[3])  # strain
    assert np.array_equal(bus[4], pin[4])  # realised k
    assert bus[6] == pin[6] and np.array_equal(bus[7], pin[7])  # through the step
    assert bus[8] == pin[8] > 0 and bus[9] == pin[9]  # the same words dropped, same time
    assert np.abs(bus[1]).max() > 1e-6 and max(abs(v) for v in bus[0].values()) > 1e-6


class _Recording:
    """A world bus that records which devices a board's process asked for."""

    def __init__(self, bus) -> None:
        self.bus, self.devices = bus, set()

    def read(self, device, ch):
        self.devices.add(device)
        return self.bus.read(device, ch)

    def write(self, device, ch, v):
        self.devices.add(device)
        return self.bus.write(device, ch, v)


def test_micropython_boards_are_the_kits_boards_by_default(li_mao_path):
    """A MicroPython-process board of a realistic lab is, unless told otherwise, the board its
    network file names, flashed as `insitu flash` flashes it: an rp2 config with the pico pin
    map, and hal/board.py's drivers on the pins (the world sees HX711 conversions, ADC
    conversions and servo pulses, never the emulated HAL's summed displacement read)."""
    import time

    from insitu.emulator.mplab import MicroPythonLab
    from insitu.links import SerialLink
    from insitu.rig.lab import board_configs
    from insitu_node.protocol import codec

    net = load_network(li_mao_path)
    lab = MicroPythonLab(net, "realistic", boards=[13])
    assert lab.family is None and lab.configs[13] == board_configs(net, profile="realistic")[13]
    assert lab.configs[13]["family"] == "rp2"
    rec = _Recording(lab.boards[13].bus)
    lab.boards[13].bus = rec

    def ask(link, seq, op, args):
        link.send(codec.encode(seq, "13", op, args))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            f = codec.parse(link.receive(1.0) or "")
            if f is not None and f.seq == seq:
                return f
        raise AssertionError(f"no reply to {op}")

    with lab:
        link = SerialLink(lab.ports()[13])
        try:
            ident = ask(link, 1, "identify", {})
            assert ident.args["family"] == "rp2"
            nb = len(lab.configs[13]["bonds"])
            assert ask(link, 2, "set", {"k": [130.0] * nb}).op == "ok"
            m = ask(link, 3, "measure", {"phase": "free", "settle_ms": 50, "n": 2, "v": True})
            assert len(m.args["e"]) == nb and len(m.args["u"]) == 2
        finally:
            link.close()
    assert {"strain", "ready", "adc", "stiffness"} <= rec.devices
    assert "disp" not in rec.devices
    ideal = MicroPythonLab(net, "ideal", boards=[13])  # float counts: the emulated HAL
    assert ideal.family == "emu" and ideal.configs[13]["family"] == "emu"
