"""The emulated world: exact ideal profile, one factorisation per state, settling, clocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from insitu.emulator.clock import TICKS_PERIOD, RealClock, VirtualClock, ticks_add, ticks_diff
from insitu.emulator.hardware import NOMINAL, nominal_pulse
from insitu.emulator.world import DeviceError, World, gradient_check
from insitu.network.schema import Port, load_network
from insitu.physics.linear import Equilibrium, compatibility

G = 9.8


@pytest.fixture(scope="module")
def net(li_mao_path):
    return load_network(li_mao_path)


def board_reads(world: World) -> np.ndarray:
    """Every bond's strain count, read through its owning board's bus."""
    out = np.zeros(world.net.n_bonds)
    for bd in world.net.boards:
        bus = world.bus(bd.id)
        for slot, b in enumerate(bd.bonds):
            out[b] = bus.read("strain", slot)
    return out


def load_11(world: World, grams: float = 5.0) -> None:
    world.bus(11).write("force", 1, -grams * 1e-3 * G)


def test_ideal_strain_is_exact_elongation(net):
    w = World(net, "ideal")
    load_11(w)
    e_read = board_reads(w) / NOMINAL.strain_counts_per_m
    f = np.zeros(w.n_dof)
    f[net.dof(Port(11, 1))] = -5e-3 * G
    C = compatibility(net.positions, net.bonds)
    e = C @ Equilibrium(C, net.k_init, net.clamped_dofs()).solve(f)
    scale = np.max(np.abs(e))
    assert np.max(np.abs(e_read - e)) < 1e-12 * scale
    assert np.array_equal(e_read * NOMINAL.strain_counts_per_m, w.elongation() * 2.0**33)


def test_stiffness_exact_and_one_factorisation_per_state(net):
    w = World(net, "ideal")
    load_11(w)
    board_reads(w)
    base = w.factorisations
    bd = w.boards[13]
    bus = w.bus(13)
    targets = {}
    for slot, b in enumerate(bd.bonds):
        k = net.k_min[b] + 0.3 * (net.k_max[b] - net.k_min[b]) + slot
        targets[b] = k
        bus.write("stiffness", slot, nominal_pulse(k, net.k_min[b], net.k_max[b]))
    for _ in range(5):
        board_reads(w)
        w.clock.sleep_ms(3)
    assert w.factorisations == base + 1
    k_true = w.stiffness()
    for b, k in targets.items():
        assert abs(k_true[b] - k) <= 1e-12 * k
    # the new state is exactly the physics core's
    C = compatibility(net.positions, net.bonds)
    f = np.zeros(w.n_dof)
    f[net.dof(Port(11, 1))] = -5e-3 * G
    u = Equilibrium(C, k_true, net.clamped_dofs()).solve(f)
    assert np.allclose(w.u(), u, rtol=0, atol=1e-15)
    # a force change alone re-uses the factorisation
    load_11(w, 3.0)
    board_reads(w)
    assert w.factorisations == base + 1
    # back to a cached state costs nothing either
    for slot, b in enumerate(bd.bonds):
        bus.write("stiffness", slot, nominal_pulse(net.k_init[b], net.k_min[b], net.k_max[b]))
    board_reads(w)
    assert w.factorisations == base + 1


def test_forces_and_clamps_exact(net):
    w = World(net, "ideal")
    bus = w.bus(13)
    bus.write("force", 0, 0.01)
    bus.write("force", 1, -0.02)
    f = w.forces()
    d13 = net.dof(Port(13, 0))
    assert f[d13] == 0.01 and f[d13 + 1] == -0.02
    assert np.count_nonzero(f) == 2
    bus.write("clamp", 1, -1e-4)
    assert w.u()[d13 + 1] == -1e-4
    assert w.clamps() == {d13 + 1: -1e-4}
    assert w.clamped_mask()[d13 + 1]
    # the clamp carries the y force; the x force still acts
    eq = w.equilibrium()
    uc = np.zeros(w.n_dof)
    uc[d13 + 1] = -1e-4
    assert np.array_equal(w.u(), eq.solve(f, uc))
    bus.write("release", 1, 0)
    assert w.clamps() == {}
    assert not w.clamped_mask()[d13 + 1]
    assert w.clamped_mask()[net.dof(Port(1, 0))]  # supports stay


def test_displacement_sensor_ideal(net):
    w = World(net, "ideal")
    load_11(w)
    u = w.u()
    for axis in (0, 1):
        raw = w.bus(14).read("disp", axis)
        assert raw / NOMINAL.disp_counts_per_m == pytest.approx(
            u[net.dof(Port(14, axis))], rel=1e-12
        )


def test_bus_refuses_missing_devices(net):
    w = World(net, "ideal")
    with pytest.raises(DeviceError, match="carries no force"):
        w.bus(1).write("force", 1, 0.1)
    with pytest.raises(DeviceError, match="carries no displacement"):
        w.bus(11).read("disp", 0)
    with pytest.raises(DeviceError, match="slots"):
        w.bus(1).read("strain", 5)
    with pytest.raises(DeviceError, match="axis"):
        w.bus(13).write("force", 2, 0.1)
    with pytest.raises(DeviceError, match="no readable device"):
        w.bus(13).read("temperature", 0)
    with pytest.raises(DeviceError, match="no board"):
        w.bus(99)


def test_relaxation_first_order(net):
    w = World(net, "ideal", relax=True)
    tau = net.relaxation_time
    e_old = board_reads(w)  # zero load
    load_11(w)
    e_now = board_reads(w)  # read at the instant of the step: still the old state
    assert np.max(np.abs(e_now - e_old)) == 0.0
    e_new = w.u_eq()
    e_new = w.C @ e_new * NOMINAL.strain_counts_per_m
    step = e_new - e_old
    big = np.abs(step) > 0.1 * np.max(np.abs(step))
    for dt in (0.3 * tau, tau):
        w.clock.sleep_us(dt * 1e6)
        t_since = w.now()  # the load was applied at t = 0
        got = board_reads(w)
        want = e_new - step * math.exp(-t_since / tau)
        assert np.allclose(got[big], want[big], rtol=1e-9)
    w.clock.sleep_us(5 * tau * 1e6)
    got = board_reads(w)
    assert np.all(np.abs(got[big] - e_new[big]) <= 0.01 * np.abs(step[big]))


def test_ideal_gradient_matches_exact(net):
    w = World(net, "ideal")
    load = {net.dof(Port(11, 1)): -5e-3 * G}
    out = [net.dof(Port(13, 1)), net.dof(Port(14, 1))]
    f = np.zeros(w.n_dof)
    f[list(load)] = list(load.values())
    u = w.equilibrium().solve(f)
    dL = np.zeros(w.n_dof)
    dL[out] = u[out] - np.array([1.2, 0.8]) * u[out]
    r = gradient_check(w, load, dL, n=2)
    assert r.rel_err < 1e-9
    assert r.cosine > 1 - 1e-12


def test_nonlinear_world_reads_stretch_and_holds_clamps(net):
    w = World(net, "ideal", nonlinear=True)
    load_11(w, 5.0)
    s = w.elongation()
    e_read = board_reads(w) / NOMINAL.strain_counts_per_m
    assert np.max(np.abs(e_read - s)) < 1e-12 * np.max(np.abs(s))
    lin = World(net, "ideal")
    load_11(lin, 5.0)
    # 5 g is a small load: stretch agrees with the linear elongation to a few per cent
    assert np.max(np.abs(s - lin.elongation())) < 0.05 * np.max(np.abs(s))
    w.bus(13).write("clamp", 0, 2e-5)
    assert w.u()[net.dof(Port(13, 0))] == 2e-5
    assert w.nonlinear_solves >= 2
    g = w.exact_gradient(np.eye(w.n_dof)[net.dof(Port(14, 1))])
    assert g.shape == (net.n_bonds,) and np.all(np.isfinite(g))


def test_same_seed_same_world(net):
    def trace(seed):
        w = World(net, "realistic", seed=seed)
        load_11(w)
        vals = []
        for _ in range(20):
            w.clock.sleep_ms(13)
            vals.append(board_reads(w))
        return np.array(vals)

    a, b, c = trace(3), trace(3), trace(4)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_virtual_clock():
    c = VirtualClock(start_ms=5)
    assert c.now_ms() == 5 and c.now() == 0.005
    c.sleep_ms(2.5)
    assert c.now_us() == 7500
    with pytest.raises(ValueError):
        c.sleep_ms(-1)
    c.advance_to(10_000)
    assert c.now_ms() == 10
    c.advance_to(0)  # never backwards
    assert c.now_ms() == 10
    near = VirtualClock(start_ms=TICKS_PERIOD - 3)
    t0 = near.ticks_ms()
    near.sleep_ms(10)
    assert near.ticks_ms() == 7  # wrapped
    assert ticks_diff(near.ticks_ms(), t0) == 10
    assert ticks_add(t0, 10) == 7


def test_real_clock_moves():
    c = RealClock()
    a = c.now_us()
    c.sleep_ms(2)
    assert c.now_us() - a >= 2000


def test_firmware_unit_conventions(net):
    """Force commands in counts per newton and clamp targets in displacement counts, if
    configured."""
    from insitu.emulator.hardware import IDEAL, Nominal

    nom = Nominal(force_cmd_per_n=1e6, clamp_in_counts=True, disp_counts_per_m=2048e3)
    w = World(net, IDEAL.with_(nominal=nom))
    w.bus(13).write("force", 0, 12345)  # 12.345 mN
    assert w.forces()[net.dof(Port(13, 0))] == pytest.approx(0.012345, rel=1e-15)
    w.bus(13).write("clamp", 1, -2048)  # 2048 counts = 1 mm at 2048 counts/mm
    assert w.u()[net.dof(Port(13, 1))] == -1e-3
