"""Heap held by a node booted as a board boots it, and proof that its control step does not
allocate.

    micropython -X heapsize=64K -m heap_probe
    MICROPYPATH = one directory: the firmware as .mpy, this probe (.mpy) and config.json

Boots the node the way app.setup.make_node does on a board (boots.txt, config.json read as
text, load_text, build_hal, Node) on the emulated HAL, the bus being a stub whose read/write
never allocate; then 90 control ticks under micropython.heap_lock() (idle, a measurement's
settle and sampling, after it), twice, then 125 with a measurement that settles until still.
Prints one line, a Python tuple: gc.mem_alloc() at each mark, the ticks that allocated (must
be 0), whether every measurement replied ok, the free and the used heap, the word size in
bits and the MicroPython version; probe_result() in host/insitu/bench/firmware.py turns it
into bytes held by the code and by the node and the peak of each setup stage.

Automatic garbage collection is off: the 32-bit WASI build of MicroPython cannot collect
safely inside nested calls (host/insitu/emulator/wasm32.py). The probe collects only here at
module level, after each stage (one module import, one step of the boot), so a stage's peak is
what it holds plus all it allocated: a board's collector, which runs whenever an allocation
fails, needs no more. The module-level frame must stay within 11 words so MicroPython keeps
it on the C stack, which the collector scans: keep every statement here shallow (no try, no
deep expressions) and put the rest in functions. Before the second run of ticks every free
block is filled with 0xAA: an object freed while in use would be overwritten, and the run would
trap or fail its checks. Everything here stays on the heap while the node runs, so the probe is
kept small (the host does the arithmetic).
"""

import gc

gc.disable()
import sys  # noqa: E402

import micropython  # noqa: E402

M = {}  # mark -> gc.mem_alloc(); a stage's peak is the largest value seen before collecting


def mark(k):
    M[k] = max(M.get(k, 0), gc.mem_alloc())


gc.collect()
mark("start")
# the firmware in dependency order, each import's loader garbage collected on its own; the
# drivers are those of this config (virtual springs, force, clamp). Full names: they are the
# qstrs the imports intern anyway.
for name in (
    "insitu_node.compat",
    "insitu_node.protocol.codec",
    "insitu_node.protocol.messages",
    "insitu_node.protocol.validate",
    "insitu_node.learning.bounds",
    "insitu_node.learning.convention",
    "insitu_node.learning.optim",
    "insitu_node.learning.rules",
    "insitu_node.learning.spsa",
    "insitu_node.sampling",
    "insitu_node.health",
    "insitu_node.persist",
    "insitu_node.node",
    "insitu_node.config",
    "insitu_node.hal.interfaces",
    "insitu_node.hal.storage",
    "insitu_node.app.setup",
    "insitu_node.hal.emu",
    "insitu_node.hal.coil",
    "insitu_node.hal.actuators",
):
    __import__(name)
    mark("import")
    gc.collect()
mark("code")

from insitu_node import persist  # noqa: E402
from insitu_node.app.setup import CONFIG, build_hal  # noqa: E402
from insitu_node.compat import ticks_add  # noqa: E402
from insitu_node.config import load_text  # noqa: E402
from insitu_node.hal.storage import FileStorage  # noqa: E402
from insitu_node.node import Node  # noqa: E402
from insitu_node.protocol.codec import decode, encode  # noqa: E402


class Bus:
    """The world stub (`emubus`): preallocated lists and int values, no "ready" device."""

    def __init__(self):
        self.strain = [100000 + 1000 * s for s in range(16)]
        self.out = [0] * 16

    def read(self, device, channel):
        if device == "strain":
            return self.strain[channel]
        if device == "disp":
            return 2000
        raise KeyError(device)  # no "ready" device: a fresh sample every tick

    def write(self, device, channel, value):
        self.out[channel] = value


def lines():
    """The measure requests, framed as the host sends them (to node "n1"): two with a fixed
    settle, one that settles until still (Node._still run in the ticks)."""
    a = {"phase": "forward", "n": 8, "settle_ms": 50}
    c = {"phase": "forward", "n": 8, "settle_ms": 2000, "calm": 5}
    return [encode(1, "n1", "measure", a), encode(2, "n1", "measure", a),
            encode(3, "n1", "measure", c)]


sys.modules["emubus"] = Bus()  # emu.build imports the bus as the module `emubus`
storage = FileStorage(__file__.rpartition("/")[0])  # config.json is beside the probe
LINES = lines()  # the host's side: framed here, not counted in a stage of the node
gc.collect()
mark("bus")

# app.setup.make_node, one step at a time
boots = persist.bump_boots(storage)
mark("boots")
gc.collect()
cfg, h = load_text(storage.read(CONFIG).decode())
mark("config")
gc.collect()
hal = build_hal(cfg, storage)
mark("hal")
gc.collect()
node = Node(cfg, hal, h, boots, None)
mark("node_peak")
del cfg, hal, h, boots, storage
gc.collect()
mark("node")


# per measurement: (start tick time, ticks, the tick at which it must be done); the calm one
# is still after two 200 ms windows (the stub's counts are constant) and 8 samples
CYCLES = ((0, 90, 70), (900, 90, 70), (1800, 125, 110))


def cycle(k):
    """50 idle ticks, measurement k (settle, sampling, done), 20 or more ticks after it: the
    ticks that allocated. Whether the measurement completed, and its reply, go to R. (One
    argument: a deeper call at module level would push the module's frame off the C stack.)"""
    t, ticks, done = CYCLES[k]
    line = LINES[k]
    n = 0
    for i in range(ticks):
        if i == 50:
            node.handle_line(line)
        if i == done:  # settled, sampled, DONE: the reply is built by service()
            R.append(node.pending)
            R.append(node.service())
        t = ticks_add(t, 10)
        micropython.heap_lock()
        try:
            node.tick(t)
        except MemoryError:
            n += 1
        micropython.heap_unlock()
    mark("measure")
    return n


def poison():
    """Every free block filled with 0xAA (garbage until the next collection)."""
    n = 16384
    while n:
        try:
            b"\xaa" * n
        except MemoryError:
            n >>= 1


R = [0]  # ticks that allocated, then (pending, replies) of each measurement
R[0] = cycle(0)
gc.collect()
mark("after")
poison()
gc.collect()
R[0] += cycle(1)
gc.collect()
R[0] += cycle(2)
gc.collect()


def report():
    ok = len(R) == 7 and R[1] and R[3] and R[5]
    if ok:  # replies decoded only now: not part of a measurement stage's peak
        for r in (R[2], R[4], R[6]):
            ok = ok and len(r) == 1 and decode(r[0]).op == "ok"
    print((M, R[0], ok, gc.mem_free(), gc.mem_alloc(), 64 if sys.maxsize > 2**31 else 32,
           sys.implementation.version[:3]))


report()
