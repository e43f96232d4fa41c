"""Property tests (hypothesis) of the codec and of the node's robustness to hostile input."""

import json
import os
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "firmware"))

import fw_fixtures as fx  # noqa: E402

from insitu_node.node import emulated  # noqa: E402
from insitu_node.protocol import codec  # noqa: E402

TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", min_size=1,
                max_size=16)
OP = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)
JSONV = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
ARGS = st.dictionaries(st.text(max_size=8), JSONV, max_size=5)
SEQ = st.integers(0, codec.MAX_SEQ)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(SEQ, TOKEN | st.just("*"), OP, ARGS)
def test_round_trip(seq, addr, op, args):
    line = codec.encode(seq, addr, op, args)
    assert line.isascii() and "\n" not in line
    f = codec.decode(line)
    assert (f.seq, f.addr, f.op) == (seq, addr, op)
    assert json.dumps(f.args, sort_keys=True) == json.dumps(args, sort_keys=True)


@FAST
@given(SEQ, TOKEN, OP, ARGS, st.data())
def test_any_single_corruption_rejected(seq, addr, op, args, data):
    raw = codec.encode(seq, addr, op, args).encode()
    i = data.draw(st.integers(0, len(raw) - 1))
    kind = data.draw(st.sampled_from(["flip", "trunc", "drop", "insert"]))
    if kind == "flip":
        bad = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]
    elif kind == "trunc":
        bad = raw[:i]
    elif kind == "drop":
        bad = raw[:i] + raw[i + 1 :]
    else:
        bad = raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i:]
    if bad.rstrip(b"\r\n") == raw or bad.endswith(raw):
        return  # a line terminator after, or noise before, an intact frame: not corruption
    assert codec.parse(bad) is None, (raw, bad)


def _state(node):
    return (list(node.k), list(node.kb), list(node.acc.g), node.acc.count, list(node.acc.tags),
            node.opt.t, list(node.opt.m), node._mstate, node.timeout_ms, list(node.off),
            list(node.gain), node._spsa, len(node._cache), list(node.e))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300) | st.text(max_size=300), max_size=8))
def test_garbage_never_crashes_or_changes_state(lines):
    bus = fx.Bus()
    node = emulated(fx.config(3), bus)
    before = _state(node)
    for ln in lines:
        assert node.handle_line(ln) == []
    node.step(10)
    assert _state(node) == before


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(codec_ops := __import__(
    "insitu_node.protocol.messages", fromlist=["SCHEMA"]).SCHEMA)), ARGS)
def test_bad_args_give_err_and_keep_state(op, args):
    """Random (mostly invalid) arguments: an ok or an err naming a field, never a crash."""
    node = emulated(fx.config(3), fx.Bus())
    before = _state(node)
    line = codec.encode(1, "n1", op, args)
    r = node.handle_line(line)
    if len(line) > codec.MAX_LINE:  # too long to be a frame: no reply, nothing changes
        assert r == [] and _state(node) == before
        return
    if op in ("measure", "check") and r == []:
        return  # accepted and deferred
    f = codec.decode(r[0])
    assert f.op in ("ok", "err")
    if f.op == "err":
        assert not f.args["reason"].startswith("internal"), f.args  # no firmware bug hit
        s = _state(node)
        assert s[:-3] == before[:-3]  # everything but the reply cache is unchanged
