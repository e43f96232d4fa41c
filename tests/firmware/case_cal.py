"""Node-held calibration (op cal): stiffness maps, force scale/offset, id, persistence."""

import fw_fixtures as fx

from insitu_node import persist
from insitu_node.hal.storage import MemStorage
from insitu_node.node import emulated


def _setup(n=2, storage=None, **kw):
    bus = fx.Bus()
    node = emulated(fx.config(n, **kw), bus, storage=storage)
    return bus, node, fx.Host(node)


def _err(h, args):
    a = h.one("cal", args)
    assert a.op == "err", a.args
    return a.args["field"]


def test_uncalibrated_until_id():
    bus, node, h = _setup()
    assert h.one("identify").args["cal"] is None
    assert h.one("cal", {"slot": 0, "kr": [100.0, 200.0], "kc": [110.0, 170.0]}).args["cal"] is None
    assert h.one("cal", {"id": 1234}).args["cal"] == 1234
    assert h.one("identify").args["cal"] == 1234
    # any later change makes it incomplete again until the host sends the id
    assert h.one("cal", {"axis": 0, "f": [1.1, 0.0]}).args["cal"] is None


def test_stiffness_map_commands_and_realised_k():
    bus, node, h = _setup()
    # the element realises 0.9 of its nominal k: to realise 135 it must be commanded 150
    h.one("cal", {"slot": 0, "kr": [92.8125, 154.6875], "kc": [103.125, 171.875], "id": 7})
    h.one("set", {"k": [135.0, 137.5]})
    assert bus.last("stiffness", 0) == 1500  # nominal 150 N/m on the 1000..2000 us table
    assert bus.last("stiffness", 1) == 1375  # slot 1 has no map
    kr = h.one("state", {"only": "kr"}).args["kr"]
    assert abs(kr[0] - 135.0) < 1e-9 and abs(kr[1] - 137.5) < 1e-9
    # a whole-microsecond pulse: the realised k is that of the pulse sent, not the target
    h.one("set", {"slot": 1, "k": [137.5004]})
    kr = h.one("state", {"only": "kr"}).args["kr"]
    assert kr[1] == 137.5 and h.one("state", {"only": "k"}).args["k"][1] == 137.5004


def test_update_moves_along_calibrated_map():
    bus, node, h = _setup()
    h.one("cal", {"slot": 0, "kr": [50.0, 100.0, 300.0], "kc": [103.125, 120.0, 171.875]})
    h.one("set", {"k": [150.0, 137.5]})
    want = 120.0 + (171.875 - 120.0) * 50.0 / 200.0
    assert abs(node._cmd(0) - want) < 1e-9
    assert bus.last("stiffness", 0) == int(1000 + 10 * (want - 100.0) + 0.5)


def test_force_scale_and_offset():
    bus, node, h = _setup()
    h.one("cal", {"axis": 0, "f": [1.25, 0.01]})
    assert h.one("force", {"axis": 0, "f": 0.26}).args["cmd"] == 200  # (0.26-0.01)/1.25 N
    assert h.one("force", {"axis": 0, "f": 0.0}).args["cmd"] == 0  # zero stays off
    assert h.one("force", {"axis": 0, "f": 0.5}).op == "ok"  # 0.392 N commanded: in range
    assert h.one("force", {"axis": 0, "f": 0.7}).args["field"] == "f"  # 0.552 N commanded

def test_errors_name_the_field_and_change_nothing():
    bus, node, h = _setup()
    assert _err(h, {"slot": 0, "kr": [1.0, 2.0]}) == "kc"
    assert _err(h, {"kr": [1.0, 2.0], "kc": [110.0, 120.0]}) == "slot"
    assert _err(h, {"slot": 5, "kr": [1.0, 2.0], "kc": [110.0, 120.0]}) == "slot"
    assert _err(h, {"slot": 0, "kr": [2.0, 1.0], "kc": [110.0, 120.0]}) == "kr"
    assert _err(h, {"slot": 0, "kr": [1.0, 2.0], "kc": [120.0, 110.0]}) == "kc"
    assert _err(h, {"slot": 0, "kr": [1.0, 2.0], "kc": [110.0, 190.0]}) == "kc"
    assert _err(h, {"slot": 0, "kr": [1.0, 2.0, 3.0], "kc": [110.0, 120.0]}) == "kc"
    assert _err(h, {"axis": 3, "f": [1.0, 0.0]}) == "axis"
    assert _err(h, {"axis": 0, "f": [20.0, 0.0]}) == "f"
    assert _err(h, {"axis": 0, "f": [1.0, 11.0]}) == "f"
    assert _err(h, {"axis": 0}) == "f"
    assert _err(h, {"axis": 0, "f": [1.0]}) == "f"
    assert _err(h, {"id": -1}) == "id"
    assert node.cal == [None, [None, None], [None]]


def test_clear_restores_config_gains():
    bus, node, h = _setup()
    h.one("configure", {"slot": 0, "gain": 2e-9, "offset": 5})
    h.one("cal", {"slot": 1, "kr": [90.0, 180.0], "kc": [110.0, 170.0], "axis": 0,
                  "f": [2.0, 0.0], "id": 3})
    assert h.one("cal", {"id": 0}).args["cal"] is None
    assert node.gain[0] == fx.GAIN and node.off[0] == 0
    assert node.cal == [None, [None, None], [None]] and bus.last("stiffness", 1) == 1375


def test_calibration_persists_with_the_state():
    st = MemStorage()
    bus, node, h = _setup(storage=st)
    h.one("cal", {"slot": 0, "kr": [92.8125, 154.6875], "kc": [103.125, 171.875], "axis": 0,
                  "f": [1.25, 0.01], "id": 42})
    h.one("set", {"k": [135.0, 137.5]})
    assert h.one("save").op == "ok"
    n2 = emulated(fx.config(2), bus, storage=st, boots=2)  # a power cycle
    h2 = fx.Host(n2)
    a = h2.one("identify").args
    assert a["cal"] == 42 and a["persist"] == "ok"
    assert bus.last("stiffness", 0) == 1500
    assert h2.one("force", {"axis": 0, "f": 0.26}).args["cmd"] == 200


def test_version_1_record_still_loads():
    st = MemStorage()
    bus, node, h = _setup(storage=st)
    h.one("set", {"k": [120.0, 160.0]})
    rec = node._record()
    rec["v"] = 1
    rec.pop("cal")
    persist.save(st, rec)
    n2 = emulated(fx.config(2), bus, storage=st)
    assert n2.persist_status == "ok" and list(n2.k) == [120.0, 160.0] and n2.cal[0] is None


def test_the_op_module_leaves_the_heap_after_each_request():
    import sys

    import insitu_node

    bus, node, h = _setup()
    for args in ({"id": 5}, {"slot": 9, "kr": [1.0, 2.0], "kc": [110.0, 120.0]}):
        h.one("cal", args)  # ok and err alike
        assert "insitu_node.calop" not in sys.modules
        assert not hasattr(insitu_node, "calop")
