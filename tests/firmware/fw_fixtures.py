"""Shared test doubles: a node config with N bonds and a bus standing in for the world.

Plain Python that runs under CPython and MicroPython alike.
"""

GAIN = 1e-9  # metres per count in the fixture's calibration


def config(n_bonds=6, coil=False, force=1, clamp=1, disp=1, node="n1", **extra):
    bonds = []
    for s in range(n_bonds):
        if coil:
            el = {"type": "coil", "cmd_per_n": 1000.0, "max_cmd": 65535}
        else:
            el = {"type": "servo", "table": [[100.0, 1000], [200.0, 2000]]}
        bonds.append({
            "slot": s, "bond": [s + 1, s + 2], "rest": 0.016,
            "k_min": 103.125, "k_max": 171.875, "k_init": 137.5,
            "sensor": {"type": "emu"}, "cal": {"gain": GAIN, "offset": 0}, "element": el,
        })
    cfg = {
        "v": 1, "node": node, "family": "emu", "period_ms": 10, "timeout_ms": 5000,
        "bonds": bonds,
        "force": [{"axis": a, "cmd_per_n": 1000.0, "max_n": 0.5} for a in range(force)],
        "clamp": [{"axis": a, "cal": {"gain": 1e-6, "offset": 0}} for a in range(clamp)],
        "disp": [{"axis": a, "cal": {"gain": 1e-6, "offset": 0}} for a in range(disp)],
    }
    for k in extra:
        cfg[k] = extra[k]
    return cfg


class Bus:
    """A world stub: raw counts per (device, channel) and a log of writes."""

    def __init__(self, ready=False):
        self.values = {}
        self.writes = []
        self.ready_map = {} if ready else None
        self.strain = [0] * 16  # fast path for the heap probe (no dict lookups)

    def read(self, device, channel):
        if device == "strain":
            return self.strain[channel]
        if device == "ready":
            if self.ready_map is None:
                raise KeyError(device)
            return self.ready_map.get(channel, 1)
        return self.values.get((device, channel), 0)

    def write(self, device, channel, value):
        self.writes.append((device, channel, value))

    def last(self, device, channel):
        for w in reversed(self.writes):
            if w[0] == device and w[1] == channel:
                return w[2]
        return None


class Host:
    """Frames requests with increasing seq and decodes replies."""

    def __init__(self, node):
        self.node = node
        self.seq = 0

    def frame(self, op, args=None, addr=None):
        from insitu_node.protocol import codec

        self.seq += 1
        return codec.encode(self.seq, addr or self.node.id, op, args or {})

    def call(self, op, args=None, addr=None):
        from insitu_node.protocol import codec

        lines = self.node.handle_line(self.frame(op, args, addr))
        return [codec.decode(x) for x in lines]

    def one(self, op, args=None):
        r = self.call(op, args)
        assert len(r) == 1, r
        return r[0]

    def run(self, t0, ms):
        """Tick the node every period for ms, returning decoded deferred replies."""
        from insitu_node.compat import ticks_add
        from insitu_node.protocol import codec

        out = []
        p = self.node.period_ms
        t = t0
        for _ in range(ms // p):
            t = ticks_add(t, p)
            out.extend(codec.decode(x) for x in self.node.step(t))
        return t, out
