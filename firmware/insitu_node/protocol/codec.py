"""The one frame codec, used by the node firmware and by the host.

A frame is one ASCII line (see docs/protocol.md):

    @1 <seq> <addr> <op> <json-object> *<crc32, 8 lowercase hex digits>

The CRC covers every character before " *". Lines that are not frames (boot banner,
tracebacks, REPL noise) are not errors of the link: decode() reports them as NotFrame so a
reader can skip them and count real corruption separately.
"""

import json

from ..compat import const, crc32

VERSION = const(1)
MAX_LINE = const(2048)  # longest frame accepted; a node's largest reply (state) is ~1 KB
MAX_SEQ = const(999999999)  # fits a small int on 32-bit boards: no allocation on compare
BROADCAST = "*"
REPLY_OPS = ("ok", "err", "evt")  # ops a node sends; a node ignores frames carrying them

_PREFIX = "@1 "


class FrameError(ValueError):
    """A line that claims to be a frame but is not a valid one (corrupt, wrong version...)."""


class NotFrame(FrameError):
    """A line with no frame in it at all (banner, traceback, REPL echo)."""


class Frame:
    """A decoded frame. `crc` is the frame's own checksum (used as retry identity)."""

    def __init__(self, seq, addr, op, args, crc=0):
        self.seq = seq
        self.addr = addr
        self.op = op
        self.args = args
        self.crc = crc

    def __repr__(self):
        return f"Frame({self.seq}, {self.addr}, {self.op}, {self.args})"


def _token_ok(s, max_len):
    # node ids and op names: [A-Za-z0-9_.-], so a frame never needs quoting
    if not 0 < len(s) <= max_len:
        return False
    for c in s:
        if not (("a" <= c <= "z") or ("A" <= c <= "Z") or ("0" <= c <= "9") or c in "_.-"):
            return False
    return True


def valid_addr(addr):
    return addr == BROADCAST or _token_ok(addr, 16)


def valid_op(op):
    return _token_ok(op, 12)


def _dumps(args):
    s = json.dumps(args, separators=(",", ":"))
    for c in s:  # MicroPython's json writes non-ASCII raw; a frame must stay 7-bit
        if ord(c) > 126:
            raise FrameError("args: non-ASCII")
    return s


def encode(seq, addr, op, args=None):
    """Frame text (no line terminator) for a request or a reply."""
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise FrameError("seq: out of range")
    if not valid_addr(addr):
        raise FrameError("addr: bad token")
    if not valid_op(op):
        raise FrameError("op: bad token")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise FrameError("args: not an object")
    body = f"{_PREFIX}{seq} {addr} {op} {_dumps(args)}"
    return f"{body} *{crc32(body.encode()):08x}"


def reply_ok(seq, node, payload=None):
    return encode(seq, node, "ok", payload)


def reply_err(seq, node, field, reason):
    return encode(seq, node, "err", {"field": field, "reason": reason})


def event(node, payload):
    """Unsolicited frame (seq 0), e.g. the boot announcement."""
    return encode(0, node, "evt", payload)


def _hex8(s):
    # strict lowercase hex: an uppercase digit is a corruption, not the same value
    if len(s) != 8:
        return -1
    v = 0
    for c in s:
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif "a" <= c <= "f":
            d = ord(c) - 87
        else:
            return -1
        v = (v << 4) | d
    return v


def _seq(s):
    if not 0 < len(s) <= 9:
        return -1
    for c in s:
        if not "0" <= c <= "9":
            return -1
    if len(s) > 1 and s[0] == "0":
        return -1  # one spelling per number, so a frame has one CRC
    return int(s)


def addressed(line, addr):
    """False if `line` (str or bytes) is no frame for node `addr` nor a broadcast, judged from
    the address field alone: no CRC, no JSON, so a node on a shared bus drops other nodes'
    frames cheaply (allocating nothing unless a bytes line's address has addr's length).
    True: decode() decides."""
    text = isinstance(line, str)
    if text:
        pre, sp, star = "@1 ", " ", "*"
    else:  # bytes: a board's link
        pre, sp, star = b"@1 ", b" ", b"*"
    i = line.find(pre)  # decode() accepts a frame only at the first "@"; this finds it there
    if i < 0:
        return False
    i = line.find(sp, i + 3) + 1  # after seq
    j = line.find(sp, i) if i else -1
    if j - i == 1 and line.startswith(star, i):
        return True
    if j - i != len(addr):
        return False
    return line.startswith(addr if text else addr.encode(), i)


def decode(line):
    """Frame from a line (str or bytes). Raises NotFrame or FrameError."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except Exception:
            raise FrameError("not ASCII") from None
    start = line.find("@")
    if start < 0:
        raise NotFrame("no frame")
    line = line[start:]
    while line and line[-1] in "\r\n":  # boards print \r\n
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise FrameError("too long")
    if not line.startswith(_PREFIX):
        if len(line) > 1 and "0" <= line[1] <= "9":
            raise FrameError("version")
        raise NotFrame("no frame")
    for c in line:
        if not " " <= c <= "~":
            raise FrameError("not printable ASCII")
    body, sep, tail = line.rpartition(" *")
    if not sep:
        raise FrameError("no crc")
    crc = _hex8(tail)
    if crc < 0:
        raise FrameError("bad crc field")
    if crc32(body.encode()) != crc:
        raise FrameError("crc mismatch")
    parts = body.split(" ", 4)
    if len(parts) != 5:
        raise FrameError("fields")
    seq = _seq(parts[1])
    if seq < 0:
        raise FrameError("seq")
    addr, op = parts[2], parts[3]
    if not valid_addr(addr) or not valid_op(op):
        raise FrameError("addr/op")
    try:
        args = json.loads(parts[4])
    except Exception:  # ValueError, and recursion limits on deeply nested input
        raise FrameError("json") from None
    if not isinstance(args, dict):
        raise FrameError("args not an object")
    return Frame(seq, addr, op, args, crc)


def parse(line):
    """Frame or None: the forgiving form for readers that just skip what is not a frame."""
    try:
        return decode(line)
    except FrameError:
        return None
