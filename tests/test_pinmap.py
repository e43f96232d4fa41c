"""Board pin maps: the shipped maps validate and yield configs the firmware accepts; every
refusal of the validator has a minimal bad map whose message names file, field and reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from insitu.cli.main import main
from insitu.deploy.nodeconfig import node_config
from insitu.hardware import (
    PinMapError,
    apply_pins,
    bench_calibration,
    leaf_spring_table,
    load_pinmap,
    parse_pinmap,
    rp2_slice,
    wiring_table,
)
from insitu.network.schema import NetworkError, load_network
from insitu_node.config import from_dict

ROOT = Path(__file__).resolve().parents[1]
BOARDS = ROOT / "hardware" / "boards"
SHIPPED = sorted(BOARDS.glob("*.toml"))
HEAD = {
    "pico": '[pinmap]\nname = "t"\nfamily = "pico"\n',
    "pico2": '[pinmap]\nname = "t"\nfamily = "pico2"\n',
    "esp32": '[pinmap]\nname = "t"\nfamily = "esp32"\n',
}


def slot(n: int, dout: int, sck: int, pwm: int | None = None, coil: str = "") -> str:
    el = f"servo = {{ pwm = {pwm} }}\n" if pwm is not None else ""
    return f"[[slot]]\nslot = {n}\nhx711 = {{ dout = {dout}, sck = {sck} }}\n{el}{coil}"


def refused(text: str, family: str = "pico") -> str:
    with pytest.raises(PinMapError) as ei:
        parse_pinmap(HEAD[family] + text, "bad.toml")
    assert isinstance(ei.value, NetworkError)  # the CLI's exit-2 path
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith("bad.toml: ")
    return msg


# ----------------------------------------------------------------------------- shipped maps


def test_shipped_maps_exist_and_validate() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"pico", "pico2", "esp32"} <= names
    for p in SHIPPED:
        pm = load_pinmap(p)
        assert pm.family == p.stem
        assert pm.max_bonds("servo") >= 3  # li-mao-2024 boards own up to 3 bonds
        assert len(pm.force) == len(pm.clamp) == len(pm.disp) == 2


def test_pico_and_pico2_are_wired_alike() -> None:
    a, b = load_pinmap(BOARDS / "pico.toml"), load_pinmap(BOARDS / "pico2.toml")
    assert (a.slots, a.force, a.clamp, a.disp) == (b.slots, b.force, b.clamp, b.disp)
    assert a.chip.name == "rp2040" and b.chip.name == "rp2350"


def test_rp2_slice_mapping() -> None:
    assert rp2_slice(0) == (0, "A") and rp2_slice(1) == (0, "B")
    assert rp2_slice(16) == (0, "A") and rp2_slice(17) == (0, "B")
    assert rp2_slice(15) == (7, "B") and rp2_slice(28) == (6, "A")


@pytest.mark.parametrize("family", ["pico", "pico2", "esp32"])
def test_li_mao_boards_get_configs_the_firmware_accepts(family: str, li_mao_path: Path) -> None:
    net = load_network(li_mao_path)
    pm = load_pinmap(BOARDS / f"{family}.toml")
    cal = bench_calibration()
    for board in net.boards:
        base = node_config(net, board, cal, family=pm.chip.firmware_family)
        cfg = apply_pins(base, pm)
        v, _ = from_dict(cfg)
        assert v["family"] == pm.chip.firmware_family
        for i, b in enumerate(v["bonds"]):
            s = pm.slots[i]
            assert b["sensor"] == {"type": "hx711", "pins": dict(s.sensor_pins), "gain": 128}
            assert b["element"]["type"] == "servo"
            assert b["element"]["pins"] == dict(s.servo)
        for a in v["force"]:
            assert a["pins"] == dict(pm.force[a["axis"]])
        for a in v["clamp"]:
            assert a["pins"] == dict(pm.clamp[a["axis"]])
        for a in v["disp"]:
            assert a["sensor"]["type"] == "adc"
            assert a["sensor"]["pins"] == {"adc": pm.disp[a["axis"]].pins["adc"]}
        pins = [p for b in cfg["bonds"] for p in b["sensor"]["pins"].values()]
        pins += [p for b in cfg["bonds"] for p in b["element"]["pins"].values()]
        assert len(pins) == len(set(pins))
        assert base["bonds"][0]["sensor"]["type"] == "emu"  # the input is not modified


def test_coil_build_on_pico(li_mao_path: Path) -> None:
    net = load_network(li_mao_path)
    pm = load_pinmap(BOARDS / "pico.toml")
    for board in net.boards:
        cfg = apply_pins(node_config(net, board, bench_calibration(), family="rp2"), pm, "coil")
        v, _ = from_dict(cfg)
        for i, b in enumerate(v["bonds"]):
            assert b["element"]["type"] == "coil"
            assert b["element"]["pins"] == dict(pm.slots[i].coil)


class _FakeFamily:
    """Records what the firmware's real-board HAL assembly asks of a family module."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    class _Pin:
        def value(self, v: int | None = None) -> int:
            return 1  # HX711 DOUT high: no conversion ready

        def duty_ns(self, ns: int) -> None: ...

        def duty_u16(self, d: int) -> None: ...

        def read_u16(self) -> int:
            return 32768

    def pin_in(self, n: int) -> _Pin:
        self.calls.append(("in", n, 0))
        return self._Pin()

    def pin_out(self, n: int) -> _Pin:
        self.calls.append(("out", n, 0))
        return self._Pin()

    def pwm(self, n: int, freq: int) -> _Pin:
        self.calls.append(("pwm", n, freq))
        return self._Pin()

    def adc(self, n: int) -> _Pin:
        self.calls.append(("adc", n, 0))
        return self._Pin()

    def uid(self) -> str:
        return "e6614103e7"


@pytest.mark.parametrize(("family", "element"), [("pico", "servo"), ("pico", "coil"),
                                                 ("esp32", "servo")])  # fmt: skip
def test_firmware_hal_builds_from_the_configs(family: str, element: str, li_mao_path: Path) -> None:
    """The firmware's own HAL assembly (hal/board.py) on every li-mao-2024 config: each pin
    is claimed once, in the direction the map intends, and no RP2 slice gets two frequencies."""
    from insitu_node.hal.board import build

    net = load_network(li_mao_path)
    pm = load_pinmap(BOARDS / f"{family}.toml")
    for board in net.boards:
        cfg = node_config(net, board, bench_calibration(), family=pm.chip.firmware_family)
        v, _ = from_dict(apply_pins(cfg, pm, element))
        fam = _FakeFamily()
        hal = build(v, fam, storage=None)
        assert len(hal.strain) == len(hal.element) == len(board.bonds)
        pins = [n for _, n, _ in fam.calls]
        assert len(pins) == len(set(pins))
        assert all(pm.chip.adc.get(n) for kind, n, _ in fam.calls if kind == "adc")
        assert not any(
            n in pm.chip.input_only for kind, n, _ in fam.calls if kind in ("out", "pwm")
        )
        if pm.chip.pwm == "rp2":
            freq: dict[int, int] = {}
            for kind, n, hz in fam.calls:
                if kind == "pwm":
                    assert freq.setdefault(rp2_slice(n)[0], hz) == hz


def test_config_with_more_bonds_than_slots_is_refused(li_mao_path: Path) -> None:
    net = load_network(li_mao_path)
    pm = load_pinmap(BOARDS / "esp32.toml")
    board = next(b for b in net.boards if len(b.bonds) == 3)
    cfg = node_config(net, board, bench_calibration(), family="esp32")
    with pytest.raises(PinMapError, match=r"esp32\.toml: slot\[2\]\.coil: missing"):
        apply_pins(cfg, pm, "coil")
    small = parse_pinmap(HEAD["esp32"] + slot(0, 34, 32, 33), "one.toml")
    with pytest.raises(PinMapError, match=r"one\.toml: slot: node \d+ owns 3 bonds; .* 1 slots"):
        apply_pins(cfg, small)
    force_board = next(b for b in net.boards if "force" in b.carries)
    cfg = node_config(net, force_board, bench_calibration(), family="esp32")
    three = parse_pinmap(
        HEAD["esp32"] + slot(0, 34, 32, 33) + slot(1, 35, 26, 27) + slot(2, 13, 23, 22), "n.toml"
    )
    with pytest.raises(PinMapError, match=r"n\.toml: force: node \d+ needs force on axis x"):
        apply_pins(cfg, three)


def test_mixed_config_pwm_plan_is_checked() -> None:
    # slot 0 servo on GP4 and slot 1 coil on GP5 each pass alone (servo build / coil build),
    # but a config that builds slot 0 as servo and slot 1 as coil puts 50 Hz and 20 kHz on
    # slice 2
    pm = parse_pinmap(
        HEAD["pico"]
        + slot(0, 0, 1, 4)
        + slot(1, 2, 3, coil="coil = { pwm = 5, dir = 6 }\n")
        + "[[slot]]\nslot = 2\nhx711 = { dout = 7, sck = 8 }\nservo = { pwm = 10 }\n",
        "mix.toml",
    )
    bond = {"bond": [1, 2], "k_min": 1.0, "k_max": 2.0, "k_init": 1.5}
    cfg = {
        "v": 1,
        "node": "n1",
        "bonds": [
            {**bond, "slot": 0, "element": {"type": "servo", "table": [[1.0, 1000], [2.0, 2000]]}},
            {**bond, "slot": 1, "element": {"type": "coil", "cmd_per_n": 1.0}},
        ],
    }
    with pytest.raises(PinMapError, match=r"mix\.toml: slot\[1\]\.coil\.pwm: .*slice 2.*one freq"):
        apply_pins(cfg, pm)


def test_leaf_spring_table_is_monotone_and_covers_bounds() -> None:
    t = leaf_spring_table(103.125, 171.875)
    ks = [k for k, _ in t]
    us = [u for _, u in t]
    assert ks[0] == 103.125 and ks[-1] == 171.875
    assert all(b > a for a, b in zip(ks, ks[1:], strict=False))
    assert all(b > a for a, b in zip(us, us[1:], strict=False))
    assert us[0] == 1000 and us[-1] == 2000
    # cube law: the first half of the k range takes more than half the travel
    assert us[len(us) // 2] > 1500


# ----------------------------------------------------------------------------- refusals


def test_refuses_two_frequencies_on_one_rp2040_slice() -> None:
    # servo (50 Hz) on GP4 and the force driver (20 kHz) on GP5: both slice 2
    msg = refused(slot(0, 0, 1, 4) + '[[force]]\naxis = "x"\npwm = 5\ndir = 6\n')
    assert "force[0].pwm" in msg and "slice 2" in msg
    assert "50 Hz" in msg and "20000 Hz" in msg and "one frequency" in msg
    # GP20 is slice 2 as well (2k + 16)
    msg = refused(slot(0, 0, 1, 4) + '[[force]]\naxis = "x"\npwm = 21\ndir = 6\n')
    assert "force[0].pwm" in msg and "slice 2" in msg


def test_refuses_two_frequencies_on_one_rp2350_slice() -> None:
    msg = refused(slot(0, 0, 1, 4) + '[[force]]\naxis = "x"\npwm = 5\ndir = 6\n', "pico2")
    assert "force[0].pwm" in msg and "one frequency" in msg


def test_refuses_two_outputs_on_one_pwm_channel() -> None:
    msg = refused(slot(0, 0, 1, 2) + slot(1, 3, 4, 18))  # GP2 and GP18: slice 1 channel A
    assert "slot[1].servo.pwm" in msg and "same channel" in msg and "GP2" in msg


def test_same_slice_same_frequency_is_fine() -> None:
    pm = parse_pinmap(HEAD["pico"] + slot(0, 0, 1, 2) + slot(1, 4, 5, 3), "ok.toml")
    assert pm.max_bonds("servo") == 2


def test_coil_and_servo_may_share_their_slot_pwm_only() -> None:
    ok = slot(0, 0, 1, 2, coil="coil = { pwm = 2, dir = 3 }\n")
    assert parse_pinmap(HEAD["pico"] + ok, "ok.toml").max_bonds("coil") == 1
    msg = refused(slot(0, 0, 1, 2) + slot(1, 4, 5, 6, coil="coil = { pwm = 2, dir = 7 }\n"))
    assert "slot[1].coil.pwm" in msg and "already used by slot[0].servo.pwm" in msg


def test_refuses_non_adc_pin_for_adc_bridge() -> None:
    msg = refused("[[slot]]\nslot = 0\nadc = { adc = 5 }\nservo = { pwm = 2 }\n")
    assert "slot[0].adc.adc" in msg and "GP5 is not an ADC pin" in msg and "GP26" in msg
    pm = parse_pinmap(
        HEAD["pico"] + "[[slot]]\nslot = 0\nadc = { adc = 28 }\nservo = { pwm = 2 }\n"
    )
    assert pm.slots[0].sensor == "adc"


def test_refuses_non_adc_pin_for_analog_displacement() -> None:
    msg = refused('[[disp]]\naxis = "x"\nadc = 22\n')
    assert "disp[0].adc" in msg and "not an ADC pin" in msg
    msg = refused('[[disp]]\naxis = "x"\nadc = 4\n', "esp32")  # GPIO 4 is ADC2
    assert "disp[0].adc" in msg and "ADC2" in msg and "Wi-Fi" in msg
    msg = refused('[[disp]]\naxis = "x"\nadc = 23\n', "esp32")
    assert "GPIO 23 is not an ADC pin" in msg


def test_esp32_adc2_allowed_without_wifi() -> None:
    pm = parse_pinmap(HEAD["esp32"] + 'wifi = false\n[[disp]]\naxis = "x"\nadc = 25\n', "w.toml")
    assert pm.disp[0].pins == {"adc": 25} and not pm.wifi


def test_refuses_a_pin_used_twice() -> None:
    msg = refused(slot(0, 0, 1, 2) + '[[clamp]]\naxis = "x"\nlock = 1\n')
    assert "clamp[0].lock" in msg and "GPIO 1 already used by slot[0].hx711.sck" in msg


@pytest.mark.parametrize(
    ("family", "pin", "reason"),
    [
        ("pico", 30, "GPIO 30 does not exist on the RP2040"),
        ("pico", -1, "GPIO -1 does not exist"),
        ("pico2", 31, "GPIO 31 does not exist on the RP2350"),
        ("pico", 25, "GPIO 25 is not on the Raspberry Pi Pico header (the board drives the"),
        ("esp32", 20, "GPIO 20 does not exist on the ESP32"),
        ("esp32", 40, "GPIO 40 does not exist on the ESP32"),
        ("esp32", 37, "GPIO 37 is not on the ESP32-DevKitC (WROOM-32) header"),
    ],
)
def test_refuses_a_pin_that_does_not_exist(family: str, pin: int, reason: str) -> None:
    msg = refused(f'[[clamp]]\naxis = "x"\nlock = {pin}\n', family)
    assert "clamp[0].lock" in msg and reason in msg


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ('[[clamp]]\naxis = "x"\nlock = 12\n', "clamp[0].lock", "GPIO 12 is an ESP32 strapping"),
        ('[[clamp]]\naxis = "x"\nlock = 0\n', "clamp[0].lock", "strapping pin"),
        ('[[clamp]]\naxis = "x"\nlock = 2\n', "clamp[0].lock", "used as an output"),
        ('[[force]]\naxis = "x"\npwm = 15\ndir = 4\n', "force[0].pwm", "strapping pin"),
        ('[[clamp]]\naxis = "x"\nlock = 5\n', "clamp[0].lock", "strapping pin"),
        ('[[clamp]]\naxis = "x"\nlock = 6\n', "clamp[0].lock", "SPI flash"),
        ('[[clamp]]\naxis = "x"\nlock = 11\n', "clamp[0].lock", "SPI flash"),
        (slot(0, 34, 35, 33), "slot[0].hx711.sck", "GPIO 35 is input-only"),
        ('[[force]]\naxis = "x"\npwm = 39\ndir = 4\n', "force[0].pwm", "input-only"),
        ('[[clamp]]\naxis = "x"\nlock = 1\n', "clamp[0].lock", "UART0 TX"),
        (slot(0, 12, 32, 33), "slot[0].hx711.dout", "an input driven by a sensor"),
    ],
)
def test_refuses_esp32_forbidden_pins(text: str, field: str, reason: str) -> None:
    msg = refused(text, "esp32")
    assert field in msg and reason in msg


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("[[slot]]\nslot = 1\nhx711 = { dout = 0, sck = 1 }\nservo = { pwm = 2 }\n", "slot[0].slot",
         "must be 0"),
        ("[[slot]]\nslot = 0\nservo = { pwm = 2 }\n", "slot[0]", "exactly one strain sensor"),
        ("[[slot]]\nslot = 0\nhx711 = { dout = 0, sck = 1 }\n", "slot[0]", "stiffness element"),
        ("[[slot]]\nslot = 0\nhx711 = { dout = 0 }\nservo = { pwm = 2 }\n", "slot[0].hx711.sck",
         "missing"),
        ("[[slot]]\nslot = 0\nhx711 = { dout = 0, sck = '1' }\nservo = { pwm = 2 }\n",
         "slot[0].hx711.sck", "must be a GPIO number"),
        ('[[force]]\naxis = "y"\npwm = 2\ndir = 3\n', "force[0].axis", "must be 'x'"),
        ('[[clamp]]\naxis = "x"\nlock = 2\nspeed = 3\n', "clamp[0].speed", "unknown key"),
        ("[[wheel]]\n", "wheel", "unknown key"),
        ("chip = \"esp32\"\n", "pinmap.chip", "family 'pico' is a rp2040"),
        ("[[disp]]\naxis = 'x'\n", "disp[0]", "exactly one sensor"),
    ],
)  # fmt: skip
def test_refuses_malformed_maps(text: str, field: str, reason: str) -> None:
    msg = refused(text)
    assert f": {field}: " in msg and reason in msg


def test_refuses_unknown_family_and_bad_toml() -> None:
    with pytest.raises(PinMapError, match=r"x\.toml: pinmap\.family: unknown family 'stm32'"):
        parse_pinmap('[pinmap]\nname = "t"\nfamily = "stm32"\n', "x.toml")
    with pytest.raises(PinMapError, match=r"x\.toml: toml: "):
        parse_pinmap("[pinmap\n", "x.toml")
    with pytest.raises(PinMapError, match=r"nope\.toml: file: not found"):
        load_pinmap("nope.toml")


# ----------------------------------------------------------------------------- CLI


def test_cli_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["board", "check", *map(str, SHIPPED)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok — ") == len(SHIPPED)


def test_cli_check_bad_is_one_line_status_2_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(HEAD["pico"] + slot(0, 0, 1, 4) + '[[force]]\naxis = "x"\npwm = 5\ndir = 6\n')
    before = sorted(tmp_path.iterdir())
    assert main(["board", "check", str(BOARDS / "pico.toml"), str(bad)]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"insitu board check: error: {bad}: force[0].pwm: ")
    assert "one frequency" in err[0]
    assert "bad.toml" not in cap.out  # only the good file is reported on stdout
    assert sorted(tmp_path.iterdir()) == before


def test_cli_config_prints_the_node_config(
    li_mao_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["board", "config", str(li_mao_path), "--node", "13"]) == 0
    text = capsys.readouterr().out
    cfg = json.loads(text)
    v, _ = from_dict(cfg)
    assert v["family"] == "rp2" and v["node"] == "13" and len(v["bonds"]) == 3
    assert v["bonds"][0]["sensor"]["pins"] == {"dout": 0, "sck": 1}
    assert main(["board", "config", str(li_mao_path), "--node", "13", "--family", "emu"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "emu"
    args = ["board", "config", str(li_mao_path), "--node", "2", "--family", "esp32"]
    assert main([*args, "--element", "coil"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["family"] == "esp32" and cfg["bonds"][1]["element"]["pins"] == {"pwm": 27, "dir": 14}


def test_cli_config_errors_are_status_2_and_print_nothing(
    tmp_path: Path, li_mao_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[pinmap]\nname = "t"\nfamily = "pico"\n[[slot]]\nslot = 0\nadc = { adc = 5 }\n'
                   'servo = { pwm = 2 }\n')  # fmt: skip
    li = str(li_mao_path)
    cases = [
        (["--node", "13", "--pins", str(bad)], "slot[0].adc.adc: GP5 is not an ADC pin"),
        (["--node", "99"], "no board with that id"),
        (["--node", "13", "--pins", str(BOARDS / "esp32.toml")], "a esp32 pin map"),
        (["--node", "13", "--family", "esp32", "--element", "coil"], "slot[2].coil: missing"),
    ]
    for extra, reason in cases:
        assert main(["board", "config", li, *extra]) == 2
        cap = capsys.readouterr()
        assert cap.out == ""
        assert cap.err.count("\n") == 1 and reason in cap.err, cap.err


# ----------------------------------------------------------------------------- docs


def test_wiring_doc_tables_match_the_pin_maps() -> None:
    doc = (ROOT / "hardware" / "docs" / "wiring.md").read_text()
    for p in SHIPPED:
        m = re.search(
            rf"<!-- wiring:{p.stem} begin[^>]*-->\n(.*?)<!-- wiring:{p.stem} end -->", doc, re.S
        )
        assert m, f"hardware/docs/wiring.md has no generated table for {p.stem}"
        assert m.group(1) == wiring_table(load_pinmap(p)), (
            f"wiring table for {p.stem} is stale: regenerate with `insitu board wiring {p}`"
        )


# ----------------------------------------------------------------------------- the bus drop


def test_shipped_maps_offer_a_bus_build() -> None:
    for p in SHIPPED:
        pm = load_pinmap(p)
        assert pm.bus is not None, p.stem
        assert 2 <= pm.max_bonds(bus=True) == pm.bus.slots < pm.max_bonds()
        assert set(pm.bus.json()) == {"uart", "tx", "rx", "de"}


TWO_SLOTS = slot(0, 0, 1, 2) + slot(1, 4, 5, 6)


@pytest.mark.parametrize(
    ("family", "bus", "reason"),
    [
        ("pico", "uart = 0\ntx = 4\nrx = 5\nde = 9\nslots = 1", "bus.tx: GP4 is not a UART0 TX"),
        ("pico", "uart = 2\ntx = 4\nrx = 5\nde = 9\nslots = 1", "bus.uart: RP2040 has UART0"),
        ("pico", "uart = 1\ntx = 4\nrx = 5\nde = 2\nslots = 1",
         "bus.de: GPIO 2 already used by slot[0]"),
        ("pico", "uart = 1\ntx = 8\nrx = 9\nde = 10\nslots = 2", "bus.slots: must be the bond"),
        ("pico", "uart = 1\ntx = 8\nrx = 9\nslots = 1", "bus.de: missing"),
        ("pico", "uart = 1\ntx = 8\nrx = 9\nde = 10\nslots = 1\nbaud = 9600",
         "bus.baud: unknown"),
        ("esp32", "uart = 0\ntx = 23\nrx = 13\nde = 22\nslots = 1", "UART0 is the console"),
    ],
)
def test_bus_table_refusals_name_the_field(family: str, bus: str, reason: str) -> None:
    slots = TWO_SLOTS if family == "pico" else slot(0, 34, 32, 33) + slot(1, 35, 26, 27)
    assert reason in refused(slots + "[bus]\n" + bus + "\n", family)


def test_bus_takes_the_pins_of_the_slots_it_replaces() -> None:
    pm = parse_pinmap(HEAD["pico"] + TWO_SLOTS + "[bus]\nuart = 1\ntx = 4\nrx = 5\nde = 6\n"
                      "slots = 1\n", "ok.toml")  # fmt: skip
    assert pm.bus is not None and pm.max_bonds() == 2 and pm.max_bonds(bus=True) == 1
