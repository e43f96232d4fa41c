"""Board pin maps (hardware/boards/*.toml): loading, validation, and filling a node's config.

A pin map says which GPIO of one board family drives what: per bond slot a strain sensor
(HX711 DOUT/SCK, or an ADC bridge amplifier on an ADC pin) and a stiffness element (servo PWM,
and/or voice-coil H-bridge PWM + DIR); per spatial axis a force actuator (H-bridge PWM + DIR),
a clamp (lock output) and a displacement sensor (ADC pin, or an HX711). The format is
documented in hardware/README.md ("Pin maps"). Every error names the file, the field and the
reason on one line (``PinMapError`` is a ``NetworkError``, so the CLI exits with status 2).

The chip facts the validator enforces live in ``CHIPS`` and nowhere else:
- RP2040 / RP2350 (GPIO 0-29 on Pico / Pico 2): GPIO n drives PWM slice (n >> 1) & 7, channel
  A (even) or B (odd); a slice has ONE frequency, and GPIO n and n + 16 are the same channel
  (they would carry the same duty). ADC on GP26-GP28 (GP29 is VSYS/3 inside the board).
- ESP32 (DevKitC, WROOM-32): GPIO 6-11 are the module's flash; 1/3 are the console UART; 0, 2,
  5, 12, 15 are strapping pins sampled at reset; 34-39 are input-only; ADC2 (GPIO 0, 2, 4,
  12-15, 25-27) cannot be read while Wi-Fi runs, so ADC inputs must be on ADC1 (GPIO 32-39)
  unless the map says ``wifi = false``.

A board is built either as a servo node (every slot's ``servo``) or a coil node (every slot's
``coil``); the validator checks the PWM frequency plan of each build the map offers. A slot's
servo and coil may share their PWM pin (the same header pin, wired to one or the other).
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from insitu.hardware.leaf import flexure_share, leaf_table
from insitu.network.schema import AXES, NetworkError, ParseContext, read_source
from insitu.resources import boards_dir
from insitu_node.config import MAX_BONDS, ConfigError, from_dict
from insitu_node.hal.board import COIL_HZ, SERVO_HZ

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

PINMAP_SCHEMA = 1
BOARDS_DIR = boards_dir()  # insitu.resources: hardware/boards, shipped in the wheel
ELEMENT_KINDS = ("servo", "coil")
ESP32_LEDC_CHANNELS = 16  # 8 high-speed + 8 low-speed LEDC channels (ESP32 TRM)


class PinMapError(NetworkError):
    """A pin map is invalid, or does not fit a config. ``str()``: 'file: field: reason'."""


# ----------------------------------------------------------------------------- chip facts


@dataclass(frozen=True)
class Chip:
    """What one board (a chip on a particular dev board) offers; data, not logic."""

    name: str  # rp2040 | rp2350 | esp32
    firmware_family: str  # the firmware config's family: rp2 | esp32
    board: str  # the dev board these header positions are for
    n_gpio: int  # GPIO numbers 0..n_gpio-1 exist on the chip (some may be absent, see below)
    header: Mapping[int, str]  # GPIO -> header position on the dev board
    internal: Mapping[int, str]  # GPIO -> what the dev board uses it for (not on the header)
    adc: Mapping[int, str]  # GPIO -> ADC channel name
    absent: frozenset[int] = frozenset()  # numbers in 0..n_gpio-1 the chip does not have
    adc2: frozenset[int] = frozenset()  # ESP32: ADC2 pins (unusable as ADC with Wi-Fi on)
    input_only: frozenset[int] = frozenset()
    strapping: Mapping[int, str] = field(default_factory=dict)
    flash: frozenset[int] = frozenset()
    console: Mapping[int, str] = field(default_factory=dict)
    pwm: str = "rp2"  # rp2 (slices) | ledc (ESP32 LED controller: any output pin)


def rp2_slice(gpio: int) -> tuple[int, str]:
    """(slice, channel) of an RP2040/RP2350 GPIO 0-31: GPIO 2k, 2k+1 and 2k+16, 2k+17 share."""
    return (gpio >> 1) & 7, "AB"[gpio & 1]


# Raspberry Pi Pico / Pico 2 40-pin header: physical pin of each GP pin (Pico datasheet, fig. 2)
_PICO_HEADER = {
    **{g: f"pin {p}" for g, p in zip(range(0, 2), (1, 2), strict=True)},
    **{g: f"pin {p}" for g, p in zip(range(2, 6), (4, 5, 6, 7), strict=True)},
    **{g: f"pin {p}" for g, p in zip(range(6, 10), (9, 10, 11, 12), strict=True)},
    **{g: f"pin {p}" for g, p in zip(range(10, 14), (14, 15, 16, 17), strict=True)},
    **{g: f"pin {p}" for g, p in zip(range(14, 18), (19, 20, 21, 22), strict=True)},
    **{g: f"pin {p}" for g, p in zip(range(18, 22), (24, 25, 26, 27), strict=True)},
    22: "pin 29",
    26: "pin 31",
    27: "pin 32",
    28: "pin 34",
}
_PICO_INTERNAL = {
    23: "drives the SMPS power-save pin",
    24: "senses VBUS",
    25: "drives the on-board LED",
    29: "reads VSYS/3 (ADC3)",
}
_RP2_ADC = {26: "ADC0", 27: "ADC1", 28: "ADC2", 29: "ADC3"}

# ESP32-DevKitC V4 (WROOM-32): J2 is the header on the EN / 3V3 side, J3 the other one
_DEVKITC_HEADER = {
    36: "J2-3 (VP)",
    39: "J2-4 (VN)",
    34: "J2-5",
    35: "J2-6",
    32: "J2-7",
    33: "J2-8",
    25: "J2-9",
    26: "J2-10",
    27: "J2-11",
    14: "J2-12",
    12: "J2-13",
    13: "J2-15",
    9: "J2-16 (SD2)",
    10: "J2-17 (SD3)",
    11: "J2-18 (CMD)",
    23: "J3-2",
    22: "J3-3",
    1: "J3-4 (TX)",
    3: "J3-5 (RX)",
    21: "J3-6",
    19: "J3-8",
    18: "J3-9",
    5: "J3-10",
    17: "J3-11",
    16: "J3-12",
    4: "J3-13",
    0: "J3-14",
    2: "J3-15",
    15: "J3-16",
    8: "J3-17 (SD1)",
    7: "J3-18 (SD0)",
    6: "J3-19 (CLK)",
}
_ESP32_ADC1 = {g: f"ADC1_CH{c}" for c, g in enumerate((36, 37, 38, 39, 32, 33, 34, 35))}
_ESP32_ADC2 = {g: f"ADC2_CH{c}" for c, g in enumerate((4, 0, 2, 15, 13, 12, 14, 27, 25, 26))}

_RP2040 = Chip(
    name="rp2040",
    firmware_family="rp2",
    board="Raspberry Pi Pico",
    n_gpio=30,
    header=_PICO_HEADER,
    internal=_PICO_INTERNAL,
    adc=_RP2_ADC,
)

CHIPS: dict[str, Chip] = {
    "rp2040": _RP2040,
    # RP2350A (QFN-60, the Pico 2's chip): same GPIO 0-29, same slice mapping for them, same
    # ADC pins and the same Pico header, so a Pico 2 drops into a Pico node unchanged.
    "rp2350": replace(_RP2040, name="rp2350", board="Raspberry Pi Pico 2"),
    "esp32": Chip(
        name="esp32",
        firmware_family="esp32",
        board="ESP32-DevKitC (WROOM-32)",
        n_gpio=40,
        header=_DEVKITC_HEADER,
        internal={37: "is not broken out", 38: "is not broken out"},
        adc={**_ESP32_ADC1, **_ESP32_ADC2},
        absent=frozenset({20, 24, 28, 29, 30, 31}),
        adc2=frozenset(_ESP32_ADC2),
        input_only=frozenset({34, 35, 36, 37, 38, 39}),
        strapping={
            0: "boot mode (low = download)",
            2: "boot mode (must be low or floating for download)",
            5: "SDIO slave timing",
            12: "flash voltage (high = 1.8 V: a WROOM-32 then fails to boot)",
            15: "boot log on UART0 / SDIO timing",
        },
        flash=frozenset(range(6, 12)),
        console={1: "UART0 TX (USB bridge, REPL)", 3: "UART0 RX (USB bridge, REPL)"},
        pwm="ledc",
    ),
}
# network board family -> chip
FAMILY_CHIP = {"pico": "rp2040", "pico2": "rp2350", "esp32": "esp32"}


# ----------------------------------------------------------------------------- the pin map


@dataclass(frozen=True)
class Slot:
    """One bond slot: a strain sensor and the stiffness element(s) it can be built with."""

    sensor: str  # hx711 | adc
    sensor_pins: Mapping[str, int]
    servo: Mapping[str, int] | None  # {"pwm": n}
    coil: Mapping[str, int] | None  # {"pwm": n, "dir": n}


@dataclass(frozen=True)
class Disp:
    sensor: str  # adc | hx711
    pins: Mapping[str, int]


# UART pins by function (RP2040/RP2350 datasheets, GPIO function table F2); the ESP32 routes
# UART1/UART2 to any pin through its GPIO matrix (UART0 is the console)
RP2_UART_PINS = {
    0: {"tx": frozenset({0, 12, 16, 28}), "rx": frozenset({1, 13, 17, 29})},
    1: {"tx": frozenset({4, 8, 20, 24}), "rx": frozenset({5, 9, 21, 25})},
}
ESP32_BUS_UARTS = (1, 2)


@dataclass(frozen=True)
class BusPins:
    """The board's bus drop: a UART to an RS-485 transceiver and its driver enable. A bus
    board keeps bond slots 0..slots-1; the bus takes the pins of the ones above."""

    uart: int
    tx: int
    rx: int
    de: int  # driver enable, tied to the transceiver's /RE: high only while transmitting
    slots: int

    def json(self) -> dict[str, int]:
        """The UART part of the board's bus.json (firmware hal/bus.py)."""
        return {"uart": self.uart, "tx": self.tx, "rx": self.rx, "de": self.de}


@dataclass(frozen=True)
class PinMap:
    name: str
    source: str
    family: str  # network board family: pico | pico2 | esp32
    chip: Chip
    description: str
    wifi: bool
    slots: tuple[Slot, ...]
    force: tuple[Mapping[str, int], ...]  # by axis: {"pwm", "dir"}
    clamp: tuple[Mapping[str, int], ...]  # by axis: {"lock"}
    disp: tuple[Disp, ...]  # by axis
    bus: BusPins | None = None  # the board's RS-485 drop, if the map offers one

    def max_bonds(self, element: str = "servo", bus: bool = False) -> int:
        """Bonds this board can own built with `element` (slots are used from 0 upwards);
        ``bus``: built as a bus drop, whose UART takes the slots from ``bus.slots`` up."""
        n = 0
        for s in self.slots:
            if getattr(s, element) is None:
                break
            n += 1
        if bus:
            if self.bus is None:
                return 0
            n = min(n, self.bus.slots)
        return n

    @property
    def builds(self) -> tuple[str, ...]:
        """The element builds the map offers (servo, coil), each checked by the validator."""
        return tuple(k for k in ELEMENT_KINDS if self.max_bonds(k) > 0)


@dataclass(frozen=True)
class _Use:
    where: str
    pin: int
    kind: str  # in | out | pwm | adc
    build: str | None = None  # None: every build; else servo | coil
    hz: int = 0  # pwm only
    slot: int | None = None  # a bond slot's pins (its servo and coil may share a pwm)


class _Ctx(ParseContext):
    error = PinMapError

    def value_table(self, v: Any, where: str, what: str) -> dict:
        if not isinstance(v, dict):
            raise self.fail(where, f"must be a table {what}, got {v!r}")
        return v

    def pins(self, v: Any, where: str, names: tuple[str, ...]) -> dict[str, int]:
        d = self.value_table(v, where, "{" + ", ".join(f"{n} = GPIO" for n in names) + "}")
        self.unknown_keys(d, set(names), where + ".")
        out = {}
        for n in names:
            p = d.get(n)
            if p is None:
                raise self.fail(f"{where}.{n}", "missing (a GPIO number)")
            if isinstance(p, bool) or not isinstance(p, int):
                raise self.fail(f"{where}.{n}", f"must be a GPIO number, got {p!r}")
            out[n] = p
        return out


def load_pinmap(path: str | Path) -> PinMap:
    """Read and validate a pin map; raises PinMapError naming file, field and reason."""
    return parse_pinmap(read_source(path, PinMapError), str(path))


def default_pinmap_path(family: str) -> Path:
    """The bundled pin map of a family: hardware/boards/<family>.toml (insitu.resources)."""
    return BOARDS_DIR / f"{family}.toml"


def parse_pinmap(text: str, source: str = "<pinmap>") -> PinMap:
    ctx = _Ctx(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ctx.fail("toml", str(exc))
    ctx.unknown_keys(data, {"pinmap", "slot", "force", "clamp", "disp", "bus"}, "")
    head = ctx.value_table(data.get("pinmap"), "pinmap", "{name, family, chip, ...}")
    allowed = {"name", "schema", "family", "chip", "board", "description", "wifi"}
    ctx.unknown_keys(head, allowed, "pinmap.")
    if head.get("schema", PINMAP_SCHEMA) != PINMAP_SCHEMA:
        raise ctx.fail("pinmap.schema", f"version {head.get('schema')!r} not supported (this is 1)")
    name = head.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.fail("pinmap.name", "missing or not a string")
    family = head.get("family")
    if family not in FAMILY_CHIP:
        raise ctx.fail(
            "pinmap.family", f"unknown family {family!r} (known: {', '.join(FAMILY_CHIP)})"
        )
    chip_name = head.get("chip", FAMILY_CHIP[family])
    if chip_name not in CHIPS:
        raise ctx.fail("pinmap.chip", f"unknown chip {chip_name!r} (known: {', '.join(CHIPS)})")
    if chip_name != FAMILY_CHIP[family]:
        raise ctx.fail(
            "pinmap.chip", f"family {family!r} is a {FAMILY_CHIP[family]}, not a {chip_name}"
        )
    chip = CHIPS[chip_name]
    wifi = head.get("wifi", chip.name == "esp32")
    if not isinstance(wifi, bool):
        raise ctx.fail("pinmap.wifi", f"must be true or false, got {wifi!r}")
    desc = head.get("description", "")
    if not isinstance(desc, str):
        raise ctx.fail("pinmap.description", "must be a string")

    uses: list[_Use] = []

    # bond slots
    raw_slots = data.get("slot", [])
    if not isinstance(raw_slots, list):
        raise ctx.fail("slot", "must be an array of tables ([[slot]])")
    if len(raw_slots) > MAX_BONDS:
        raise ctx.fail("slot", f"{len(raw_slots)} slots; the firmware takes at most {MAX_BONDS}")
    slots: list[Slot] = []
    for i, rs in enumerate(raw_slots):
        w = f"slot[{i}]"
        rs = ctx.value_table(rs, w, "{slot, hx711 | adc, servo?, coil?}")
        ctx.unknown_keys(rs, {"slot", "hx711", "adc", "servo", "coil"}, w + ".")
        if rs.get("slot") != i:
            raise ctx.fail(f"{w}.slot", f"must be {i} (slots are listed in order 0, 1, ...)")
        sensors = [s for s in ("hx711", "adc") if s in rs]
        if len(sensors) != 1:
            raise ctx.fail(w, "needs exactly one strain sensor: hx711 = {dout, sck} or adc")
        sensor = sensors[0]
        if sensor == "hx711":
            sp = ctx.pins(rs["hx711"], f"{w}.hx711", ("dout", "sck"))
            uses.append(_Use(f"{w}.hx711.dout", sp["dout"], "in", slot=i))
            uses.append(_Use(f"{w}.hx711.sck", sp["sck"], "out", slot=i))
        else:
            sp = ctx.pins(rs["adc"], f"{w}.adc", ("adc",))
            uses.append(_Use(f"{w}.adc.adc", sp["adc"], "adc", slot=i))
        servo = coil = None
        if "servo" in rs:
            servo = ctx.pins(rs["servo"], f"{w}.servo", ("pwm",))
            uses.append(_Use(f"{w}.servo.pwm", servo["pwm"], "pwm", "servo", SERVO_HZ, i))
        if "coil" in rs:
            coil = ctx.pins(rs["coil"], f"{w}.coil", ("pwm", "dir"))
            uses.append(_Use(f"{w}.coil.pwm", coil["pwm"], "pwm", "coil", COIL_HZ, i))
            uses.append(_Use(f"{w}.coil.dir", coil["dir"], "out", "coil", slot=i))
        if servo is None and coil is None:
            raise ctx.fail(w, "needs a stiffness element: servo = {pwm} and/or coil = {pwm, dir}")
        slots.append(Slot(sensor, sp, servo, coil))

    # per-axis devices
    def axes(key: str, parse) -> tuple:
        raw = data.get(key, [])
        if not isinstance(raw, list):
            raise ctx.fail(key, f"must be an array of tables ([[{key}]])")
        if len(raw) > len(AXES):
            raise ctx.fail(key, f"{len(raw)} axes; at most {len(AXES)} (x, y, z)")
        out = []
        for a, ra in enumerate(raw):
            w = f"{key}[{a}]"
            ra = ctx.value_table(ra, w, "{axis, ...}")
            if ra.get("axis") != AXES[a]:
                raise ctx.fail(f"{w}.axis", f"must be {AXES[a]!r} (axes are listed x, y, z)")
            out.append(parse(ra, w))
        return tuple(out)

    def force(ra: dict, w: str) -> dict[str, int]:
        ctx.unknown_keys(ra, {"axis", "pwm", "dir"}, w + ".")
        pins = ctx.pins({k: ra.get(k) for k in ("pwm", "dir") if k in ra}, w, ("pwm", "dir"))
        uses.append(_Use(f"{w}.pwm", pins["pwm"], "pwm", None, COIL_HZ))
        uses.append(_Use(f"{w}.dir", pins["dir"], "out"))
        return pins

    def clamp(ra: dict, w: str) -> dict[str, int]:
        ctx.unknown_keys(ra, {"axis", "lock"}, w + ".")
        pins = ctx.pins({k: ra.get(k) for k in ("lock",) if k in ra}, w, ("lock",))
        uses.append(_Use(f"{w}.lock", pins["lock"], "out"))
        return pins

    def disp(ra: dict, w: str) -> Disp:
        ctx.unknown_keys(ra, {"axis", "adc", "hx711"}, w + ".")
        if ("adc" in ra) == ("hx711" in ra):
            raise ctx.fail(w, "needs exactly one sensor: adc = GPIO or hx711 = {dout, sck}")
        if "adc" in ra:
            pins = ctx.pins({"adc": ra["adc"]}, w, ("adc",))
            uses.append(_Use(f"{w}.adc", pins["adc"], "adc"))
            return Disp("adc", pins)
        pins = ctx.pins(ra["hx711"], f"{w}.hx711", ("dout", "sck"))
        uses.append(_Use(f"{w}.hx711.dout", pins["dout"], "in"))
        uses.append(_Use(f"{w}.hx711.sck", pins["sck"], "out"))
        return Disp("hx711", pins)

    forces = axes("force", force)
    clamps = axes("clamp", clamp)
    disps = axes("disp", disp)
    bus = _parse_bus(ctx, chip, data.get("bus"), len(slots), uses) if "bus" in data else None

    pm = PinMap(
        name=name,
        source=source,
        family=family,
        chip=chip,
        description=desc,
        wifi=wifi,
        slots=tuple(slots),
        force=forces,
        clamp=clamps,
        disp=disps,
        bus=bus,
    )
    for u in uses:
        _check_pin(ctx, chip, wifi, u)
    _check_unique(ctx, uses)
    _check_pwm(ctx, chip, uses)
    return pm


def _parse_bus(ctx: _Ctx, chip: Chip, raw: Any, n_slots: int, uses: list[_Use]) -> BusPins:
    """[bus]: uart, tx, rx, de, slots. Its pins are checked like any other and must not meet
    a pin the bus board still uses (the slots below ``slots``, forces, clamps, sensors)."""
    d = ctx.value_table(raw, "bus", "{uart, tx, rx, de, slots}")
    ctx.unknown_keys(d, {"uart", "tx", "rx", "de", "slots"}, "bus.")
    pins = ctx.pins({k: d.get(k) for k in ("uart", "tx", "rx", "de") if k in d}, "bus",
                    ("uart", "tx", "rx", "de"))  # fmt: skip
    keep = d.get("slots")
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 < keep < n_slots:
        raise ctx.fail("bus.slots", f"must be the bond slots a bus board keeps, 1..{n_slots - 1} "
                       f"(the bus takes the pins of the others), got {keep!r}")  # fmt: skip
    uart = pins["uart"]
    if chip.pwm == "rp2":
        if uart not in RP2_UART_PINS:
            raise ctx.fail("bus.uart", f"{chip.name.upper()} has UART0 and UART1, not {uart}")
        for fn in ("tx", "rx"):
            ok = RP2_UART_PINS[uart][fn]
            if pins[fn] not in ok:
                have = ", ".join(f"GP{p}" for p in sorted(ok))
                raise ctx.fail(f"bus.{fn}", f"GP{pins[fn]} is not a UART{uart} {fn.upper()} "
                               f"pin (UART{uart} {fn.upper()}: {have})")  # fmt: skip
    elif uart not in ESP32_BUS_UARTS:
        raise ctx.fail("bus.uart", f"UART{uart}: use UART1 or UART2 (UART0 is the console)")
    kept = [u for u in uses if u.slot is None or u.slot < keep]
    bus_uses = [_Use("bus.tx", pins["tx"], "out"), _Use("bus.rx", pins["rx"], "in"),
                _Use("bus.de", pins["de"], "out")]  # fmt: skip
    for u in bus_uses:
        _check_pin(ctx, chip, False, u)
    _check_unique(ctx, kept + bus_uses)
    return BusPins(uart, pins["tx"], pins["rx"], pins["de"], keep)



# ----------------------------------------------------------------------------- the checks


def _gp(chip: Chip, pin: int) -> str:
    return f"GP{pin}" if chip.name.startswith("rp") else f"GPIO {pin}"


def _check_pin(ctx: _Ctx, chip: Chip, wifi: bool, u: _Use) -> None:
    pin, w, cn = u.pin, u.where, chip.name.upper()
    if not 0 <= pin < chip.n_gpio or pin in chip.absent:
        have = f"GPIO 0-{chip.n_gpio - 1}"
        if chip.absent:
            have += " except " + ", ".join(str(p) for p in sorted(chip.absent))
        raise ctx.fail(w, f"GPIO {pin} does not exist on the {cn} ({have})")
    if pin in chip.flash:
        raise ctx.fail(w, f"GPIO {pin} is wired to the module's SPI flash (GPIO 6-11): never use")
    if pin in chip.console:
        raise ctx.fail(w, f"GPIO {pin} is the {chip.console[pin]}: keep it for the console")
    if pin in chip.internal:
        raise ctx.fail(
            w, f"GPIO {pin} is not on the {chip.board} header (the board {chip.internal[pin]})"
        )
    if pin not in chip.header:
        raise ctx.fail(w, f"GPIO {pin} is not on the {chip.board} header")
    driven = u.kind in ("out", "pwm")
    if pin in chip.strapping:
        role = "an output" if driven else "an input driven by a sensor"
        raise ctx.fail(
            w,
            f"GPIO {pin} is an {cn} strapping pin ({chip.strapping[pin]}), sampled at reset; "
            f"used as {role} it can change how the board boots",
        )
    if driven and pin in chip.input_only:
        raise ctx.fail(
            w, f"GPIO {pin} is input-only on the {cn} (GPIO 34-39): cannot drive an output"
        )
    if u.kind == "adc":
        if pin not in chip.adc:
            adcs = ", ".join(_gp(chip, p) for p in sorted(chip.adc) if p in chip.header)
            raise ctx.fail(
                w, f"{_gp(chip, pin)} is not an ADC pin (ADC pins on the {chip.board}: {adcs})"
            )
        if wifi and pin in chip.adc2:
            raise ctx.fail(
                w,
                f"GPIO {pin} is on ADC2 ({chip.adc[pin]}), which the ESP32 cannot read while "
                "Wi-Fi is on: use an ADC1 pin (GPIO 32-39), or set pinmap.wifi = false",
            )


def _check_unique(ctx: _Ctx, uses: list[_Use]) -> None:
    first: dict[int, _Use] = {}
    for u in uses:
        prev = first.get(u.pin)
        if prev is None:
            first[u.pin] = u
            continue
        shared_element_pwm = (
            u.kind == prev.kind == "pwm"
            and u.slot is not None
            and u.slot == prev.slot
            and {u.build, prev.build} == {"servo", "coil"}
        )
        if not shared_element_pwm:
            raise ctx.fail(u.where, f"GPIO {u.pin} already used by {prev.where}")


def _check_pwm(ctx: _Ctx, chip: Chip, uses: list[_Use]) -> None:
    """The PWM plan of every build the map offers (servo, coil)."""
    builds = sorted({u.build for u in uses if u.build is not None}) or ["servo"]
    for build in builds:
        pwms = [u for u in uses if u.kind == "pwm" and u.build in (None, build)]
        _check_pwm_plan(ctx, chip, pwms, f"in the {build} build")


def _check_pwm_plan(ctx: _Ctx, chip: Chip, pwms: list[_Use], context: str) -> None:
    """PWM outputs that run together: one frequency per RP2 slice, one output per channel."""
    if chip.pwm == "ledc":
        if len(pwms) > ESP32_LEDC_CHANNELS:
            raise ctx.fail(
                pwms[ESP32_LEDC_CHANNELS].where,
                f"{len(pwms)} PWM outputs {context}; the ESP32 LEDC has "
                f"{ESP32_LEDC_CHANNELS} channels",
            )
        return
    by_slice: dict[int, _Use] = {}
    by_channel: dict[tuple[int, str], _Use] = {}
    for u in pwms:
        sl, ch = rp2_slice(u.pin)
        other = by_channel.get((sl, ch))
        if other is not None and other.pin != u.pin:
            raise ctx.fail(
                u.where,
                f"GP{u.pin} is PWM slice {sl} channel {ch}, the same channel as "
                f"GP{other.pin} ({other.where}): both would output one duty cycle",
            )
        other = by_slice.get(sl)
        if other is not None and other.hz != u.hz:
            raise ctx.fail(
                u.where,
                f"GP{u.pin} (PWM slice {sl} {ch}) runs at {u.hz} Hz but GP{other.pin} "
                f"({other.where}, slice {sl} {rp2_slice(other.pin)[1]}) runs at {other.hz} Hz "
                f"{context}; a slice has one frequency (GPIO 2k and 2k+1 share it, as do "
                f"2k+16 and 2k+17): move one to another slice",
            )
        by_slice.setdefault(sl, u)
        by_channel.setdefault((sl, ch), u)


# ----------------------------------------------------------------------------- node configs


@dataclass(frozen=True)
class BenchNominal:
    """Nominal conversions of the bill-of-materials parts (hardware/docs/bom.md), used in a
    real board's config until the node is calibrated. Every figure is stated where it comes
    from; the assumptions are marked and are what calibration replaces."""

    # HX711 chain: same flexure and bridge as the emulator's (insitu.emulator.hardware NOMINAL)
    strain_m_per_count: float = 2.0**-33
    # DRV5055A1 linear Hall sensor, 60 mV/mT at 3.3 V (TI datasheet) on an assumed 10 mT/mm
    # magnet gradient: 0.6 V/mm; ADCBridge sums 16 reads of read_u16 (65535 per 3.3 V)
    disp_adc_m_per_count: float = 1.0 / (0.6e3 * 16 * 65535 / 3.3)
    # voice coil (assumption: 8 ohm, force constant 1.0 N/A) on a DRV8835 from 5 V:
    # full duty (65535) gives 0.625 A -> 0.625 N, so 104856 duty counts per newton
    coil_cmd_per_n: float = 65535 * 8.0 / (5.0 * 1.0)
    coil_max_cmd: int = 65535
    force_cmd_per_n: float = 65535 * 8.0 / (5.0 * 1.0)
    force_max_n: float = 0.5  # software limit, below the coil's 0.625 N at full duty
    # sensing flexure's own stiffness in parallel with the leaf spring (hardware/docs/node.md)
    flexure_k: float = 20.0
    servo_pulse_us: tuple[int, int] = (1000, 2000)  # pulse at k_min, k_max (~90 deg of travel)
    table_points: int = 9


BENCH = BenchNominal()


def leaf_spring_table(
    k_min: float, k_max: float, nom: BenchNominal = BENCH
) -> list[list[float | int]]:
    """Nominal servo table of the kit's leaf-spring element (hardware/leaf.py): k = k_s + C/L^3,
    servo linear in L, sampled at ``nom.table_points``. Calibration replaces it with measured
    points."""
    ks = flexure_share(k_min, nom.flexure_k)
    return leaf_table(k_min, k_max, ks, nom.servo_pulse_us, nom.table_points)


def bench_calibration(nom: BenchNominal = BENCH):
    """A nodeconfig.Calibration with the BOM parts' nominal figures (before calibration)."""
    from insitu.deploy.nodeconfig import Calibration

    return Calibration(
        strain_m_per_count=nom.strain_m_per_count,
        strain_offset=0,
        disp_m_per_count=nom.disp_adc_m_per_count,
        force_cmd_per_n=nom.force_cmd_per_n,
        force_max_n=nom.force_max_n,
        servo_table=lambda lo, hi: leaf_spring_table(lo, hi, nom),
    )


def _sensor(kind: str, pins: Mapping[str, int], old: Mapping[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {"type": kind, "pins": dict(pins)}
    if kind == "hx711":
        s["gain"] = old.get("gain", 128) if old.get("type") == "hx711" else 128
    else:
        s["over"] = old.get("over", 16) if old.get("type") == "adc" else 16
    return s


def apply_pins(
    config: Mapping[str, Any],
    pinmap: PinMap,
    element: str | None = None,
    nom: BenchNominal = BENCH,
) -> dict[str, Any]:
    """A copy of a node's config with its ``pins`` filled in from a pin map.

    Bond i uses slot i; force/clamp/disp axis a uses the map's axis a. Sensors become the
    map's type (hx711 or adc); the family becomes the chip's firmware family. ``element``
    (servo | coil) rebuilds every bond's stiffness element as that kind (a coil gets the
    nominal drive scale ``nom.coil_cmd_per_n``); None keeps each bond's kind. The result is
    checked by the firmware's own validator; a config the map cannot serve raises
    PinMapError naming the pin map and the field.
    """
    ctx = _Ctx(pinmap.source)
    if element is not None and element not in ELEMENT_KINDS:
        raise ctx.fail("element", f"unknown element {element!r} (known: servo, coil)")
    cfg = copy.deepcopy(dict(config))
    cfg["family"] = pinmap.chip.firmware_family
    bonds = cfg.get("bonds", [])
    for i, b in enumerate(bonds):
        slot_n = b.get("slot", i)
        if slot_n >= len(pinmap.slots):
            raise ctx.fail(
                "slot",
                f"node {cfg.get('node')} owns {len(bonds)} bonds; this {pinmap.name} board has "
                f"{len(pinmap.slots)} slots",
            )
        slot = pinmap.slots[slot_n]
        b["sensor"] = _sensor(slot.sensor, slot.sensor_pins, b.get("sensor", {}))
        el = b.get("element", {})
        kind = element or el.get("type", "servo")
        pins = getattr(slot, kind)
        if pins is None:
            raise ctx.fail(
                f"slot[{slot_n}].{kind}",
                f"missing: node {cfg.get('node')} bond {i} needs a {kind} element "
                f"(this map builds {kind} nodes with up to {pinmap.max_bonds(kind)} bonds)",
            )
        if kind == "servo":
            table = el.get("table") if el.get("type") == "servo" else None
            if table is None:
                table = leaf_spring_table(b["k_min"], b["k_max"], nom)
            b["element"] = {"type": "servo", "pins": dict(pins), "table": table}
        else:
            keep = el.get("type") == "coil"
            b["element"] = {
                "type": "coil",
                "pins": dict(pins),
                "cmd_per_n": el["cmd_per_n"] if keep else nom.coil_cmd_per_n,
                "max_cmd": el.get("max_cmd", nom.coil_max_cmd) if keep else nom.coil_max_cmd,
                "flex_k": el.get("flex_k", nom.flexure_k) if keep else nom.flexure_k,
            }
    for key, have in (("force", pinmap.force), ("clamp", pinmap.clamp), ("disp", pinmap.disp)):
        for a in cfg.get(key, []):
            axis = a["axis"]
            if axis >= len(have):
                raise ctx.fail(
                    key,
                    f"node {cfg.get('node')} needs {key} on axis {AXES[axis]}; this map wires "
                    f"{len(have)} {key} axes",
                )
            if key == "disp":
                d = have[axis]
                a["sensor"] = _sensor(d.sensor, d.pins, a.get("sensor", {}))
            else:
                a["pins"] = dict(have[axis])
    # the PWM plan of this config as built (a config may mix servo and coil bonds)
    pwms = []
    for i, b in enumerate(bonds):
        el = b["element"]
        hz = SERVO_HZ if el["type"] == "servo" else COIL_HZ
        where = f"slot[{b.get('slot', i)}].{el['type']}.pwm"
        pwms.append(_Use(where, el["pins"]["pwm"], "pwm", hz=hz))
    for a in cfg.get("force", []):
        pwms.append(_Use(f"force[{a['axis']}].pwm", a["pins"]["pwm"], "pwm", hz=COIL_HZ))
    _check_pwm_plan(ctx, pinmap.chip, pwms, f"in node {cfg.get('node')}'s config")
    try:
        from_dict(cfg)
    except ConfigError as exc:
        where, reason = (list(exc.args) + ["", ""])[:2]
        raise ctx.fail(f"config {where}", f"firmware refuses the result: {reason}")
    return cfg


# ----------------------------------------------------------------------------- wiring tables


def _describe(pm: PinMap) -> list[tuple[int, str, str, str]]:
    """(gpio, function, connects to, note) for every pin of a map."""
    chip = pm.chip
    rows: list[tuple[int, str, str, str]] = []

    def pwm_note(pin: int, hz: str) -> str:
        if chip.pwm == "rp2":
            sl, ch = rp2_slice(pin)
            return f"PWM {sl}{ch}, {hz}"
        return f"LEDC, {hz}"

    def add(pin: int, fn: str, to: str, note: str = "") -> None:
        rows.append((pin, fn, to, note))

    servo_hz, coil_hz = f"{SERVO_HZ} Hz", f"{COIL_HZ // 1000} kHz"
    for i, s in enumerate(pm.slots):
        if s.sensor == "hx711":
            add(s.sensor_pins["dout"], f"slot {i} strain DOUT", f"HX711 #{i} DOUT")
            add(s.sensor_pins["sck"], f"slot {i} strain SCK", f"HX711 #{i} PD_SCK")
        else:
            p = s.sensor_pins["adc"]
            add(p, f"slot {i} strain (analog)", f"bridge amplifier #{i} out", chip.adc[p])
        if s.servo and s.coil and s.servo["pwm"] == s.coil["pwm"]:
            p = s.servo["pwm"]
            to = f"servo #{i} signal, or coil driver #{i} EN"
            add(p, f"slot {i} element PWM", to, pwm_note(p, f"{servo_hz} servo / {coil_hz} coil"))
        else:
            if s.servo:
                p = s.servo["pwm"]
                add(p, f"slot {i} servo PWM", f"servo #{i} signal", pwm_note(p, servo_hz))
            if s.coil:
                p = s.coil["pwm"]
                add(p, f"slot {i} coil PWM", f"coil driver #{i} EN", pwm_note(p, coil_hz))
        if s.coil:
            add(s.coil["dir"], f"slot {i} coil DIR", f"coil driver #{i} PH", "coil build only")
    for a, f in enumerate(pm.force):
        ax = AXES[a]
        add(f["pwm"], f"force {ax} PWM", f"force driver {ax} EN", pwm_note(f["pwm"], coil_hz))
        add(f["dir"], f"force {ax} DIR", f"force driver {ax} PH")
    for a, c in enumerate(pm.clamp):
        ax = AXES[a]
        add(c["lock"], f"clamp {ax} LOCK", f"clamp {ax} MOSFET gate", "high = hold")
    for a, d in enumerate(pm.disp):
        ax = AXES[a]
        if d.sensor == "adc":
            p = d.pins["adc"]
            add(p, f"disp {ax} (analog)", f"Hall sensor {ax} OUT", chip.adc[p])
        else:
            add(d.pins["dout"], f"disp {ax} DOUT", f"disp HX711 {ax} DOUT")
            add(d.pins["sck"], f"disp {ax} SCK", f"disp HX711 {ax} PD_SCK")
    if pm.bus is not None:
        b, note = pm.bus, f"bus build only (slots {pm.bus.slots}+ unused)"
        add(b.tx, f"bus UART{b.uart} TX", "RS-485 transceiver DI", note)
        add(b.rx, f"bus UART{b.uart} RX", "RS-485 transceiver RO", note)
        add(b.de, "bus DE", "RS-485 transceiver DE and /RE", note + "; high = transmit")
    return rows


def _header_key(chip: Chip, pin: int) -> tuple[int, ...]:
    """Sort key: the numbers in a header label ('pin 4' -> (4,), 'J2-3 (VP)' -> (2, 3))."""
    return tuple(int(n) for n in re.findall(r"\d+", chip.header.get(pin, "")))


def wiring_table(pm: PinMap) -> str:
    """The board's wiring as a Markdown table in header order (generated; docs embed it)."""
    chip = pm.chip
    rows = sorted(_describe(pm), key=lambda r: _header_key(chip, r[0]))
    name = "GP" if chip.pwm == "rp2" else "GPIO"
    lines = [
        f"| header | {name} | function | connects to | note |",
        "|---|---|---|---|---|",
    ]
    for pin, fn, to, note in rows:
        lines.append(f"| {chip.header[pin]} | {pin} | {fn} | {to} | {note} |")
    return "\n".join(lines) + "\n"


def summary(pm: PinMap) -> str:
    """One line: what a board wired by this map can own and carry."""
    builds = ", ".join(f"{k} up to {pm.max_bonds(k)} bonds" for k in pm.builds)
    if pm.bus is not None:
        builds += f"; on a bus (UART{pm.bus.uart}) up to {pm.max_bonds(bus=True)} bonds"
    chip = pm.chip
    used = {r[0] for r in _describe(pm)}  # a bus build reuses slot pins: no new pins
    unusable = chip.flash | set(chip.console) | set(chip.strapping)
    free = sum(1 for p in chip.header if p not in used and p not in unusable)
    return (
        f"{pm.name} ({pm.chip.name}, {pm.chip.board}): {builds}; force {len(pm.force)} axes, "
        f"clamp {len(pm.clamp)}, disp {len(pm.disp)}; {len(used)} pins used, {free} free"
    )
