"""The bus drop (hal/bus.py) around the real node core: quiet requests, slots, the UART."""

import fw_fixtures as fx

from insitu_node.hal import bus as hbus
from insitu_node.hal.storage import MemStorage
from insitu_node.node import emulated
from insitu_node.protocol import codec


class Lines:
    """A link that records what the bus drop lets out (the node side of a pty)."""

    def __init__(self):
        self.inbox = []
        self.out = []

    def lines(self):
        got = self.inbox
        self.inbox = []
        return got

    def write(self, line):
        self.out.append(line)


def _drop(disp=1, slot=0):
    node = emulated(fx.config(2, disp=disp), fx.Bus())
    link = Lines()
    return node, link, hbus.BusLink(link, slot=slot)


def _exchange(node, drop, line):
    drop.link.inbox.append(line.encode())
    for ln in drop.lines():
        for reply in node.handle_line(ln):
            drop.write(reply)


def _run(node, drop, t, ms):
    from insitu_node.compat import ticks_add

    for _ in range(ms // node.period_ms):
        t = ticks_add(t, node.period_ms)
        for line in node.step(t):
            drop.write(line)
    return t


def test_seq_of():
    assert hbus.seq_of("~@1 42 * ping {} *00000000") == 42
    assert hbus.seq_of(b"@1 7 n1 ok {} *00000000") == 7
    assert hbus.seq_of("@1 x n1 ok") == -1 and hbus.seq_of("no frame") == -1
    assert hbus.seq_of("@1 0123456789 * ping") == -1


def test_quiet_ok_kept_off_the_bus_errors_and_plain_requests_not():
    node, link, drop = _drop(disp=0)
    _exchange(node, drop, "~" + codec.encode(5, "*", "reset", {}))
    assert link.out == [] and drop.quiet.kept == 1
    _exchange(node, drop, codec.encode(6, "*", "reset", {}))  # not marked: acknowledged
    assert len(link.out) == 1 and codec.decode(link.out[0]).op == "ok"
    _exchange(node, drop, "~" + codec.encode(7, "*", "update", {"rule": "adjoint", "lr": 1.0}))
    f = codec.decode(link.out[-1])  # nothing accumulated: the error goes out
    assert f.op == "err" and f.seq == 7 and f.args["field"] == "rule"


def test_quiet_measure_reply_only_from_a_board_with_something_to_say():
    for disp, expect in ((0, 0), (1, 1)):
        node, link, drop = _drop(disp=disp)
        t = node.now
        _exchange(node, drop, "~" + codec.encode(9, "*", "measure", {"phase": "forward"}))
        assert link.out == []  # deferred
        _run(node, drop, t, 300)
        assert len(link.out) == expect, link.out
        if expect:
            f = codec.decode(link.out[0])
            assert f.seq == 9 and "u" in f.args
    node, link, drop = _drop(disp=0)  # elongations asked for: every board speaks
    t = node.now
    _exchange(node, drop, "~" + codec.encode(10, "*", "measure", {"phase": "forward", "v": True}))
    _run(node, drop, t, 300)
    assert len(link.out) == 1 and "e" in codec.decode(link.out[0]).args


def test_quiet_ping_answered_only_while_busy():
    node, link, drop = _drop(disp=0)
    _exchange(node, drop, "~" + codec.encode(11, "*", "ping", {}))
    assert link.out == []
    _exchange(node, drop, codec.encode(12, "*", "measure", {"phase": "forward",
                                                            "settle_ms": 500}))  # fmt: skip
    _exchange(node, drop, "~" + codec.encode(13, "*", "ping", {}))
    f = codec.decode(link.out[-1])
    assert f.seq == 13 and f.args["busy"] is True


def test_retry_of_a_quiet_request_stays_quiet_and_is_not_applied_twice():
    node, link, drop = _drop(disp=0)
    line = "~" + codec.encode(20, "*", "set", {"k": [150.0, 150.0]})
    _exchange(node, drop, line)
    _exchange(node, drop, line)
    assert link.out == [] and drop.quiet.kept == 2


def test_only_an_ok_op_is_kept_quiet_not_a_reason_that_says_ok():
    q = hbus.Quiet()
    q.hear("~" + codec.encode(30, "*", "update", {"rule": "adjoint", "lr": 1.0}))
    assert not q.speaks(codec.reply_ok(30, "n1", {"count": 1}))
    assert q.speaks(codec.reply_err(30, "n1", "batch", "count ok but 2 tags"))
    assert q.speaks(codec.reply_ok(30, "n1", {"u": [0.0]}))
    assert q.speaks(codec.reply_ok(31, "n1", {}))  # not a quiet request


def test_events_always_go_out():
    node, link, drop = _drop()
    drop.write(codec.event(node.id, {"ev": "boot", "boots": 1}))
    assert len(link.out) == 1


class Uart:
    """A UART with its line: bytes the bus put in the receive FIFO, bytes this board sent."""

    def __init__(self):
        self.rx = bytearray()
        self.tx = bytearray()
        self.flushed = 0

    def any(self):
        return len(self.rx)

    def read(self, n):
        got = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return got

    def write(self, data):
        self.tx += data.encode() if isinstance(data, str) else data

    def flush(self):
        self.flushed += 1

    def txdone(self):
        return True


class DE:
    def __init__(self):
        self.levels = []

    def value(self, v):
        self.levels.append(v)


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        self.t += 5  # each look at the clock takes 5 us
        return self.t


def test_uart_link_lines_driver_enable_and_slot_wait():
    u, de, clock = Uart(), DE(), Clock()
    ul = hbus.UartLink(u, de, clock, max_line=40)
    assert de.levels == [0]
    u.rx += b"@1 1 * ping {} *0\r\n@1 2 * pi"
    assert ul.lines() == [b"@1 1 * ping {} *0"]
    u.rx += b"ng {} *0\n" + b"x" * 50 + b"\n"
    assert ul.lines() == [b"@1 2 * ping {} *0"] and ul.dropped == 1
    drop = hbus.BusLink(ul, slot=3, gap_us=20)
    u.rx += b"@1 3 n9 ok {} *0\n"  # another board's reply: the line was just busy
    before = clock.t
    drop.write("@1 0 n1 evt {} *0")
    assert clock.t - before >= 80  # waited (slot + 1) * gap of silence first
    assert u.tx == b"@1 0 n1 evt {} *0\n" and u.flushed == 1
    assert de.levels == [0, 1, 0]  # driver on only while sending
    assert ul.lines() == [b"@1 3 n9 ok {} *0"]  # heard while waiting, not lost


def test_load_checks_bus_json():
    st = MemStorage()
    assert hbus.load(st) is None
    st.write("bus.json", b'{"slot": 4, "gap_us": 30}')
    assert hbus.load(st)["slot"] == 4
    for bad in (b"[]", b'{"slot": -1}', b'{"slot": 1.5}', b'{"gap_us": 0}'):
        st.write("bus.json", bad)
        try:
            hbus.load(st)
        except ValueError as e:
            assert "bus.json" in str(e)
        else:
            raise AssertionError(bad)
