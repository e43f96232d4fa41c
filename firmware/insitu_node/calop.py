"""The ``cal`` op (docs/protocol.md): load the node-held calibration, validated before anything
changes. A one-off maintenance op, so node._op_cal imports this module for the request and drops
it after: its ~0.7 KB of code stays off a 64 KB board's heap while the board boots and trains
(the heap probe's limit is the boot's peak; after boot several KB are free)."""

import sys

from .protocol.validate import ArgError


def apply(node, a):
    """Apply request args `a` (validated against messages.SCHEMA) to `node`; its reply. Then
    this module leaves sys.modules and its package, so the collector can free its code."""
    try:
        return _apply(node, a)
    finally:
        del sys.modules[__name__]
        delattr(sys.modules[__name__[: __name__.rfind(".")]], "calop")


def _apply(node, a):
    s, kr, kc, ax, fc = a["slot"], a["kr"], a["kc"], a["axis"], a["f"]
    cal = node.cal
    if kr or kc or s is not None:
        if s is None or s >= node.n:
            raise ArgError("slot", "no such bond slot")
        if not kr or not kc or len(kc) != len(kr):
            raise ArgError("kc", "one per kr")
        pts = list(zip(kr, kc))  # noqa: B905 (MicroPython's zip has no strict)
        p = (0.0, node.k_min[s] - 1)
        for q in pts:
            if q[0] <= p[0]:
                raise ArgError("kr", "not positive, increasing")
            if q[1] <= p[1] or q[1] > node.k_max[s]:
                raise ArgError("kc", "not increasing in the bond's k bounds")
            p = q
    if ax is not None or fc:
        node._axis(node.hal.force, ax, "force actuator")
        if not fc or not 0.1 <= fc[0] <= 10.0 or abs(fc[1]) > 10.0:
            raise ArgError("f", "need [scale 0.1..10, offset within +/-10 N]")
    if a["id"] == 0:  # forget it all: no maps, no force scales, the config's gains
        cal = node.cal = [None, [None] * node.n, [None] * len(cal[2])]
        i = 0  # gains and offsets back to the config's (as Node.__init__ sets them)
        for ds in (node.cfg["bonds"], node.cfg["disp"]):
            for d in ds:
                node.gain[i], node.off[i] = d["cal"]["gain"], d["cal"]["offset"]
                i += 1
    if kr:
        cal[1][s] = pts
        cal[0] = None  # changed: calibrated again once the host sends the id
    if fc:
        cal[2][ax] = fc
        cal[0] = None
    if a["id"]:
        cal[0] = a["id"]
    for b in range(node.n):
        node._set_element(b)
    return {"cal": cal[0]}
