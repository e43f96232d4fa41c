"""Faults on demand: broken sensors, stuck elements, broken bonds, a lossy byte stream."""

from __future__ import annotations

import errno
import io

import numpy as np
import pytest

from insitu.emulator import faults
from insitu.emulator.faults import FaultyStream
from insitu.emulator.hardware import HX711_MAX, HX711_MIN, NOMINAL, nominal_pulse
from insitu.emulator.world import World
from insitu.network.schema import Port, load_network
from insitu.physics.linear import Equilibrium, MechanismError, compatibility

G = 9.8


@pytest.fixture(scope="module")
def net(li_mao_path):
    return load_network(li_mao_path)


def test_stuck_sensor_returns_constant(net):
    w = World(net, "realistic", seed=1)
    bus = w.bus(13)
    w.clock.sleep_ms(20)
    v = faults.stuck_sensor(w, 13, 0)
    w.bus(11).write("force", 1, -0.049)
    for _ in range(5):
        w.clock.sleep_ms(50)
        assert bus.read("ready", 0) == 1
        assert bus.read("strain", 0) == v
    faults.clear_sensor(w, 13, 0)
    w.clock.sleep_ms(20)
    assert bus.read("strain", 0) != v


def test_dead_sensor_never_ready_and_raises_eio(net):
    w = World(net, "ideal")
    faults.dead_sensor(w, 13, 1)
    bus = w.bus(13)
    assert bus.read("ready", 1) == 0
    with pytest.raises(OSError) as exc:
        bus.read("strain", 1)
    assert exc.value.errno == errno.EIO
    assert bus.read("ready", 0) == 1  # the board's other channels still work


def test_noisy_and_saturated_sensor(net):
    w = World(net, "ideal")
    faults.noisy_sensor(w, 13, 0, 1000.0)
    x = np.array([w.bus(13).read("strain", 0) for _ in range(400)])
    assert np.std(x) == pytest.approx(1000.0, rel=0.12)
    assert faults.saturated_sensor(w, 13, 1) == HX711_MAX
    assert w.bus(13).read("strain", 1) == HX711_MAX
    faults.saturated_sensor(w, 13, 1, high=False)
    assert w.bus(13).read("strain", 1) == HX711_MIN


def test_stuck_element_ignores_commands(net):
    w = World(net, "ideal")
    b = w.boards[13].bonds[0]
    k0 = w.stiffness()[b]
    faults.stuck_element(w, 13, 0)
    n = w.factorisations
    w.bus(13).write("stiffness", 0, nominal_pulse(net.k_max[b], net.k_min[b], net.k_max[b]))
    w.bus(13).read("strain", 0)
    assert w.stiffness()[b] == k0 and w.factorisations == n
    faults.stuck_element(w, 13, 0, stuck=False)
    w.bus(13).write("stiffness", 0, 2000)
    assert w.stiffness()[b] == pytest.approx(net.k_max[b])


def test_broken_bond_leaves_the_network(net):
    w = World(net, "ideal")
    w.bus(11).write("force", 1, -0.049)
    b = 16  # 7-11, owned by board 11
    assert net.bond_ids()[b] == (7, 11)
    assert faults.break_bond(w, b) is None
    keep = np.arange(net.n_bonds) != b
    C = compatibility(net.positions, net.bonds[keep])
    f = np.zeros(w.n_dof)
    f[net.dof(Port(11, 1))] = -0.049
    u = Equilibrium(C, net.k_init[keep], net.clamped_dofs()).solve(f)
    assert np.allclose(w.u(), u, rtol=0, atol=1e-15)
    slot = w.boards[11].bonds.index(b)
    assert w.bus(11).read("strain", slot) == 0.0  # a slack broken bar
    g = w.exact_gradient(np.eye(w.n_dof)[net.dof(Port(13, 1))])
    assert g[b] == 0.0 and np.count_nonzero(g) > 10
    assert faults.repair_bond(w, b) is None
    assert w.bus(11).read("strain", slot) / NOMINAL.strain_counts_per_m == pytest.approx(
        w.elongation()[b], rel=1e-12
    )


def test_broken_bonds_making_a_mechanism_are_reported(net):
    w = World(net, "ideal")
    ids = net.bond_ids()
    assert faults.break_bond(w, ids.index((12, 14))) is None
    msg = faults.break_bond(w, ids.index((13, 14)))  # node 14 now hangs on one bond
    assert msg is not None and "mechanism" in msg and "14" in msg
    with pytest.raises(MechanismError):
        w.bus(13).read("strain", 0)
    assert faults.repair_bond(w, ids.index((13, 14))) is None
    w.bus(13).read("strain", 0)  # solvable again


def test_faulty_stream_transparent_at_zero():
    inner = io.BytesIO()
    s = FaultyStream(inner, seed=3)
    data = bytes(range(256)) * 40 + b"line one\nline two\n"
    assert s.write(data) == len(data)
    assert inner.getvalue() == data
    inner.seek(0)
    assert s.read(len(data)) == data
    assert s.getvalue() == data  # other attributes pass through


def test_faulty_stream_corrupts_at_the_requested_rate():
    n = 200_000
    data = bytes(np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8))
    inner = io.BytesIO()
    s = FaultyStream(inner, corrupt=0.01, seed=5)
    s.write(data)
    got = np.frombuffer(inner.getvalue(), np.uint8)
    assert got.size == n
    diff = got ^ np.frombuffer(data, np.uint8)
    changed = np.count_nonzero(diff)
    assert abs(changed - 0.01 * n) < 4 * np.sqrt(0.01 * n)
    assert all(bin(int(x)).count("1") == 1 for x in diff[diff != 0])  # one bit per byte
    assert s.stats["write"]["corrupted"] == changed
    # deterministic per seed and independent of chunking; other seeds differ
    inner2 = io.BytesIO()
    s2 = FaultyStream(inner2, corrupt=0.01, seed=5)
    for i in range(0, n, 777):
        s2.write(data[i : i + 777])
    assert inner2.getvalue() == inner.getvalue()
    inner3 = io.BytesIO()
    FaultyStream(inner3, corrupt=0.01, seed=6).write(data)
    assert inner3.getvalue() != inner.getvalue()


def test_faulty_stream_drops_bytes_and_lines():
    n = 100_000
    inner = io.BytesIO(b"x" * n)
    s = FaultyStream(inner, drop=0.02, seed=1, direction="read")
    got = s.read(n)
    lost = n - len(got)
    assert abs(lost - 0.02 * n) < 4 * np.sqrt(0.02 * n)
    lines = b"".join(b"msg %05d\n" % i for i in range(5000))
    out = io.BytesIO()
    s = FaultyStream(out, drop_line=0.1, seed=2, direction="write")
    for i in range(0, len(lines), 13):  # lines split across writes
        s.write(lines[i : i + 13])
    kept = out.getvalue().split(b"\n")[:-1]
    assert all(len(x) == 9 and x.startswith(b"msg ") for x in kept)  # whole lines only
    assert abs((5000 - len(kept)) - 500) < 4 * np.sqrt(450)
    assert s.stats["write"]["lines_dropped"] == 5000 - len(kept)
    # reading direction untouched when only writes are damaged
    inner = io.BytesIO(lines)
    assert FaultyStream(inner, drop_line=0.5, direction="write").read() == lines


def test_faulty_stream_rejects_bad_probability():
    with pytest.raises(ValueError):
        FaultyStream(io.BytesIO(), corrupt=1.5)
    with pytest.raises(ValueError):
        FaultyStream(io.BytesIO(), direction="sideways")
