"""Item 7 of docs/reliability.md: a silent host puts every node in its safe state (forces off,
clamps released, stiffness held) within the configured timeout — in-process on the virtual
clock for every board of the network, and on one real MicroPython-process board in real time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from insitu.emulator.inprocess import InProcessLab
from insitu.emulator.mplab import MicroPythonLab
from insitu.links import open_link
from insitu.network.schema import Port, load_network
from insitu.rig.lab import expected_configs
from insitu.rig.session import Rig

LI_MAO = Path(__file__).resolve().parents[1] / "hardware" / "networks" / "li-mao-2024.toml"
TIMEOUT_MS = 500


def test_every_node_safe_within_timeout_virtual_clock():
    net = load_network(LI_MAO)
    lab = InProcessLab(net, "ideal", timeout_ms=TIMEOUT_MS)
    cfgs = expected_configs(net, lab.calibration, timeout_ms=TIMEOUT_MS)
    rig = Rig(net, lab.link(), configs=cfgs)
    rig.connect()
    f0 = lab.world.forces()
    io = net.io_set("iris")
    rig.apply_forces({p: -0.02 for p in io.inputs})
    out = io.outputs[0]
    rig.clamp(Port(out.node, out.axis), 1e-5)
    k0 = lab.world.stiffness()
    assert not np.array_equal(lab.world.forces(), f0)
    t_last = lab.clock.now_ms()  # the host's last frame
    safe_at = {}
    while len(safe_at) < len(lab.nodes) and lab.clock.now_ms() - t_last < 2 * TIMEOUT_MS:
        lab.advance(lab.period_ms)
        for bid, node in lab.nodes.items():
            if node.safe and bid not in safe_at:
                safe_at[bid] = lab.clock.now_ms() - t_last
    assert len(safe_at) == len(lab.nodes)
    worst = max(safe_at.values())
    assert TIMEOUT_MS < worst <= TIMEOUT_MS + lab.period_ms  # within one control period
    assert np.array_equal(lab.world.forces(), f0)  # every force off
    assert lab.world.clamps() == {}  # clamps released (safe_release)
    assert np.array_equal(lab.world.stiffness(), k0)  # stiffness held
    print(f"\nsafe state: {len(safe_at)} boards, latency {min(safe_at.values()):.0f}.."
          f"{worst:.0f} ms for timeout {TIMEOUT_MS} ms")  # fmt: skip


def test_micropython_board_goes_safe_in_real_time(tmp_path):
    net = load_network(LI_MAO)
    bd = next(b for b in net.boards if "force" in b.carries)
    with MicroPythonLab(net, boards=[bd.id], timeout_ms=TIMEOUT_MS, workdir=tmp_path) as lab:
        link = open_link(lab.boards[bd.id].port)
        try:
            from insitu_node.protocol import codec

            addr = str(bd.id)
            f0 = lab.world.forces()
            link.send(codec.encode(1, addr, "force", {"axis": 0, "f": 0.02}))
            deadline = time.monotonic() + 10
            line = None
            while time.monotonic() < deadline:
                line = link.receive(0.5)
                f = codec.parse(line) if line else None
                if f is not None and f.op == "ok" and f.seq == 1:
                    break
            t_last = time.monotonic()
            assert not np.array_equal(lab.world.forces(), f0)
            while time.monotonic() - t_last < 5 and not np.array_equal(lab.world.forces(), f0):
                time.sleep(0.01)
            latency = time.monotonic() - t_last
            assert np.array_equal(lab.world.forces(), f0), "force still on after 5 s"
            # the host's last frame was sent before t_last: the node waited at least the timeout
            # minus the reply's trip; and it acted within a few control periods of it
            assert 0.4 * TIMEOUT_MS / 1000 < latency < TIMEOUT_MS / 1000 + 0.5
            print(f"\nMicroPython board {addr}: forces off {latency * 1000:.0f} ms after the "
                  f"host's last reply (timeout {TIMEOUT_MS} ms)")  # fmt: skip
        finally:
            link.close()
