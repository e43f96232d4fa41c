"""Emulated HAL: the same drivers' conversions, but every device reads and writes through a
`bus` with two methods, read(device, channel) and write(device, channel, value), in the raw
units a real board's drivers would see (device table in docs/firmware.md).

In-process the bus is a Python object bound to the simulated world; in a MicroPython process
the module `emubus` on MICROPYPATH provides the same two functions. This is the path of the
ideal profile (float counts cannot cross pins) and of default labs; pin-level emulated boards
build their HAL with hal/board.py and the real drivers instead (docs/emulator.md).
"""

from .interfaces import Hal
from .storage import MemStorage


class EmuSensor:
    """Raw-count sensor on the bus; honours an optional "ready" device (HX711 DOUT)."""

    def __init__(self, bus, device, channel, gated=True):
        self._bus = bus
        self._dev = device
        self._ch = channel
        self._gated = False
        if gated:  # only strain channels have a data-ready line (HX711 DOUT)
            try:
                self._gated = bus.read("ready", channel) is not None
            except Exception:  # a bus without a "ready" device: a fresh sample every tick
                self._gated = False

    def poll(self):
        bus = self._bus
        if self._gated and not bus.read("ready", self._ch):
            return None
        return bus.read(self._dev, self._ch)


def _sink(bus, device, channel):
    # defaults, not a closure: ~36 bytes of 32-bit heap per sink, not ~96 (a closure keeps a
    # heap cell per variable); called with one argument, so the defaults are never replaced
    def sink(v, bus=bus, device=device, channel=channel):
        bus.write(device, channel, v)

    return sink


def _element(el, sink):
    # drivers imported when a config uses them: a node holds the code of its own parts only
    if el["type"] == "servo":
        from .servo import Servo

        return Servo(el["table"], sink)
    from .coil import VirtualSpring

    return VirtualSpring(el["cmd_per_n"], el["max_cmd"], sink, el.get("flex_k", 0))


def build(cfg, bus=None, storage=None, uid=None):
    if bus is None:
        import emubus as bus  # provided on MICROPYPATH by the process emulator
    hal = Hal("emu", uid or ("emu-" + cfg["node"]), storage or MemStorage())
    for b in cfg["bonds"]:
        s = b["slot"]
        hal.strain.append(EmuSensor(bus, "strain", s))
        el = b["element"]
        dev = "stiffness" if el["type"] == "servo" else "coil"
        hal.element.append(_element(el, _sink(bus, dev, s)))
    if cfg["force"] or cfg["clamp"]:
        from .actuators import Clamp, Force
    for a in cfg["force"]:
        hal.force.append(Force(a["cmd_per_n"], a["max_n"], _sink(bus, "force", a["axis"])))
    for a in cfg["clamp"]:
        x = a["axis"]
        hal.clamp.append(Clamp(_sink(bus, "clamp", x), _sink(bus, "release", x)))
    for a in cfg["disp"]:
        hal.disp.append(EmuSensor(bus, "disp", a["axis"], gated=False))
    return hal
