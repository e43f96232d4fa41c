"""Heap held by a 6-bond node and proof that its control step does not allocate.

    micropython -X heapsize=64K tests/firmware/heap_probe.py   (MICROPYPATH=firmware:tests/firmware)

Prints one JSON line: bytes held by the imported firmware code, by the node's own state, and
how many control ticks allocated under micropython.heap_lock() (must be 0). Every bond is a
virtual spring (the loop that runs every tick) and the node has force, clamp and displacement.
"""

import gc
import json
import sys

import micropython

N_BONDS = 6
gc.collect()
m0 = gc.mem_alloc()

from insitu_node import config as _config  # noqa: E402,F401  (imported by emulated())
from insitu_node.compat import ticks_add  # noqa: E402
from insitu_node.hal import emu as _emu  # noqa: E402,F401
from insitu_node.node import emulated  # noqa: E402
from insitu_node.protocol import codec  # noqa: E402

gc.collect()
m1 = gc.mem_alloc()
import fw_fixtures  # noqa: E402

RAW = fw_fixtures.config(N_BONDS, coil=True, force=1, clamp=1, disp=1)
del fw_fixtures
sys.modules.pop("fw_fixtures", None)
gc.collect()
m_raw = gc.mem_alloc()


class ProbeBus:
    """A world stub whose read/write never allocate (preallocated lists, int values)."""

    def __init__(self):
        self.strain = [100000 + 1000 * s for s in range(16)]
        self.disp = [2000] * 8
        self.out = [0] * 16

    def read(self, device, channel):
        if device == "strain":
            return self.strain[channel]
        if device == "disp":
            return self.disp[channel]
        raise KeyError(device)  # no "ready" device: a fresh sample every tick

    def write(self, device, channel, value):
        self.out[channel] = value


bus = ProbeBus()
node = emulated(RAW, bus)
del RAW
gc.collect()
m2 = gc.mem_alloc() - (m_raw - m1)  # the raw config dict is freed below; don't count it



def run(t, n):
    allocs = 0
    for _ in range(n):
        t = ticks_add(t, 10)
        micropython.heap_lock()
        try:
            node.tick(t)
        except MemoryError:
            allocs += 1
        micropython.heap_unlock()
    return t, allocs


t, a_idle = run(0, 50)
node.handle_line(codec.encode(1, "n1", "measure", {"phase": "forward", "n": 8, "settle_ms": 50}))
gc.collect()
t, a_meas = run(t, 20)  # settle, then sampling, then DONE (reply built later by service())
done = node.pending
replies = node.service()
t, a_after = run(t, 20)
gc.collect()
m3 = gc.mem_alloc()
print(json.dumps({
    "bonds": N_BONDS,
    "code_bytes": m1 - m0,
    "node_bytes": m2 - m1,
    "raw_config_bytes": m_raw - m1,
    "held_bytes": m2 - m0,
    "held_after_measure_bytes": m3 - m0,
    "ticks": 90,
    "alloc_ticks": a_idle + a_meas + a_after,
    "measure_completed": bool(done and replies and codec.decode(replies[0]).op == "ok"),
    "free_bytes": gc.mem_free(),
    "impl": sys.implementation.name,
}))
