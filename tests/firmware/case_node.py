import fw_fixtures as fx

from insitu_node import persist
from insitu_node.hal.storage import MemStorage
from insitu_node.node import emulated
from insitu_node.protocol import codec


def _setup(n=6, **kw):
    bus = fx.Bus()
    node = emulated(fx.config(n, **kw), bus)
    return bus, node, fx.Host(node)


def _snapshot(h):
    a = h.node.handle_line(codec.encode(999999, h.node.id, "state"))
    h.node._cache.pop()  # the probe itself must not count as traffic
    s = codec.decode(a[0]).args
    s.pop("safe")
    return s


def _measure(h, t, args, ms=300):
    assert h.call("measure", args) == []
    t, out = h.run(t, ms)
    assert len(out) == 1, out
    return t, out[0]


def test_identify():
    bus, node, h = _setup()
    a = h.one("identify").args
    assert a["id"] == "n1" and a["proto"] == 1 and a["persist"] == "new"
    assert len(a["cfg"]) == 8 and len(a["bonds"]) == 6 and a["disp"] == 1


def test_initial_stiffness_written_to_servos():
    bus, node, h = _setup(2)
    assert bus.last("stiffness", 0) == 1375  # 137.5 N/m on a 100..200 -> 1000..2000 us table


def test_deferred_measure_averages_after_settle():
    bus, node, h = _setup(2)
    t, _ = h.run(0, 50)
    bus.strain[0] = 999  # before settle: must not count
    assert h.call("measure", {"phase": "forward", "n": 3, "settle_ms": 30, "v": True}) == []
    t = fx_tick(node, t, 2)
    bus.strain[0] = 1000
    t, out = h.run(t, 200)
    assert out[0].op == "ok" and out[0].args["e"][0] == 1000 * fx.GAIN


def fx_tick(node, t, k):
    from insitu_node.compat import ticks_add

    for _ in range(k):
        t = ticks_add(t, node.period_ms)
        node.step(t)
    return t


def test_adjoint_rule_over_the_wire_exact():
    bus, node, h = _setup(3)
    fwd = ([1200, -300, 45], [-800, 2500, 10])
    adj = ([-40, 70, 900], [15, -33, -450])
    sigma = 0.125
    t = 0
    for s in range(2):
        bus.strain[:3] = fwd[s]
        t, r = _measure(h, t, {"phase": "forward", "tag": s, "n": 2})
        bus.strain[:3] = adj[s]
        t, r = _measure(h, t, {"phase": "adjoint", "tag": s, "n": 2, "scale": sigma})
        assert r.args["count"] == s + 1
    st = h.one("state").args
    for b in range(3):
        want = sum(sigma * fwd[s][b] * fx.GAIN * adj[s][b] * fx.GAIN for s in range(2))
        assert abs(st["g"][b] - want) <= 1e-9 * abs(want), (st["g"][b], want)
    k0 = st["k"]
    r = h.one("update", {"rule": "adjoint", "lr": 1e12, "batch": 2})
    assert r.op == "ok"
    k1 = h.one("state").args["k"]
    for b in range(3):
        want = sum(sigma * fwd[s][b] * adj[s][b] for s in range(2)) * fx.GAIN**2 / 2
        want = min(max(k0[b] - 1e12 * want, 103.125), 171.875)
        assert abs(k1[b] - want) <= 1e-9 * want


def test_errors_name_field_and_leave_state():
    bus, node, h = _setup(2)
    before = _snapshot(h)
    bad = (
        ("update", {"rule": "adjoint", "lr": 1.0}, "rule"),  # nothing accumulated
        ("update", {"rule": "adjoint", "lr": -1.0}, "lr"),
        ("measure", {"phase": "adjoint", "tag": 9}, "tag"),
        ("measure", {"phase": "forward", "n": 1000}, "n"),
        ("set", {"k": [140.0, 500.0]}, "k[1]"),
        ("set", {"k": [140.0]}, "k"),
        ("force", {"axis": 3, "f": 0.1}, "axis"),
        ("force", {"axis": 0, "f": 0.9}, "f"),
        ("clamp", {"axis": 0}, "u"),
        ("configure", {"gain": 1e-6}, "slot"),
        ("configure", {"tare": True}, "tare"),
        ("update", {"rule": "spsa", "lr": 1.0}, "rule"),
        ("launch", {}, "op"),
        ("ping", {"now": 1}, "now"),
    )
    for op, args, field in bad:
        r = h.one(op, args)
        assert r.op == "err" and r.args["field"] == field, (op, r.args)
    assert _snapshot(h) == before


def test_retry_same_reply_not_applied_twice():
    bus, node, h = _setup(1)
    t, _ = _measure(h, 0, {"phase": "forward", "tag": 1})
    bus.strain[0] = 5000
    t, _ = _measure(h, t, {"phase": "adjoint", "tag": 1})
    line = h.frame("update", {"rule": "adjoint", "lr": 1e12})
    r1 = node.handle_line(line)
    r2 = node.handle_line(line)
    assert r1 == r2 and codec.decode(r1[0]).op == "ok"
    # a retried measure neither restarts nor duplicates: one deferred reply, cached after
    line = h.frame("measure", {"phase": "forward", "tag": 2})
    assert node.handle_line(line) == [] and node.handle_line(line) == []
    t, out = h.run(t, 100)
    assert len(out) == 1
    assert node.handle_line(line) == [codec.encode(out[0].seq, "n1", "ok", out[0].args)]


def test_addressing():
    bus, node, h = _setup(1)
    assert h.call("ping", addr="n2") == []
    assert h.call("ping", addr="*")[0].addr == "n1"
    assert node.handle_line(codec.reply_ok(5, "n1", {})) == []


def _framed(body):
    return f"{body} *{codec.crc32(body.encode()):08x}"


def test_other_nodes_frames_dropped_before_decoding():
    bus, node, h = _setup(1)
    calls = []
    decode = codec.decode

    def counting(line):
        calls.append(line)
        return decode(line)

    codec.decode = counting
    last = node._last_host
    try:
        bad = _framed("@1 7 n2 update {not json")  # valid CRC, payload no decoder accepts
        for line in (bad, bad.encode(), h.frame("update", {"lr": "x"}, addr="n2"), "junk", None):
            assert node.handle_line(line) == [] and calls == [], line
        assert node._last_host == last and node._cache == []  # not host traffic for n1
        mine = _framed("@1 7 n1 update {not json")
        assert node.handle_line(mine) == [] and calls == [mine]  # decoded, rejected, silent
        for addr in ("*", "n1"):
            for line in (h.frame("ping", addr=addr), h.frame("ping", addr=addr).encode()):
                r = node.handle_line(line)
                assert len(r) == 1 and decode(r[0]).op == "ok" and decode(r[0]).addr == "n1"
        assert len(calls) == 5
    finally:
        codec.decode = decode


def test_busy_and_timeout():
    bus = fx.Bus(ready=True)
    node = emulated(fx.config(2), bus)
    h = fx.Host(node)
    bus.ready_map[1] = 0  # slot 1 never has a sample
    assert h.call("measure", {"phase": "forward", "n": 2, "timeout_ms": 100}) == []
    assert h.one("measure", {"phase": "forward"}).args["reason"].startswith("busy")
    t, out = h.run(0, 300)
    assert out[0].op == "err" and out[0].args["field"] == "sensor" and "1" in out[0].args["reason"]
    assert h.one("state").args["health"][1] == "none"


def test_safe_state_on_host_silence():
    bus, node, h = _setup(1)
    h.one("force", {"axis": 0, "f": 0.1})
    h.one("clamp", {"axis": 0, "u": 1e-3})
    assert bus.last("force", 0) == 100 and bus.last("clamp", 0) == 1000
    t, _ = h.run(0, 4000)
    assert not node.safe
    t, _ = h.run(t, 1100)
    assert node.safe and bus.last("force", 0) == 0 and bus.last("release", 0) == 0
    assert bus.last("stiffness", 0) == 1375  # stiffness held
    assert h.one("ping").args["safe"] is False  # host is back


def test_set_and_perturb_spsa():
    bus, node, h = _setup(2)
    assert h.one("set", {"k": [150.0], "slot": 1}).args["k"] == [137.5, 150.0]
    assert bus.last("stiffness", 1) == 1500
    from insitu_node.learning import spsa

    d = [spsa.sign(77, 1, 2), spsa.sign(77, 2, 3)]
    h.one("perturb", {"seed": 77, "c": 1.0, "sign": 1})
    assert h.one("state").args["k"] == [137.5 + d[0], 150.0 + d[1]]
    h.one("perturb", {"seed": 77, "c": 1.0, "sign": -1})
    r = h.one("update", {"rule": "spsa", "lr": 2.0, "lp": 3.0, "lm": 1.0})
    assert r.op == "ok"
    k = h.one("state").args["k"]
    assert k == [137.5 - 2.0 * d[0], 150.0 - 2.0 * d[1]], (k, d)


def test_coupled_rule():
    bus, node, h = _setup(1)
    bus.strain[0] = 2000
    t, _ = _measure(h, 0, {"phase": "free", "tag": 4})
    bus.strain[0] = 3000
    t, r = _measure(h, t, {"phase": "clamped", "tag": 4, "eta": 0.5})
    g = h.one("state").args["g"][0]
    want = 0.5 * ((3000 * fx.GAIN) ** 2 - (2000 * fx.GAIN) ** 2) / 0.5
    assert abs(g - want) <= 1e-9 * abs(want)
    assert h.one("update", {"rule": "adjoint", "lr": 1.0}).args["field"] == "rule"
    assert h.one("update", {"rule": "coupled", "lr": 1.0}).op == "ok"


def test_save_restore_and_fallback():
    st = MemStorage()
    bus = fx.Bus()
    node = emulated(fx.config(2), bus, storage=st)
    h = fx.Host(node)
    h.one("set", {"k": [120.0, 160.0]})
    h.one("configure", {"slot": 0, "gain": 2e-9})
    assert h.one("save").op == "ok"
    n2 = emulated(fx.config(2), bus, storage=st, boots=2)
    assert fx.Host(n2).one("identify").args["persist"] == "ok"
    assert list(n2.k) == [120.0, 160.0] and n2.gain[0] == 2e-9
    st.files[persist.MAIN] = b"0000"
    n3 = emulated(fx.config(2), bus, storage=st)
    assert n3.persist_status == "defaults" and list(n3.k) == [137.5, 137.5]
    n4 = emulated(fx.config(3), bus, storage=st)
    assert n4.persist_status in ("defaults", "mismatch")


def test_garbage_never_replies_or_changes_state():
    bus, node, h = _setup(2)
    before = _snapshot(h)
    for junk in ("", "\x03\x03", ">>> import os", "@1 1 n1 set {} *00000000",
                 "@@@@", "\xff\xfe", "@1 " + "9" * 5000):
        assert node.handle_line(junk) == []
        assert node.handle_line(junk.encode()) == []
    assert _snapshot(h) == before


def test_a_field_name_the_node_cannot_echo_still_gets_one_reply():
    """A valid frame whose args carry a non-ASCII key: MicroPython's json writes the key back
    unescaped, which the codec refuses, so the error reply used to raise out of handle_line
    and stop the node's command task. Now: one err reply, and the node goes on."""
    from insitu_node.compat import crc32

    bus, node, h = _setup(2)
    body = '@1 7 n1 perturb {"sign":1,"c":0.5,"\\u00e9":63}'
    line = f"{body} *{crc32(body.encode()):08x}"
    out = node.handle_line(line)
    assert len(out) == 1
    r = codec.decode(out[0])
    assert r.op == "err" and r.seq == 7 and r.args["field"] in ("args", "\u00e9"), r.args
    assert h.one("ping").op == "ok"  # still answering


def test_reset_aborts_a_long_check_or_measurement():
    """A check asking for the schema's longest waits kept a node busy for 20 minutes,
    refusing everything but `force off` and `release`. The waits are bounded (2 min) and
    `reset` aborts what is in hand: its request gets an err reply, the element its k back."""
    bus, node, h = _setup(2)
    r = h.one("check", {"slot": 0, "settle_ms": 600000})
    assert r.op == "err" and r.args["field"] == "settle_ms"
    assert h.call("check", {"slot": 0, "settle_ms": 120000, "timeout_ms": 120000}) == []
    t, _ = h.run(0, 100)
    assert node.busy
    assert [x.op for x in h.call("reset")] == ["ok"]
    t, out = h.run(t, 20)
    assert [(x.op, x.args["reason"]) for x in out] == [("err", "aborted by reset")]
    assert not node.busy
    # aborted in its second half, at the probe stiffness: the element goes back
    assert h.call("check", {"slot": 0, "settle_ms": 300}) == []
    t, _ = h.run(t, 450)
    assert node.busy and node.k[0] != node.kb[0]
    assert [x.op for x in h.call("reset")] == ["ok"]
    t, out = h.run(t, 20)
    assert [x.args["reason"] for x in out] == ["aborted by reset"]
    assert not node.busy and node.k[0] == node.kb[0]
    t, r = _measure(h, t, {"phase": "forward", "n": 1})
    assert r.op == "ok"


def _settle_run(node, bus, h, calm, settle_ms, approach):
    """Send a measure and tick every 10 ms, strain 0 and 1 following ``approach(ms since
    the load)``; (ms from the request to the reply, the reply)."""
    from insitu_node.compat import ticks_add

    t, _ = h.run(0, 50)
    args = {"phase": "forward", "n": 2, "settle_ms": settle_ms, "v": True}
    if calm:
        args["calm"] = calm
    assert h.call("measure", args) == []
    for ms in range(10, 20000, 10):
        bus.strain[0] = approach(ms)
        bus.strain[1] = -approach(ms) // 2
        t = ticks_add(t, 10)
        out = node.step(t)
        if out:
            return ms, codec.decode(out[0])
    return None, None


def test_settle_until_still_starts_sampling_when_the_approach_has_slowed():
    """calm=5: sampling starts once both gauges' 200 ms window means move by <= 5 counts
    (an approach halving every 50 ms: ~1.2 s), long before the 5 s cap; the reading is the
    settled value. Without calm the node waits the whole settle_ms."""

    def approach(ms):
        return 100000 - (100000 >> min(ms // 50, 40))

    bus, node, h = _setup(2)
    ms, r = _settle_run(node, bus, h, 5, 5000, approach)
    assert r.op == "ok" and 600 <= ms <= 2000, ms
    assert abs(r.args["e"][0] / fx.GAIN - 100000) <= 5
    bus, node, h = _setup(2)
    ms, r = _settle_run(node, bus, h, 0, 5000, approach)
    assert r.op == "ok" and ms >= 5000


def test_settle_until_still_is_capped_by_settle_ms():
    """A gauge that keeps moving (a ramp) never looks still: sampling starts at settle_ms."""
    bus, node, h = _setup(2)
    ms, r = _settle_run(node, bus, h, 5, 1500, lambda ms: 40 * ms)
    assert r.op == "ok" and 1500 <= ms <= 1600, ms


def test_settle_until_still_never_calls_windows_without_samples_still():
    """A window in which no word arrived (a 10 SPS part, or the HX711 check dropping every
    word of a fast transient) cannot show the approach has slowed: two empty windows are not
    calm. Here the gauges give no word for 1 s, then a constant one: sampling starts only
    after two 200 ms windows of words (it started at once before, on 'no change')."""
    from insitu_node.compat import ticks_add

    bus = fx.Bus(ready=True)
    node = emulated(fx.config(2), bus)
    h = fx.Host(node)
    t, _ = h.run(0, 50)
    args = {"phase": "forward", "n": 2, "settle_ms": 5000, "calm": 5, "v": True}
    assert h.call("measure", args) == []
    for ms in range(10, 6000, 10):
        quiet = ms <= 1000
        for s in (0, 1):
            bus.ready_map[s] = 0 if quiet else 1
            bus.strain[s] = 50000
        t = ticks_add(t, 10)
        out = node.step(t)
        if out:
            break
    r = codec.decode(out[0])
    assert r.op == "ok" and 1400 <= ms <= 1700, ms
