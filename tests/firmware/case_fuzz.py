"""Wire fuzz (issue 17 item 1): frames with a valid CRC for every op of the schema, whose
arguments are drawn from values at and beyond each field's bounds, of the wrong types, with
extra and non-ASCII keys, sent to one node interleaved with control ticks. Runs under CPython
and the real MicroPython interpreter (tests/test_firmware_micropython.py): handle_line never
raises and answers each request with at most one decodable line; afterwards the node still
answers, and its stiffness and optimiser state are finite. Deterministic (an LCG, the same
draws on both interpreters)."""

import fw_fixtures as fx

from insitu_node.node import emulated
from insitu_node.protocol import codec
from insitu_node.protocol.messages import BOOL, ENUM, FLOAT, FLOATS, INT, REQUIRED, SCHEMA

_INF = float("inf")


class _Lcg:
    def __init__(self, seed):
        self.s = seed

    def next(self, n):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.s >> 8) % n

    def pick(self, seq):
        return seq[self.next(len(seq))]


def _values(spec, r):
    kind, lo, hi = spec[0], spec[1], spec[2]
    wrong = ["x", None, [], {}, True, "\u00e9", 2**40, -(2**62), 1e300, -1e300, 1e-300]
    if kind == INT:
        ok = [lo, hi, (lo + hi) // 2, lo + 1]
        wrong += [lo - 1, hi + 1]
    elif kind == FLOAT:
        ok = [lo, hi, 0.5 * (lo + hi), lo + 1e-9 * (hi - lo)]
        wrong += [hi * 10.0 + 1.0, -3e38]
    elif kind == BOOL:
        ok = [True, False, 0, 1]
        wrong += [2]
    elif kind == ENUM:
        ok = list(lo)
        wrong += ["", "adam\u00e9", "A" * 300]
    elif kind == FLOATS:
        ok = [[0.5] * lo, [0.25] * hi]
        wrong += [[1e300] * max(lo, 1), [0.5] * (hi + 1), [], ["a"], [[1.0]]]
    else:
        ok = [0]
    return r.pick(wrong if r.next(8) == 0 else ok)


def _args(op, r):
    a = {}
    for key, spec in SCHEMA[op].items():
        if spec[3] == REQUIRED or r.next(10) < 5:
            a[key] = _values(spec, r)
    if r.next(10) == 0:
        a[r.pick(["zz", "\u00e9", "k" * 70, ""])] = r.pick([1, "x", [1, 2], None])
    return a


def _finite(x):
    if type(x) is float:
        return x == x and x not in (_INF, -_INF)
    if type(x) in (list, tuple):
        return all(_finite(v) for v in x)
    if type(x) is dict:
        return all(_finite(v) for v in x.values())
    return True


def test_fuzzed_frames_never_stop_the_node():
    bus = fx.Bus()
    node = emulated(fx.config(3), bus)
    h = fx.Host(node)
    r = _Lcg(2026)
    ops = sorted(SCHEMA) + ["nope", "state2"]
    t = 0
    replies = 0
    for i in range(700):
        op = r.pick(ops)
        args = _args(op, r) if op in SCHEMA else {"a": 1}
        try:
            line = h.frame(op, args)
        except Exception:  # the host's own codec refuses to write it (not ASCII, too long)
            continue
        out = node.handle_line(line)
        assert len(out) <= 1, (op, args, out)
        for x in out:
            f = codec.decode(x)
            assert f.op in ("ok", "err"), (op, args, x)
            replies += 1
        if i % 25 == 24:  # let measurements and checks finish or time out
            t, _ = h.run(t, 300)
    assert replies > 300  # most frames were answered (the rest deferred or not encodable)
    h.call("release")
    h.call("force", {"off": True})
    t, _ = h.run(t, 130000)  # the longest check allowed (2 min) has ended
    assert h.one("ping").op == "ok"
    st = h.one("state")
    assert st.op == "ok" and _finite(st.args), st.args
    assert _finite(list(node.k)) and _finite(list(node.kb))
