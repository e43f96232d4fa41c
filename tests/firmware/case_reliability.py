"""Fault tolerance of the node (docs/reliability.md): sensor faults found, reported and frozen;
checkpoints saved and loaded by step; a power cut at every write step of a save.

Plain Python: runs under CPython (pytest) and MicroPython (fw_runner.py).
"""

import fw_fixtures as fx

from insitu_node import persist
from insitu_node.hal.storage import MemStorage
from insitu_node.health import STUCK_N
from insitu_node.node import emulated
from insitu_node.protocol import codec


class VaryBus(fx.Bus):
    """fx.Bus whose strain slots (and displacement axis) move a little with every read: live,
    loaded sensors."""

    def __init__(self, jitter=3, ready=False):
        fx.Bus.__init__(self, ready)
        self.i = 0
        self.jitter = [jitter] * 16

    def read(self, device, channel):
        v = fx.Bus.read(self, device, channel)
        if device in ("strain", "disp"):
            self.i += 1
            j = self.jitter[channel] if device == "strain" else 3
            v += (self.i * 7919) % (2 * j + 1) - j
        return v


def _node(n=2, bus=None, storage=None, boots=1):
    bus = bus or VaryBus()
    node = emulated(fx.config(n), bus, storage=storage, boots=boots)
    return bus, node, fx.Host(node)


def _measure(h, t, args):
    assert h.call("measure", args) == []
    t, out = h.run(t, 400)
    return t, [f for f in out if f.op != "evt"], [f.args for f in out if f.op == "evt"]


def _train_pair(h, t, tag, fwd, adj, bus):
    bus.strain[0], bus.strain[1] = fwd
    t, r, ev1 = _measure(h, t, {"phase": "forward", "tag": tag, "n": 2})
    bus.strain[0], bus.strain[1] = adj
    t, r2, ev2 = _measure(h, t, {"phase": "adjoint", "tag": tag, "n": 2})
    return t, r + r2, ev1 + ev2


def test_stuck_sensor_found_reported_and_frozen():
    bus, node, h = _node()
    bus.jitter[1] = 0  # slot 1 reads one value whatever the load
    t, events, replies = 0, [], []
    for s in range(STUCK_N // 2 + 1):
        t, r, ev = _train_pair(h, t, s, (1000 + s, 5000), (-300 - s, 5000), bus)
        replies += r
        events += ev
    assert [e["kind"] for e in events] == ["stuck"] and events[0]["bond"] == [2, 3]
    assert events[0]["ev"] == "fault" and events[0]["ch"] == 1
    assert replies[-1].args["bad"] == [1]
    st = h.one("state").args
    assert st["faults"] == ["ok", "stuck", "ok"]
    k0 = st["k"]
    r = h.one("update", {"rule": "adjoint", "lr": 1e12, "opt": "adam"})
    assert r.args["held"] == [1] and r.args["boots"] == 1
    st = h.one("state").args
    assert st["k"][1] == k0[1] and st["opt"]["m"][1] == 0.0 and st["k"][0] != k0[0]
    assert h.one("state", {"only": "faults"}).args == {"faults": ["ok", "stuck", "ok"]}
    h.one("reset", {"faults": True})
    assert h.one("state", {"only": "faults"}).args["faults"] == ["ok", "ok", "ok"]


def test_a_noiseless_unstrained_gauge_is_not_stuck_but_a_frozen_reading_is():
    """Ideal emulated gauges (float counts) have no noise: a bond between two fixed nodes reads
    exactly its offset under every load and is not "stuck"; one frozen anywhere else is."""
    cfg = fx.config(3)
    for b in cfg["bonds"]:
        b["sensor"]["float"] = True
        b["cal"]["offset"] = 5
    bus = fx.Bus()
    node = emulated(cfg, bus)
    h = fx.Host(node)
    t, events = 0, []
    for s in range(3 * STUCK_N):
        bus.strain[0] = 5.0  # unstrained: exactly the offset, whatever the load
        bus.strain[1] = 1234.25  # frozen away from the offset: a stuck sensor
        bus.strain[2] = 100.0 + s  # loaded and moving
        t, r, ev = _measure(h, t, {"phase": "forward", "tag": 1 + s % 4})
        events += ev
    assert [(e["kind"], e["ch"]) for e in events] == [("stuck", 1)]


def test_live_sensors_never_flagged():
    bus, node, h = _node()
    t, events = 0, []
    for s in range(3 * STUCK_N):
        t, r, ev = _train_pair(h, t, s % 4, (1000, 5000), (-300, 2000), bus)
        events += ev
        assert all(f.op == "ok" and "bad" not in f.args for f in r)
    assert events == []


def test_saturated_and_noisy_sensors():
    bus, node, h = _node()
    bus.strain[0], bus.jitter[0] = 8388607, 0  # on the rail, as an HX711 reads it
    t, r, ev = _measure(h, 0, {"phase": "forward", "tag": 1, "n": 2})
    assert [e["kind"] for e in ev] == ["sat"] and r[0].args["bad"] == [0]
    bus2, node2, h2 = _node(bus=VaryBus(jitter=50000))
    t, r, ev = _measure(h2, 0, {"phase": "forward", "tag": 1, "n": 4})
    assert sorted(e["kind"] for e in ev) == ["noisy", "noisy"]
    bus3, node3, h3 = _node(bus=VaryBus(jitter=50000))
    h3.one("configure", {"noise": 0})  # the check off
    t, r, ev = _measure(h3, 0, {"phase": "forward", "tag": 1, "n": 4})
    assert ev == [] and "bad" not in r[0].args


def test_dead_sensor_latched_then_skipped():
    bus, node, h = _node(bus=VaryBus(ready=True))
    bus.ready_map[1] = 0  # slot 1: DOUT never low
    t, r, ev = _measure(h, 0, {"phase": "forward", "tag": 1, "n": 2, "timeout_ms": 100})
    assert r[0].op == "err" and r[0].args["field"] == "sensor"
    assert ev == [{"ev": "fault", "kind": "dead", "ch": 1, "bond": [2, 3]}]
    t, r, ev = _measure(h, t, {"phase": "forward", "tag": 1, "n": 2, "v": True})
    assert r[0].op == "ok" and r[0].args["bad"] == [1] and r[0].args["e"][1] == 0.0
    assert ev == []


def test_save_load_by_step():
    st = MemStorage()
    bus, node, h = _node(storage=st)
    assert h.one("identify").args["step"] is None
    h.one("set", {"k": [120.0, 160.0]})
    assert h.one("save", {"step": 1}).args["boots"] == 1
    h.one("set", {"k": [130.0, 150.0]})
    h.one("save", {"step": 2})
    h.one("configure", {"slot": 0, "gain": 2e-9})  # a re-tare/calibration, k unchanged
    h.one("save", {"step": 2})  # the same checkpoint again: backup keeps step 1
    assert persist.unpack(st.files[persist.BACKUP])["step"] == 1
    r = h.one("load", {"step": 1})
    assert r.op == "ok" and list(node.k) == [120.0, 160.0] and r.args["step"] == 1
    assert h.one("load", {"step": 7}).args["field"] == "step"
    assert h.one("load", {"step": 2}).op == "ok" and list(node.k) == [130.0, 150.0]
    assert node.gain[0] == 2e-9
    # a node that rebooted into checkpoint 2 and then gets the host's `save step=3` (meant for
    # the state it lost) refuses: its flash must never call checkpoint 2's state checkpoint 3
    r = h.one("save", {"step": 3})
    assert r.op == "err" and r.args["field"] == "step" and node.ckpt == 2
    assert h.one("load", {"step": 3}).op == "err"
    h.one("set", {"k": [131.0, 151.0]})  # changed: a save without a step is no checkpoint
    h.one("save")
    _, n2, h2 = _node(storage=st, boots=2)
    assert h2.one("identify").args["step"] is None and list(n2.k) == [131.0, 151.0]
    assert h2.one("load", {"step": 2}).op == "ok"  # now the backup


class CutStorage(MemStorage):
    """Flash that loses power after `budget` units: a byte written or a rename is one unit. A
    write cut short leaves the bytes it got through, as a torn page would."""

    def __init__(self, files, budget):
        MemStorage.__init__(self)
        self.files = dict(files)
        self.budget = budget

    def write(self, name, data):
        if self.budget < len(data):
            self.files[name] = bytes(data[: max(0, self.budget)])
            self.budget = -1
            raise OSError(5)
        self.budget -= len(data)
        MemStorage.write(self, name, data)

    def rename(self, a, b):
        if self.budget < 1:
            self.budget = -1
            raise OSError(5)
        self.budget -= 1
        MemStorage.rename(self, a, b)


def test_power_cut_at_every_write_step_of_a_save():
    """Two checkpoints on flash, then a third save cut at every byte and rename: the node
    always boots with one of the last two checkpoints intact, never a corrupt state."""
    st = MemStorage()
    bus, node, h = _node(storage=st)
    h.one("set", {"k": [120.0, 160.0]})
    h.one("save", {"step": 1})
    h.one("set", {"k": [130.0, 150.0]})
    h.one("save", {"step": 2})
    base = dict(st.files)
    h.one("set", {"k": [140.0, 145.0]})
    total = len(persist.pack(node._record())) + 2 + 40  # bytes + renames, with room to spare
    seen = {}
    for budget in range(total):
        cut = CutStorage(base, budget)
        n = emulated(fx.config(2), VaryBus(), storage=cut, boots=2)
        hn = fx.Host(n)
        hn.one("set", {"k": [140.0, 145.0]})  # booted into checkpoint 2, then learned
        ok = hn.one("save", {"step": 3}).op == "ok"
        fresh = emulated(fx.config(2), VaryBus(), storage=MemStorage(), boots=3)
        fresh.hal.storage.files = dict(cut.files)
        fresh._restore()
        got = (fresh.ckpt, list(fresh.kb), fresh.persist_status)
        assert got[:2] in ((2, [130.0, 150.0]), (3, [140.0, 145.0])), (budget, got)
        assert fresh.persist_status in ("ok", "backup")
        if ok:
            assert got[0] == 3
        seen[got[0]] = seen.get(got[0], 0) + 1
        # the host can always roll every board back to checkpoint 2
        r = fx.Host(fresh).one("load", {"step": 2})
        assert r.op == "ok" and list(fresh.kb) == [130.0, 150.0], (budget, r.args)
    assert seen.get(2) and seen.get(3)


def test_rejected_frames_leave_state():
    bus, node, h = _node()
    before = node.handle_line(codec.encode(999998, "n1", "state"))
    node._cache.pop()
    for op, args in (
        ("load", {}),
        ("load", {"step": -1}),
        ("save", {"step": 1.5}),
        ("state", {"only": "nope"}),
        ("configure", {"noise": -1}),
        ("reset", {"faults": 1}),
    ):
        r = h.one(op, args)
        assert r.op == "err", (op, args, r.args)
    after = node.handle_line(codec.encode(999998, "n1", "state"))
    assert codec.decode(after[0]).args == codec.decode(before[0]).args


class SpringBus(VaryBus):
    """Each bond carries a fixed force (a statically determinate patch): its elongation is
    force / k, with k what its servo was last told (fixture table: k = pulse / 10). A stuck
    servo ignores commands."""

    def __init__(self, forces, jitter=3, ready=False):
        VaryBus.__init__(self, jitter, ready)
        self.forces = forces
        self.k = [137.5] * len(forces)
        self.stuck = [False] * len(forces)
        self._show()

    def _show(self):
        for s in range(len(self.forces)):
            self.strain[s] = int(self.forces[s] / self.k[s] / fx.GAIN)

    def write(self, device, channel, value):
        fx.Bus.write(self, device, channel, value)
        if device == "stiffness" and not self.stuck[channel]:
            self.k[channel] = value / 10.0
            self._show()


def _check(h, t, slot, **args):
    args["slot"] = slot
    assert h.call("check", args) == []
    t, out = h.run(t, 800)
    return t, [f for f in out if f.op != "evt"], [f.args for f in out if f.op == "evt"]


def test_element_check_finds_a_stuck_element_and_freezes_its_bond():
    # bond 0 pulled (2 mm at 137.5 N/m), bond 1 pushed, bond 2 carries nothing
    bus = SpringBus([0.275, -0.1375, 0.0])
    bus.stuck[1] = True
    node = emulated(fx.config(3), bus, boots=1)
    h = fx.Host(node)
    t, r, ev = _check(h, 0, 0, settle_ms=50, n=4)
    p = r[0].args
    assert r[0].op == "ok" and p["verdict"] == "ok" and ev == []
    assert p["kp"] == 103.125  # the farther bound: a softer element stretches further
    assert abs(p["e0"] - 0.002) < 1e-6 and abs(p["e1"] - 0.275 / 103.1) < 1e-5
    assert bus.k[0] == 137.5  # put back
    t, r, ev = _check(h, t, 1, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "stuck"
    assert ev == [{"ev": "fault", "kind": "element", "ch": 1, "bond": [2, 3]}]
    t, r, ev = _check(h, t, 2, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "unloaded" and ev == []
    t, r, ev = _check(h, t, 0, k=171.875, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "ok" and r[0].args["e1"] < r[0].args["e0"]
    st = h.one("state").args
    assert st["faults"] == ["ok", "element", "ok", "ok"] and st["k"] == [137.5] * 3
    # a stuck element's bond is frozen; its gauge still reads (e is not zeroed)
    bus.strain[0], bus.strain[1] = 1000, 5000
    t, r, ev = _measure(h, t, {"phase": "forward", "tag": 0, "n": 2})
    assert r[0].args.get("bad") == [1] and ev == []
    bus.strain[0], bus.strain[1] = -300, 5000
    t, r, ev = _measure(h, t, {"phase": "adjoint", "tag": 0, "n": 2})
    e = h.one("state", {"only": "e"}).args["e"]
    assert abs(e[1] - 5000 * fx.GAIN) < 1e-8
    r = h.one("update", {"rule": "adjoint", "lr": 1e12, "opt": "adam"})
    assert r.args["held"] == [1]
    k = h.one("state", {"only": "k"}).args["k"]
    assert k[1] == 137.5 and k[0] != 137.5
    # a second check of a faulty bond is refused; reset faults=true allows it again
    assert h.one("check", {"slot": 1}).op == "err"
    h.one("reset", {"faults": True})
    bus.stuck[1] = False
    t, r, ev = _check(h, t, 1, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "ok"


def test_element_check_rejects_bad_requests_and_changes_nothing():
    bus = SpringBus([0.275, -0.1375])
    node = emulated(fx.config(2), bus, boots=1)
    h = fx.Host(node)
    before = h.one("state").args
    for args, field in (({"slot": 2}, "slot"), ({"slot": 0, "k": 500.0}, "k"),
                        ({"slot": 0, "k": 137.5}, "k"), ({"slot": 0, "rel": 2.0}, "rel"),
                        ({}, "slot"), ({"slot": 0, "n": 0}, "n")):
        r = h.one("check", args)
        assert r.op == "err" and r.args["field"] == field, (args, r.args)
    assert h.one("state").args == before
    assert h.call("measure", {"phase": "forward", "n": 2}) == []
    r = h.one("check", {"slot": 0})  # busy
    assert r.op == "err" and "busy" in r.args["reason"]


def test_element_check_holds_off_what_would_move_the_bond():
    bus = SpringBus([0.275, -0.1375])
    node = emulated(fx.config(2), bus, boots=1)
    h = fx.Host(node)
    assert h.call("check", {"slot": 0, "settle_ms": 50, "n": 4}) == []
    for op, args in (("set", {"k": [150.0], "slot": 0}), ("perturb", {"seed": 1, "c": 1.0,
                     "sign": 0}), ("update", {"rule": "adjoint", "lr": 1.0}),
                     ("configure", {"tare": True}), ("save", {})):  # (reset aborts: case_node)
        r = h.one(op, args)
        assert r.op == "err" and r.args["reason"] == "busy: element check running", (op, r)
    assert h.one("ping").op == "ok"  # the host may still ask
    t, out = h.run(0, 800)
    assert out[0].args["verdict"] == "ok" and bus.k[0] == 137.5


def test_a_dead_gauge_on_a_stuck_elements_bond_is_latched_not_waited_for():
    bus = SpringBus([0.275, -0.1375], ready=True)
    bus.stuck[1] = True
    node = emulated(fx.config(2), bus, boots=1)
    h = fx.Host(node)
    t, r, ev = _check(h, 0, 1, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "stuck"
    bus.ready_map[1] = 0  # then its gauge dies too
    t, r, ev = _measure(h, t, {"phase": "forward", "tag": 1, "n": 2, "timeout_ms": 100})
    assert r[0].op == "err" and ev == [{"ev": "fault", "kind": "dead", "ch": 1, "bond": [2, 3]}]
    t, r, ev = _measure(h, t, {"phase": "forward", "tag": 1, "n": 2})
    assert r[0].op == "ok" and r[0].args["bad"] == [1]  # no longer waited for


def test_a_saturated_gauge_in_a_check_is_a_sensor_fault_not_an_element_fault():
    bus = SpringBus([0.275, 0.0])
    node = emulated(fx.config(2), bus, boots=1)
    h = fx.Host(node)
    bus.forces[0] = 2.0  # 14.5 mm at 137.5 N/m: past the 24-bit rail at 1 nm per count
    bus._show()
    t, r, ev = _check(h, 0, 0, settle_ms=50, n=4)
    assert r[0].args["verdict"] == "sensor"
    assert [e["kind"] for e in ev] == ["sat"]
    assert h.one("state", {"only": "faults"}).args["faults"][0] == "sat"
