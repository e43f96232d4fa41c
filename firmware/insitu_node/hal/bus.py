"""A node on a shared half-duplex bus (RS-485): quiet requests, reply slots, the UART link.

Loaded only by a board whose flash holds ``bus.json`` (app/main.py): a board on its own USB
port never imports it, so none of this costs the node core's heap (docs/firmware.md).

Quiet requests (docs/protocol.md, "Bus"): the host marks a broadcast it does not need every
board to acknowledge with ``~`` before the frame. The mark is outside the CRC'd frame, so the
node core (codec.decode skips text before "@") handles the request exactly as any other; this
layer only keeps its ``ok`` reply off the bus unless the reply has something to say
(displacements, elongations, a board still busy). Errors and events (boot, a fault) always
go out. Silence is safe because what a quiet request changes is checked end to
end: a node that missed a ``measure`` holds the wrong sample count and refuses the next
``update batch=B`` out loud; a rebooted node announces its boot.

Reply slots: boards that answer the same request (the output boards after a measurement)
would collide on a half-duplex line, so a board transmits only after the line has been idle
for ``(slot + 1) * gap_us`` (carrier sense with a per-board priority, slot 0 first). Slots are
unique on a bus; the host gives the boards that speak in every phase the lowest ones.
"""

import json

from ..compat import const, ticks_diff

_RING = const(16)  # quiet requests remembered (a deferred reply comes after the busy pings)
_HOLD_MAX_US = const(50000)  # a line that never goes quiet (noise): transmit anyway
# what makes an ok reply to a quiet request worth the line: displacements (the outputs'
# report), elongations (asked for), a board still busy (asked whether). A sensor or element
# fault is announced once by its event; the latched "bad"/"held" lists stay off the line.
_SPEAK = (b'"u":', b'"e":', b'"busy":true')
QUIET = "~"


def seq_of(line):
    """The seq of a frame line (str or bytes), or -1; no CRC check (the codec decides)."""
    if isinstance(line, str):
        line = line.encode()
    i = line.find(b"@1 ")
    if i < 0:
        return -1
    j = line.find(b" ", i + 3)
    s = line[i + 3 : j] if j > 0 else b""
    if not 0 < len(s) <= 9 or not s.isdigit():
        return -1
    return int(s)


def _is_ok(b):
    """Whether frame line ``b`` (bytes) is an ``ok`` reply: its op field, the token after seq
    and addr (an error's reason text may say " ok ")."""
    i = b.find(b"@1 ")
    if i < 0:
        return False
    j = b.find(b" ", i + 3)  # after seq
    k = b.find(b" ", j + 1) if j > 0 else -1  # after addr
    return k > 0 and b[k + 1 : k + 4] == b"ok "


class Quiet:
    """Which replies a bus node keeps off the line. ``hear`` every received line, then ask
    ``speaks`` of every line the node would send."""

    def __init__(self):
        self._seqs = [-1] * _RING
        self._i = 0
        self.kept = 0  # ok replies kept off the bus

    def hear(self, line):
        # the mark is the character before the frame's "@" (noise may precede it)
        at = line.find("@" if isinstance(line, str) else b"@")
        if at > 0 and line[at - 1 : at] == (QUIET if isinstance(line, str) else b"~"):
            s = seq_of(line)
            if s > 0 and s not in self._seqs:
                self._seqs[self._i] = s
                self._i = (self._i + 1) % _RING

    def speaks(self, line):
        b = line.encode() if isinstance(line, str) else line
        if not _is_ok(b) or seq_of(b) not in self._seqs:
            return True  # errors, events, replies to ordinary requests
        for key in _SPEAK:
            if b.find(key) >= 0:
                return True
        self.kept += 1
        return False


class BusLink:
    """A link (``lines()``, ``write(line)``, as hal/link.StdioLink) that is a bus drop:
    quiet replies are kept off the line and every write waits for the board's slot."""

    def __init__(self, link, slot=0, gap_us=20):
        self.link = link
        self.quiet = Quiet()
        self.hold_us = (slot + 1) * gap_us

    def lines(self):
        out = self.link.lines()
        for ln in out:
            self.quiet.hear(ln)
        return out

    def write(self, line):
        if not self.quiet.speaks(line):
            return
        idle = getattr(self.link, "idle_us", None)
        if idle is not None:  # a UART sees the line: carrier sense before driving it
            now = self.link.now_us
            t0 = now()
            while idle() < self.hold_us and ticks_diff(now(), t0) < _HOLD_MAX_US:
                pass
        self.link.write(line)


class UartLink:
    """The board's UART on an RS-485 transceiver (SN65HVD75, MAX3485): ``de`` drives the driver
    enable (and, tied, the receiver's /RE), high only while this board transmits."""

    def __init__(self, uart, de, ticks_us, max_line=2048):
        self._u = uart
        self._de = de
        self._us = ticks_us
        self._de.value(0)
        self._buf = bytearray()
        self._ready = []  # complete lines not yet handed to the node
        self._max = max_line
        self._long = False
        self.dropped = 0  # over-long lines discarded
        self._last = ticks_us()  # when the line was last seen busy

    def _pump(self):
        while True:  # everything the receive FIFO holds
            n = self._u.any()
            if not n:
                return
            self._take(self._u.read(n) or b"")

    def _take(self, data):
        self._last = self._us()
        for c in data:
            if c == 10:
                if self._long:
                    self.dropped += 1
                else:
                    self._ready.append(bytes(self._buf))
                self._buf = bytearray()
                self._long = False
            elif c == 13:
                continue
            elif len(self._buf) < self._max:
                self._buf.append(c)
            else:
                self._long = True

    def lines(self):
        self._pump()
        out = self._ready
        self._ready = []
        return out

    def now_us(self):
        return self._us()

    def idle_us(self):
        """Microseconds since a byte was last seen on the line (stamped when the receive
        FIFO is read, so a board's poll latency adds to its slot gap)."""
        self._pump()
        return ticks_diff(self._us(), self._last)

    def write(self, line):
        self._de.value(1)
        self._u.write(line)
        self._u.write(b"\n")
        self._u.flush()  # MicroPython: returns while the last character is on the wire
        while not self._u.txdone():
            pass
        self._de.value(0)
        self._last = self._us()


def load(storage):
    """The board's bus settings (``bus.json``) or None for a board on its own port."""
    text = storage.read("bus.json")
    if text is None:
        return None
    cfg = json.loads(text.decode() if isinstance(text, bytes) else text)
    if not isinstance(cfg, dict):
        raise ValueError("bus.json: not an object")
    slot, gap = cfg.get("slot", 0), cfg.get("gap_us", 20)
    if type(slot) is not int or not 0 <= slot <= 4095:
        raise ValueError("bus.json: slot: not an int 0..4095")
    if type(gap) is not int or not 1 <= gap <= 10000:
        raise ValueError("bus.json: gap_us: not an int 1..10000")
    return cfg


def open_link(cfg, stdio):
    """The link a bus board talks on: its UART with the driver-enable pin when ``bus.json``
    names one (rp2, esp32), else ``stdio`` (the unix port on an emulated bus, whose pty is
    the board's drop and whose carrier sense the emulated bus models)."""
    if "uart" not in cfg:
        inner = stdio
    else:
        from time import ticks_us

        from machine import UART, Pin

        # rxbuf: 4 KB hold 40 ms of line at 1 Mbaud (a flash write or a long tick), where
        # the default 256 B would drop the end of a frame
        u = UART(cfg["uart"], baudrate=cfg.get("baud", 1000000), tx=Pin(cfg["tx"]),
                 rx=Pin(cfg["rx"]), timeout=0, rxbuf=4096)  # fmt: skip
        inner = UartLink(u, Pin(cfg["de"], Pin.OUT), ticks_us)
    return BusLink(inner, cfg.get("slot", 0), cfg.get("gap_us", 20))
